package tokenapi

// Rotate, the plain function, and its failure paths against both stores.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

func TestRotateFilestore(t *testing.T) {
	testRotate(t, func(t *testing.T) auth.Store {
		s, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRotateRedisstore(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	n := 0
	testRotate(t, func(t *testing.T) auth.Store {
		n++
		s, err := redisstore.New(redisstore.Options{Client: c, Prefix: fmt.Sprintf("rotatetest%d:", n), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// errInjected is the failure faultyStore injects.
var errInjected = fmt.Errorf("injected: %w", auth.ErrUnavailable)

// faultyStore fails steps of a rotation of the token old: the create of
// the successor (createFails: after storing it), the retirement of old
// (retireFails: before storing the change, or after when retireStored),
// the withdrawal of the successor (withdrawFails). cancel, if set, is
// called once the successor is stored (the client goes away).
type faultyStore struct {
	auth.Store
	old                      string
	createFails, retireFails bool
	retireStored             bool
	withdrawFails            bool
	revokeFirst              bool              // old is revoked by "another call" just before its retirement
	expireFirst              bool              // old expires (another call ends it) just before its retirement
	changeFirst              func(*auth.Token) // another call changes old so just before its retirement
	cancel                   context.CancelFunc
	// getFails is how many reads of old fail (-1: every one): the
	// rotation reads old only to learn whether a failed retirement was
	// stored.
	getFails int
	mu       sync.Mutex
	created  []string
}

func (s *faultyStore) Create(ctx context.Context, t *auth.Token) error {
	err := s.Store.Create(ctx, t)
	s.mu.Lock()
	s.created = append(s.created, t.ID)
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	if err == nil && s.createFails {
		return fmt.Errorf("create %s: stored but not indexed: %w", t.ID, errInjected)
	}
	return err
}

func (s *faultyStore) retire(ctx context.Context, do func() (*auth.Token, error)) (*auth.Token, error) {
	if s.expireFirst {
		end := func(t *auth.Token) error {
			t.ExpiresAt = time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
			return nil
		}
		if _, err := s.Store.Update(ctx, s.old, end); err != nil {
			return nil, err
		}
	}
	if s.revokeFirst {
		if _, err := s.Store.Revoke(ctx, s.old, time.Now()); err != nil {
			return nil, err
		}
	}
	if change := s.changeFirst; change != nil {
		s.changeFirst = nil // once, before the first step
		if _, err := s.Store.Update(ctx, s.old, func(t *auth.Token) error { change(t); return nil }); err != nil {
			return nil, err
		}
	}
	if !s.retireFails {
		return do()
	}
	if s.retireStored {
		if _, err := do(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("retire %s: %w", s.old, errInjected)
}

func (s *faultyStore) Get(ctx context.Context, id string) (*auth.Token, error) {
	s.mu.Lock()
	fail := id == s.old && s.getFails != 0
	if fail && s.getFails > 0 {
		s.getFails--
	}
	s.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("get %s: %w", id, errInjected)
	}
	return s.Store.Get(ctx, id)
}

func (s *faultyStore) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	if id != s.old {
		return s.Store.Update(ctx, id, fn)
	}
	return s.retire(ctx, func() (*auth.Token, error) { return s.Store.Update(ctx, id, fn) })
}

func (s *faultyStore) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	if id == s.old {
		return s.retire(ctx, func() (*auth.Token, error) { return s.Store.Revoke(ctx, id, at) })
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("revoke %s: %w", id, ctx.Err()) // what a Redis call does
	}
	if s.withdrawFails {
		return nil, fmt.Errorf("revoke %s: %w", id, errInjected)
	}
	return s.Store.Revoke(ctx, id, at)
}

// successorID is the id of the successor the rotation created.
func (s *faultyStore) successorID(t *testing.T) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.created) != 1 {
		t.Fatalf("%d tokens created, want 1", len(s.created))
	}
	return s.created[0]
}

func testRotate(t *testing.T, open func(t *testing.T) auth.Store) {
	ctx := context.Background()
	h := storetest.NewHasher(t)
	// setup stores a fresh old token (lifetime 720h, 1/s) in a fresh store.
	setup := func(t *testing.T, f *faultyStore) (auth.Store, *auth.Token) {
		st := open(t)
		old, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		old.CreatedAt = time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		old.ExpiresAt = old.CreatedAt.Add(720 * time.Hour)
		old.RateLimit = 1
		if err := st.Create(ctx, old); err != nil {
			t.Fatal(err)
		}
		f.Store, f.old = st, old.ID
		return st, old
	}
	// unchanged checks that a failed rotation left old as it was and no
	// other live token.
	unchanged := func(t *testing.T, st auth.Store, old *auth.Token) {
		t.Helper()
		got, err := st.Get(ctx, old.ID)
		if err != nil {
			t.Fatal(err)
		}
		storetest.AssertEqual(t, got, old)
		if l, err := st.List(ctx, 42); err != nil || len(l) != 1 || l[0].ID != old.ID {
			t.Errorf("live tokens after a failed rotation: %d (%v), want the old one only", len(l), err)
		}
	}
	for _, grace := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("ok/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{}
			st, old := setup(t, f)
			now := time.Now()
			res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			next, err := st.Get(ctx, res.Next.ID)
			if err != nil || !h.Verify(res.Credential, &next.SecretHash, next.PepperID) || next.Rotated() {
				t.Fatalf("successor %+v (%v) does not verify", next, err)
			}
			if next.RateLimit != 1 || next.ExpiresAt.Sub(next.CreatedAt) != 720*time.Hour {
				t.Errorf("successor %+v: want the old token's limit and lifetime", next)
			}
			prev, _ := st.Get(ctx, old.ID)
			switch {
			case grace == 0 && !prev.Revoked(),
				grace > 0 && (prev.RotatedTo != next.ID || prev.ExpiresAt.After(now.Add(grace))):
				t.Errorf("old token after the rotation: %+v", prev)
			}
			if res.Unannounced != nil {
				t.Errorf("Unannounced = %v", res.Unannounced)
			}
		})
	}
	// A rotation replaces the secret: it never revives a token. An
	// inactive token's successor is inactive; an expired token is not
	// rotated at all.
	for _, grace := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("inactive/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{}
			st, old := setup(t, f)
			old, err := st.Update(ctx, old.ID, func(t *auth.Token) error { t.Status = auth.StatusInactive; return nil })
			if err != nil {
				t.Fatal(err)
			}
			res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			next, err := st.Get(ctx, res.Next.ID)
			if err != nil || next.Status != auth.StatusInactive || res.Next.Status != auth.StatusInactive {
				t.Errorf("successor of an inactive token: %+v (%v), want inactive", next, err)
			}
			if prev, _ := st.Get(ctx, old.ID); prev.Status != auth.StatusInactive {
				t.Errorf("old token after the rotation: %+v, want still inactive", prev)
			}
		})
		t.Run(fmt.Sprintf("expired/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{}
			st := open(t)
			old, _ := storetest.NewToken(t, 42, auth.RoleOwner)
			now := time.Now()
			old.CreatedAt = now.Add(-48 * time.Hour).UTC().Truncate(time.Millisecond)
			old.ExpiresAt = now.Add(-time.Hour).UTC().Truncate(time.Millisecond)
			if err := st.Create(ctx, old); err != nil {
				t.Fatal(err)
			}
			f.Store, f.old = st, old.ID
			_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: now})
			var ref *refusal
			if !errors.As(err, &ref) || ref.status != http.StatusConflict || ref.code != auth.CodeTokenExpired.String() ||
				!strings.Contains(ref.message, "create a new token") {
				t.Fatalf("Rotate of an expired token = %v, want 409 token_expired saying to create a new token", err)
			}
			unchanged(t, st, old)
			if len(f.created) != 0 {
				t.Errorf("%d tokens created by a refused rotation", len(f.created))
			}
		})
	}
	t.Run("bounds", func(t *testing.T) {
		f := &faultyStore{}
		_, old := setup(t, f)
		notAfter := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		res, err := Rotate(ctx, f, h, Rotation{Old: old, Now: time.Now(), NotAfter: notAfter, Ceiling: Limit{Rate: 0.25}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Next.ExpiresAt.Equal(notAfter) || res.Next.RateLimit != 0.25 || res.Next.RateBurst != 1 {
			t.Errorf("successor %+v, want expiry %v and limit 0.25/1", res.Next, notAfter)
		}
	})
	t.Run("expires_in past the maker", func(t *testing.T) {
		f := &faultyStore{}
		st, old := setup(t, f)
		notAfter := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		_, err := Rotate(ctx, f, h, Rotation{Old: old, Now: time.Now(), NotAfter: notAfter, Lifetime: 100 * time.Hour})
		var ref *refusal
		if !errors.As(err, &ref) || ref.status != http.StatusForbidden || ref.code != codeLifetime ||
			!strings.Contains(ref.message, stamp(notAfter)) {
			t.Fatalf("Rotate with an expires_in past the maker's expiry = %v, want 403 lifetime_forbidden naming %s", err, stamp(notAfter))
		}
		unchanged(t, st, old)
		if len(f.created) != 0 {
			t.Errorf("%d tokens created by a refused rotation", len(f.created))
		}
	})
	t.Run("create fails", func(t *testing.T) {
		f := &faultyStore{createFails: true}
		st, old := setup(t, f)
		_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: time.Hour, Now: time.Now()})
		if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "creating the new token") {
			t.Fatalf("Rotate = %v", err)
		}
		unchanged(t, st, old)
		if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
			t.Errorf("the successor stored half-way is not withdrawn: %+v, %v", next, err)
		}
	})
	for _, grace := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("retire fails/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{retireFails: true}
			st, old := setup(t, f)
			_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "retiring the old token") {
				t.Fatalf("Rotate = %v", err)
			}
			unchanged(t, st, old)
			if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
				t.Errorf("the unused successor is not withdrawn: %+v, %v", next, err)
			}
		})
		t.Run(fmt.Sprintf("retire stored, not announced/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{retireFails: true, retireStored: true}
			st, old := setup(t, f)
			res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if err != nil || !errors.Is(res.Unannounced, auth.ErrUnavailable) {
				t.Fatalf("Rotate = %+v, %v; want it to stand, unannounced", res, err)
			}
			if grace == 0 && !res.Previous.Revoked() || grace > 0 && res.Previous.RotatedTo != res.Next.ID {
				t.Errorf("previous = %+v", res.Previous)
			}
			if next, err := st.Get(ctx, res.Next.ID); err != nil || next.Revoked() {
				t.Errorf("the successor of a rotation that stands: %+v, %v", next, err)
			}
		})
	}
	// A retirement reported failed is read back, a few times, before the
	// successor is withdrawn: when it was stored the rotation stands
	// (withdrawing the successor then would leave no working token);
	// when the store cannot say, the successor is kept and handed out
	// (Unconfirmed), the one token sure to work; when it was not stored,
	// the successor is withdrawn and the error says the old token still
	// works.
	for _, grace := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("retire stored, read back late/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{retireFails: true, retireStored: true, getFails: 2}
			st, old := setup(t, f)
			res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if err != nil || res.Unannounced == nil || res.Unconfirmed != nil {
				t.Fatalf("Rotate = %+v, %v; want it to stand, unannounced", res, err)
			}
			if next, err := st.Get(ctx, res.Next.ID); err != nil || next.Revoked() {
				t.Errorf("the successor of a rotation that stands: %+v, %v", next, err)
			}
			if prev, _ := st.Get(ctx, old.ID); prev.RotatedTo != res.Next.ID {
				t.Errorf("old token: %+v, want it retired", prev)
			}
		})
		for _, stored := range []bool{true, false} {
			t.Run(fmt.Sprintf("retire unconfirmed, stored=%t/grace=%s", stored, grace), func(t *testing.T) {
				f := &faultyStore{retireFails: true, retireStored: stored, getFails: -1}
				st, old := setup(t, f)
				res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
				if err != nil || !errors.Is(res.Unconfirmed, auth.ErrUnavailable) {
					t.Fatalf("Rotate = %+v, %v; want the successor handed out, unconfirmed", res, err)
				}
				next, err := st.Get(ctx, res.Next.ID)
				if err != nil || next.Revoked() || !h.Verify(res.Credential, &next.SecretHash, next.PepperID) {
					t.Errorf("the successor handed out does not work: %+v, %v", next, err)
				}
			})
		}
		t.Run(fmt.Sprintf("retire not stored, says the old works/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{retireFails: true}
			st, old := setup(t, f)
			_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), old.ID+" still works") {
				t.Fatalf("Rotate = %v, want it to say the old token still works", err)
			}
			unchanged(t, st, old)
		})
	}
	// Another call revokes, deactivates, narrows or rotates the old token
	// between the rotation's read and its retirement: the rotation does
	// not stand (a token an operator just revoked or deactivated must not
	// live on in an active successor, nor one token in two successors),
	// and the successor, whose secret nobody saw, is withdrawn.
	for _, grace := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("revoked meanwhile/grace=%s", grace), func(t *testing.T) {
			f := &faultyStore{revokeFirst: true}
			st, old := setup(t, f)
			res, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
			if !errors.Is(err, auth.ErrRevoked) {
				t.Fatalf("Rotate = %+v, %v; want ErrRevoked", res, err)
			}
			if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
				t.Errorf("the successor of a token revoked meanwhile is not withdrawn: %+v, %v", next, err)
			}
		})
		other, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		for name, change := range map[string]func(*auth.Token){
			"deactivated": func(t *auth.Token) { t.Status = auth.StatusInactive },
			"narrowed":    func(t *auth.Token) { t.RateLimit = 0.5 },
			"rotated":     func(t *auth.Token) { t.RotatedTo = other.ID },
		} {
			t.Run(fmt.Sprintf("%s meanwhile/grace=%s", name, grace), func(t *testing.T) {
				f := &faultyStore{changeFirst: change}
				st, old := setup(t, f)
				_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: grace, Now: time.Now()})
				var ref *refusal
				if !errors.As(err, &ref) || ref.status != http.StatusConflict || ref.code != codeChanged {
					t.Fatalf("Rotate = %v, want 409 token_changed", err)
				}
				want := *old
				change(&want)
				got, err := st.Get(ctx, old.ID)
				if err != nil {
					t.Fatal(err)
				}
				storetest.AssertEqual(t, got, &want) // as the other call left it
				if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
					t.Errorf("the successor is not withdrawn: %+v, %v", next, err)
				}
			})
		}
	}
	t.Run("expired meanwhile", func(t *testing.T) {
		f := &faultyStore{expireFirst: true}
		st, old := setup(t, f)
		_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: time.Hour, Now: time.Now()})
		var ref *refusal
		if !errors.As(err, &ref) || ref.code != auth.CodeTokenExpired.String() {
			t.Fatalf("Rotate = %v, want token_expired", err)
		}
		if got, _ := st.Get(ctx, old.ID); got.Rotated() {
			t.Errorf("old token marked rotated: %+v", got)
		}
		if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
			t.Errorf("the successor of a token that expired meanwhile is not withdrawn: %+v, %v", next, err)
		}
	})
	t.Run("withdrawal fails too", func(t *testing.T) {
		f := &faultyStore{retireFails: true, withdrawFails: true}
		st, old := setup(t, f)
		_, err := Rotate(ctx, f, h, Rotation{Old: old, Grace: time.Hour, Now: time.Now()})
		if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "withdrawing the unused new token") {
			t.Fatalf("Rotate = %v", err)
		}
		if got, _ := st.Get(ctx, old.ID); got.Rotated() || !got.ExpiresAt.Equal(old.ExpiresAt) {
			t.Errorf("old token changed: %+v", got)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		f := &faultyStore{cancel: cancel}
		st, old := setup(t, f)
		_, err := Rotate(cctx, f, h, Rotation{Old: old, Grace: time.Hour, Now: time.Now()})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Rotate = %v, want context.Canceled", err)
		}
		unchanged(t, st, old)
		if next, err := st.Get(ctx, f.successorID(t)); err != nil || !next.Revoked() {
			t.Errorf("the successor is not withdrawn after the client left: %+v, %v", next, err)
		}
	})
}
