package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) auth.ActivityStore {
		s, err := Open(Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// open opens the store at path and closes it when the test ends.
func open(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCreate(t *testing.T, s *Store, tok *auth.Token) {
	t.Helper()
	if err := s.Create(context.Background(), tok); err != nil {
		t.Fatalf("Create(%s): %v", tok.ID, err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "tokens.json") // the dir is created
	ctx := context.Background()
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	live, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	expiring, _ := storetest.NewToken(t, 1, auth.RoleAccounting)
	expiring.ExpiresAt = time.Now().Add(time.Hour)
	expiring.Status = auth.StatusInactive
	revoked, _ := storetest.NewToken(t, 2, auth.RoleOwner)
	revoked.RateLimit, revoked.RateBurst = 3, 5
	for _, tok := range []*auth.Token{live, expiring, revoked} {
		mustCreate(t, s, tok)
	}
	live, err = s.Update(ctx, live.ID, func(u *auth.Token) error { u.RateLimit = 0.5; return nil })
	if err != nil {
		t.Fatal(err)
	}
	tomb, err := s.Revoke(ctx, revoked.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Path: path})
	for _, want := range []*auth.Token{live, expiring, tomb} {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get(%s) after reopen: %v", want.ID, err)
		}
		storetest.AssertEqual(t, got, want)
	}
	if l, _ := s.List(ctx, 1); len(l) != 2 {
		t.Errorf("List(1) after reopen has %d tokens, want 2", len(l))
	}
	if l, _ := s.List(ctx, 2); len(l) != 0 {
		t.Errorf("List(2) after reopen lists the tombstone")
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	s := open(t, Options{Path: path})
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	mustCreate(t, s, tok)
	for _, name := range []string{path, path + ".lock"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, mode)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"hash": "`, `"pepper": "`, `"role": "owner"`, tok.ID} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the file does not contain %s:\n%s", want, data)
		}
	}
	for _, unwanted := range []string{`"rate"`, `"burst"`, `"expires"`} {
		if bytes.Contains(data, []byte(unwanted)) {
			t.Errorf("the file holds %s for a token without it:\n%s", unwanted, data)
		}
	}
	if _, err := s.Update(context.Background(), tok.ID, func(u *auth.Token) error {
		u.RateLimit, u.RateBurst = 1.5, 4
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"rate": 1.5`, `"burst": 4`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the file does not contain %s after Update:\n%s", want, data)
		}
	}
	if temps, _ := filepath.Glob(s.tempPattern()); len(temps) != 0 {
		t.Errorf("temporary files left behind: %v", temps)
	}
}

func TestSecondOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	first, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "another tswgate process is using the data dir") ||
		!strings.Contains(err.Error(), "TSWGATE_DATA_DIR") {
		t.Fatalf("second Open: %v, want an error saying another process uses the data dir", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, Options{Path: path}) // the lock is released by Close
}

func TestCorruptFile(t *testing.T) {
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	for name, content := range map[string]string{
		"not json":      `{"version": 1, "tokens": [`,
		"empty":         ``,
		"version":       `{"version": 2, "tokens": []}`,
		"unknown field": `{"version": 1, "tokens": [], "extra": true}`,
		"trailing":      `{"version": 1, "tokens": []} {}`,
		"bad role": `{"version": 1, "tokens": [{"id": "` + tok.ID + `", "project": 1, "role": "janitor",
			"status": "active", "created": 1700000000000, "hash": "` + strings.Repeat("ab", 32) + `", "pepper": "p"}]}`,
		"bad hash": `{"version": 1, "tokens": [{"id": "` + tok.ID + `", "project": 1, "role": "owner",
			"status": "active", "created": 1700000000000, "hash": "xyz", "pepper": "p"}]}`,
		"no hash": `{"version": 1, "tokens": [{"id": "` + tok.ID + `", "project": 1, "role": "owner",
			"status": "active", "created": 1700000000000, "pepper": "p"}]}`,
		"duplicate": `{"version": 1, "tokens": [
			{"id": "` + tok.ID + `", "project": 1, "role": "owner", "status": "active", "created": 1, "revoked": 2},
			{"id": "` + tok.ID + `", "project": 1, "role": "owner", "status": "active", "created": 1, "revoked": 2}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Path: path})
			if err == nil {
				s.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != content {
				t.Error("Open changed the corrupt file")
			}
			// The failed Open released the lock.
			if err := os.WriteFile(path, []byte(`{"version": 1, "tokens": []}`), 0o600); err != nil {
				t.Fatal(err)
			}
			open(t, Options{Path: path})
		})
	}
}

func TestRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	opts := Options{Path: path, RevokedRetention: time.Hour, Now: clock}

	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	b, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	if _, err := s.Revoke(ctx, a.ID, clock()); err != nil {
		t.Fatal(err)
	}
	advance(30 * time.Minute)
	if _, err := s.Revoke(ctx, b.ID, clock()); err != nil {
		t.Fatal(err)
	}

	// a's tombstone is past retention; the next write purges it.
	advance(45 * time.Minute)
	if _, err := s.Get(ctx, a.ID); err != nil {
		t.Fatalf("the tombstone went before a write: %v", err)
	}
	c, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	mustCreate(t, s, c)
	if _, err := s.Get(ctx, a.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get of a tombstone past retention after a write: %v, want ErrNotFound", err)
	}
	if got, err := s.Get(ctx, b.ID); err != nil || !got.Revoked() {
		t.Errorf("Get of a tombstone within retention = %v, %v", got, err)
	}
	if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(a.ID)) {
		t.Error("the purged tombstone is still in the file")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// b's tombstone expires while the store is closed; loading purges it.
	advance(time.Hour)
	s = open(t, opts)
	if _, err := s.Get(ctx, b.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get of a tombstone past retention after reopen: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, c.ID); err != nil {
		t.Errorf("Get of a live token after reopen: %v", err)
	}
}

// makeUnwritable makes writes into dir fail and returns the undo. Where
// permissions do not bind (running as root), it moves dir away instead.
func makeUnwritable(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe")
	f, err := os.Create(probe)
	if err != nil {
		return func() { os.Chmod(dir, 0o700) }
	}
	f.Close()
	os.Remove(probe)
	os.Chmod(dir, 0o700)
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(away, dir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnwritableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "tokens.json")
	ctx := context.Background()
	s := open(t, Options{Path: path})
	kept, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	mustCreate(t, s, kept)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	events := make(chan auth.Event, 10)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(wctx, func(ev auth.Event) { events <- ev })
	storetest.Await(t, events, "EventResync")

	restore := makeUnwritable(t, dir)
	lost, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	err = s.Create(ctx, lost)
	if err == nil {
		restore()
		t.Fatal("Create into an unwritable directory succeeded")
	}
	if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), path) {
		t.Errorf("Create error %q: want ErrUnavailable naming %s", err, path)
	}
	_, revErr := s.Revoke(ctx, kept.ID, time.Now())
	_, updErr := s.Update(ctx, kept.ID, func(u *auth.Token) error { u.Status = auth.StatusInactive; return nil })
	restore()
	if revErr == nil {
		t.Fatal("Revoke into an unwritable directory succeeded")
	}
	if !errors.Is(updErr, auth.ErrUnavailable) {
		t.Fatalf("Update into an unwritable directory: %v, want ErrUnavailable", updErr)
	}

	// Nothing changed, in memory or on disk, and nothing was announced.
	if _, err := s.Get(ctx, lost.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get of the failed Create: %v, want ErrNotFound", err)
	}
	if got, err := s.Get(ctx, kept.ID); err != nil || got.Revoked() || got.Status != auth.StatusActive {
		t.Errorf("Get after the failed Revoke and Update = %+v, %v; want the live, active record", got, err)
	}
	if l, _ := s.List(ctx, 1); len(l) != 1 || l[0].ID != kept.ID {
		t.Errorf("List after failed writes = %d tokens, want only %s", len(l), kept.ID)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("the file changed")
	}
	select {
	case ev := <-events:
		t.Errorf("a failed write announced %+v", ev)
	default:
	}

	// Once writable again, the same Create works.
	mustCreate(t, s, lost)
	storetest.AwaitChanged(t, events, lost.ID)
}

// A watcher that falls behind gets EventResync for what it missed; the
// writer never waits for it.
func TestWatchOverflow(t *testing.T) {
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	s.watchBuffer = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	entered := make(chan struct{})
	release := make(chan struct{})
	events := make(chan auth.Event, 100)
	stalled := false // only touched by the Watch goroutine
	go s.Watch(ctx, func(ev auth.Event) {
		if ev.Kind == auth.EventChanged && !stalled {
			stalled = true
			close(entered)
			<-release // stall on the first change
		}
		events <- ev
	})
	storetest.Await(t, events, "EventResync")

	first, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	mustCreate(t, s, first)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not get the first change")
	}
	// The watcher is stalled: fill its buffer and overflow it.
	for range s.watchBuffer + 2 {
		tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
		mustCreate(t, s, tok)
	}
	close(release)

	storetest.AwaitChanged(t, events, first.ID)
	for {
		ev := storetest.Await(t, events, "EventResync after the overflow")
		if ev.Kind == auth.EventResync {
			break
		}
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan auth.Event, 1)
	done := make(chan error, 1)
	go func() { done <- s.Watch(context.Background(), func(ev auth.Event) { events <- ev }) }()
	storetest.Await(t, events, "EventResync")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Watch after Close returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after Close")
	}
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if _, err := s.Get(ctx, tok.ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := s.Create(ctx, tok); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v", err)
	}
	if _, err := s.List(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close: %v", err)
	}
	if _, err := s.Revoke(ctx, tok.ID, time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close: %v", err)
	}
	if _, err := s.Update(ctx, tok.ID, func(*auth.Token) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStaleTempRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	stale := filepath.Join(filepath.Dir(path), ".tokens.json.tmp-123")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, Options{Path: path})
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
}

func TestCountTokens(t *testing.T) {
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	ctx := context.Background()
	var ids []string
	for i, role := range []auth.Role{auth.RoleOwner, auth.RoleOwner, auth.RoleOwner, auth.RoleAccounting} {
		tok, _ := storetest.NewToken(t, int64(i+1), role)
		mustCreate(t, s, tok)
		ids = append(ids, tok.ID)
	}
	if _, err := s.Update(ctx, ids[1], func(u *auth.Token) error { u.Status = auth.StatusInactive; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, ids[2], time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got[auth.RoleOwner][auth.StatusActive] != 1 || got[auth.RoleOwner][auth.StatusInactive] != 1 ||
		got[auth.RoleAccounting][auth.StatusActive] != 1 || got[auth.RoleAccounting][auth.StatusInactive] != 0 {
		t.Errorf("CountTokens = %v, want owner 1 active 1 inactive, accounting 1 active (tombstone excluded)", got)
	}
	s.Close()
	if _, err := s.CountTokens(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("CountTokens after Close: %v, want ErrClosed", err)
	}
}

// A file written before rotated_to existed loads as it is (no token
// rotated); the field is written when set, and survives a reopen.
func TestRotatedToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	old, _ := storetest.NewToken(t, 3, auth.RoleOwner)
	next, _ := storetest.NewToken(t, 3, auth.RoleOwner)
	doc := `{"version": 1, "tokens": [{"id": "` + old.ID + `", "project": 3, "name": "before", "role": "owner",
		"status": "active", "created": 1700000000000, "expires": 4100000000000,
		"hash": "` + strings.Repeat("ab", 32) + `", "pepper": "p1"}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open of a file without rotated_to: %v", err)
	}
	got, err := s.Get(ctx, old.ID)
	if err != nil || got.Rotated() || got.Name != "before" {
		t.Fatalf("the old record: %+v, %v", got, err)
	}
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.RotatedTo = next.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"rotated_to": "`+next.ID+`"`)) {
		t.Errorf("the file does not hold rotated_to:\n%s", data)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Path: path})
	if got, err := s.Get(ctx, old.ID); err != nil || got.RotatedTo != next.ID {
		t.Errorf("after reopen: %+v, %v; want RotatedTo %s", got, err, next.ID)
	}
}
