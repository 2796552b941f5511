// Package storetest is the contract test suite of auth.Store, run against
// every implementation, and helpers to build realistic token records for
// other tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Pepper is the fixed pepper of NewHasher. It is for tests only.
var Pepper = []byte("storetest pepper: for tests only, never in production")

// NewHasher returns a Hasher whose current pepper is Pepper.
func NewHasher(tb testing.TB) *auth.Hasher {
	tb.Helper()
	h, err := auth.NewHasher(Pepper)
	if err != nil {
		tb.Fatalf("storetest: NewHasher: %v", err)
	}
	return h
}

// NewToken returns a fresh active record of project with role, created now
// (at millisecond precision, the stores' resolution), with no expiry, its
// secret hashed by NewHasher; and the credential that verifies against it.
func NewToken(tb testing.TB, project int64, role auth.Role) (*auth.Token, string) {
	tb.Helper()
	id, cred, err := auth.NewCredential()
	if err != nil {
		tb.Fatalf("storetest: NewCredential: %v", err)
	}
	sum, pepperID := NewHasher(tb).Hash(cred)
	return &auth.Token{
		ID:         id,
		ProjectID:  project,
		Name:       "token " + id[len(auth.IDPrefix):len(auth.IDPrefix)+4],
		Role:       role,
		Status:     auth.StatusActive,
		CreatedAt:  time.Now().UTC().Truncate(time.Millisecond),
		SecretHash: sum,
		PepperID:   pepperID,
	}, cred
}

// waitTimeout bounds every wait for a Watch event or a goroutine. It is
// generous: it only decides how long a broken implementation hangs.
const waitTimeout = 10 * time.Second

// Run runs the auth.Store and auth.ActivityStore contracts against the stores open returns. Every
// subtest opens a fresh, empty store and closes it when the subtest ends, so
// open must not close it itself.
//
// Beyond the interface's documentation, the contract pins down:
//   - times are kept at millisecond precision;
//   - List of a project without live tokens returns an empty, non-nil slice;
//   - Revoke keeps every field of the record but the secret hash and pepper
//     id, which are zeroed, and sets RevokedAt (to the given time);
//   - Create of a revoked id fails with ErrExists while the tombstone lives;
//   - Update of a tombstone fails with ErrRevoked (and not ErrNotFound), and
//     calls no fn;
//   - an Update whose fn fails, or whose result is invalid, writes and
//     announces nothing;
//   - CreateWithin never lets a project pass its limit, even from two
//     replicas at once (see runLimit and WithPeer).
func Run(t *testing.T, open func(t *testing.T) auth.ActivityStore, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	fresh := func(t *testing.T) auth.ActivityStore {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, fresh(t)) })
	t.Run("CreateDuplicate", func(t *testing.T) { testCreateDuplicate(t, fresh(t)) })
	t.Run("CreateInvalid", func(t *testing.T) { testCreateInvalid(t, fresh(t)) })
	t.Run("GetUnknown", func(t *testing.T) { testGetUnknown(t, fresh(t)) })
	t.Run("List", func(t *testing.T) { testList(t, fresh(t)) })
	t.Run("ListEmpty", func(t *testing.T) { testListEmpty(t, fresh(t)) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, fresh(t)) })
	t.Run("RevokeUnknown", func(t *testing.T) { testRevokeUnknown(t, fresh(t)) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, fresh(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testConcurrentCreate(t, fresh(t)) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, fresh(t)) })
	t.Run("UpdateRevoked", func(t *testing.T) { testUpdateRevoked(t, fresh(t)) })
	t.Run("UpdateUnknown", func(t *testing.T) { testUpdateUnknown(t, fresh(t)) })
	t.Run("UpdateRefused", func(t *testing.T) { testUpdateRefused(t, fresh(t)) })
	t.Run("UpdateWatch", func(t *testing.T) { testUpdateWatch(t, fresh(t)) })
	t.Run("ConcurrentUpdate", func(t *testing.T) { testConcurrentUpdate(t, fresh(t)) })
	t.Run("RotatedTo", func(t *testing.T) { testRotatedTo(t, fresh(t)) })
	t.Run("Replaced", func(t *testing.T) { testReplaced(t, fresh(t)) })
	t.Run("Restrictions", func(t *testing.T) { testRestrictions(t, fresh(t)) })
	t.Run("Lineage", func(t *testing.T) { testLineage(t, fresh(t)) })
	t.Run("RetireCompare", func(t *testing.T) { testRetireCompare(t, fresh(t)) })
	t.Run("Activity", func(t *testing.T) { runActivity(t, fresh) })
	t.Run("Limit", func(t *testing.T) { runLimit(t, fresh, o) })
}

func testCreateGet(t *testing.T, s auth.Store) {
	ctx := context.Background()
	created := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

	// Every field set, expiry included; times carry sub-millisecond parts.
	full, _ := NewToken(t, 42, auth.RoleAccounting)
	full.Name = "CI deploys — ünïcode"
	full.Status = auth.StatusInactive
	full.CreatedAt = created
	full.ExpiresAt = created.Add(90 * 24 * time.Hour).Add(987654 * time.Nanosecond)
	successor, _ := NewToken(t, 42, auth.RoleAccounting)
	full.RotatedTo = successor.ID
	full.Replaced = true
	full.Scopes = auth.PermSet(0).With(auth.PermBillingRead)
	full.AllowedIPs = prefixes(t, "10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
	root, _ := NewToken(t, 42, auth.RoleOwner)
	full.Lineage = auth.Lineage{Root: root.ID, Rate: 0.25, Burst: 3, Shadow: true}

	// No expiry, empty name; the token permissions, stored by name like
	// the others.
	bare, _ := NewToken(t, 42, auth.RoleOwner)
	bare.Name = ""
	bare.Scopes = auth.PermSet(0).With(auth.PermTokensRead).With(auth.PermTokensWrite)
	bare.CreatedAt = created.In(time.FixedZone("UTC+3", 3*3600))

	for _, want := range []*auth.Token{full, bare} {
		in := *want
		if err := s.Create(ctx, &in); err != nil {
			t.Fatalf("Create(%s): %v", want.ID, err)
		}
		in.Name = "changed after Create" // the store must have copied it
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.ID, err)
		}
		AssertEqual(t, got, want)
		if got.Revoked() {
			t.Errorf("Get(%s).Revoked() = true for a live token", want.ID)
		}
	}
}

func testCreateDuplicate(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 1, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	dup, _ := NewToken(t, 2, auth.RoleAccounting)
	dup.ID = tok.ID
	if err := s.Create(ctx, dup); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("second Create of %s: %v, want ErrExists", tok.ID, err)
	}
	got, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	AssertEqual(t, got, tok) // the first record is untouched
	if l := list(t, s, 2); len(l) != 0 {
		t.Errorf("the refused duplicate is listed in project 2: %v", ids(l))
	}
}

func testCreateInvalid(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 1, auth.RoleOwner)
	bad := *tok
	bad.Role = auth.RoleInvalid
	err := s.Create(ctx, &bad)
	if err == nil {
		t.Fatal("Create of a record without a role succeeded")
	}
	if errors.Is(err, auth.ErrExists) || errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Create of an invalid record: %v, want a validation error", err)
	}
	if _, err := s.Get(ctx, tok.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get after a refused Create: %v, want ErrNotFound", err)
	}
}

func testGetUnknown(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 1, auth.RoleOwner)
	for _, id := range []string{tok.ID, "", "nonsense", "tsw_"} {
		got, err := s.Get(ctx, id)
		if !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("Get(%q) = %v, %v; want ErrNotFound", id, got, err)
		}
		if errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("Get(%q): %v also matches ErrUnavailable", id, err)
		}
	}
}

func testList(t *testing.T, s auth.Store) {
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(project int64, created time.Time) *auth.Token {
		tok, _ := NewToken(t, project, auth.RoleOwner)
		tok.CreatedAt = created
		return tok
	}
	oldest := mk(7, base.Add(-time.Hour))
	tieA, tieB := mk(7, base), mk(7, base)
	if tieB.ID < tieA.ID {
		tieA, tieB = tieB, tieA
	}
	newest := mk(7, base.Add(time.Hour))
	revoked := mk(7, base.Add(-2*time.Hour))
	other := mk(8, base)

	// Created out of order.
	for _, tok := range []*auth.Token{newest, tieB, other, revoked, oldest, tieA} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if _, err := s.Revoke(ctx, revoked.ID, base); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	got := list(t, s, 7)
	want := []*auth.Token{oldest, tieA, tieB, newest}
	if len(got) != len(want) {
		t.Fatalf("List(7) = %v, want %v", ids(got), ids(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID {
			t.Fatalf("List(7) = %v, want %v (oldest first, ties by id)", ids(got), ids(want))
		}
		AssertEqual(t, got[i], want[i])
	}
	if got := list(t, s, 8); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("List(8) = %v, want [%s]", ids(got), other.ID)
	}
}

func testListEmpty(t *testing.T, s auth.Store) {
	got, err := s.List(context.Background(), 99)
	if err != nil {
		t.Fatalf("List of an empty project: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Fatalf("List of an empty project = %#v, want an empty non-nil slice", got)
	}
}

func testRevoke(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 5, auth.RoleAccounting)
	tok.ExpiresAt = tok.CreatedAt.Add(time.Hour)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	at := time.Now().Add(time.Minute).Round(0)

	want := *tok
	want.RevokedAt = at
	want.SecretHash = [32]byte{}
	want.PepperID = ""

	got, err := s.Revoke(ctx, tok.ID, at)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !got.Revoked() {
		t.Fatalf("Revoke returned a live record: %+v", got)
	}
	AssertEqual(t, got, &want)

	got, err = s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get of the tombstone: %v", err)
	}
	AssertEqual(t, got, &want)

	if l := list(t, s, 5); len(l) != 0 {
		t.Errorf("List after Revoke = %v, want none", ids(l))
	}

	// Revoking again returns the tombstone unchanged.
	got, err = s.Revoke(ctx, tok.ID, at.Add(time.Hour))
	if err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	AssertEqual(t, got, &want)

	// The id stays taken.
	again, _ := NewToken(t, 5, auth.RoleOwner)
	again.ID = tok.ID
	if err := s.Create(ctx, again); !errors.Is(err, auth.ErrExists) {
		t.Errorf("Create of a revoked id: %v, want ErrExists", err)
	}
}

func testRevokeUnknown(t *testing.T, s auth.Store) {
	tok, _ := NewToken(t, 1, auth.RoleOwner)
	got, err := s.Revoke(context.Background(), tok.ID, time.Now())
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Revoke of an unknown id = %v, %v; want ErrNotFound", got, err)
	}
}

func testWatch(t *testing.T, s auth.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan auth.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func(ev auth.Event) { events <- ev })
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	if ev := Await(t, events, "the first event"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}

	tok, _ := NewToken(t, 3, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	AwaitChanged(t, events, tok.ID)

	if _, err := s.Revoke(ctx, tok.ID, time.Now()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	AwaitChanged(t, events, tok.ID)

	cancel()
	stopped = true
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Watch did not return after its context was canceled")
	}
}

func testConcurrentCreate(t *testing.T, s auth.Store) {
	ctx := context.Background()
	const n = 32
	toks := make([]*auth.Token, n)
	for i := range toks {
		toks[i], _ = NewToken(t, 11, auth.RoleOwner)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, tok := range toks {
		wg.Go(func() {
			if err := s.Create(ctx, tok); err != nil {
				errs <- fmt.Errorf("Create(%s): %w", tok.ID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got := list(t, s, 11)
	if len(got) != n {
		t.Fatalf("List after %d concurrent creates has %d tokens", n, len(got))
	}
	seen := make(map[string]bool, n)
	for i, tok := range got {
		seen[tok.ID] = true
		if i > 0 && !before(got[i-1], tok) {
			t.Errorf("List is out of order at %d: %s (%v) then %s (%v)",
				i, got[i-1].ID, got[i-1].CreatedAt, tok.ID, tok.CreatedAt)
		}
	}
	for _, tok := range toks {
		if !seen[tok.ID] {
			t.Errorf("%s is not listed", tok.ID)
		}
	}
}

func testUpdate(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 21, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	expires := time.Now().Add(48*time.Hour + 123456*time.Nanosecond) // sub-millisecond part

	// Every mutable field set; the stored record is returned, at millisecond
	// precision, and fn got the stored record.
	want := *tok
	want.Name = "renamed — ünïcode"
	want.Role = auth.RoleAccounting
	want.Status = auth.StatusInactive
	want.ExpiresAt = expires
	want.RateLimit = 2.5
	want.RateBurst = 7
	want.RateShadow = true
	want.Scopes = auth.PermSet(0).With(auth.PermBillingRead)
	want.AllowedIPs = prefixes(t, "198.51.100.0/24", "2001:db8:1::/48")
	calls := 0
	got, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		calls++
		AssertEqual(t, u, tok)
		u.Name, u.Role, u.Status = want.Name, want.Role, want.Status
		u.ExpiresAt, u.RateLimit, u.RateBurst, u.RateShadow = expires, 2.5, 7, true
		u.Scopes, u.AllowedIPs = want.Scopes, want.AllowedIPs
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls == 0 {
		t.Fatal("Update did not call fn")
	}
	AssertEqual(t, got, &want)
	if got.ExpiresAt.UnixMilli() != expires.UnixMilli() || !got.ExpiresAt.Equal(time.UnixMilli(expires.UnixMilli())) {
		t.Errorf("Update returned expiry %v, want %v at millisecond precision", got.ExpiresAt, expires)
	}
	stored, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get after Update: %v", err)
	}
	AssertEqual(t, stored, &want)
	if l := list(t, s, 21); len(l) != 1 {
		t.Fatalf("List after Update = %v, want the one token", ids(l))
	} else {
		AssertEqual(t, l[0], &want)
	}

	clearOptional(t, s, &want)

	// An updated token can still be revoked, keeping its fields.
	if _, err := s.Update(ctx, tok.ID, func(u *auth.Token) error { u.RateLimit = 0.5; return nil }); err != nil {
		t.Fatalf("third Update: %v", err)
	}
	tomb, err := s.Revoke(ctx, tok.ID, time.Now())
	if err != nil {
		t.Fatalf("Revoke after Update: %v", err)
	}
	if tomb.RateLimit != 0.5 || tomb.Name != want.Name {
		t.Errorf("tombstone after Update = %s, want its rate limit and name kept", format(tomb))
	}
}

// clearOptional clears every optional field of the live record want by
// an Update, and checks that they are gone from what Update returns and
// Get reads.
func clearOptional(t *testing.T, s auth.Store, want *auth.Token) {
	t.Helper()
	ctx := context.Background()
	want.Status = auth.StatusActive
	want.ExpiresAt = time.Time{}
	want.RateLimit, want.RateBurst, want.RateShadow = 0, 0, false
	want.Scopes, want.AllowedIPs = 0, nil
	got, err := s.Update(ctx, want.ID, func(u *auth.Token) error {
		u.Status, u.ExpiresAt, u.RateLimit, u.RateBurst, u.RateShadow = auth.StatusActive, time.Time{}, 0, 0, false
		u.Scopes, u.AllowedIPs = 0, nil
		return nil
	})
	if err != nil {
		t.Fatalf("Update clearing the optional fields: %v", err)
	}
	AssertEqual(t, got, want)
	stored, err := s.Get(ctx, want.ID)
	if err != nil {
		t.Fatalf("Get after clearing the optional fields: %v", err)
	}
	AssertEqual(t, stored, want)
}

func testUpdateRevoked(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 22, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	tomb, err := s.Revoke(ctx, tok.ID, time.Now())
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		t.Error("Update called fn for a tombstone")
		u.Status = auth.StatusActive
		return nil
	})
	if !errors.Is(err, auth.ErrRevoked) || errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("Update of a tombstone = %v, %v; want ErrRevoked only", got, err)
	}
	after, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	AssertEqual(t, after, tomb)
}

func testUpdateUnknown(t *testing.T, s auth.Store) {
	tok, _ := NewToken(t, 23, auth.RoleOwner)
	for _, id := range []string{tok.ID, "", "nonsense"} {
		got, err := s.Update(context.Background(), id, func(*auth.Token) error {
			t.Errorf("Update(%q) called fn for an unknown id", id)
			return nil
		})
		if !errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrRevoked) || errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("Update(%q) of an unknown id = %v, %v; want ErrNotFound only", id, got, err)
		}
	}
	if _, err := s.Get(context.Background(), tok.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get after Update of an unknown id: %v, want ErrNotFound", err)
	}
}

// testUpdateRefused checks that an Update whose fn fails, or that would
// store an invalid record or change what cannot change, writes and
// announces nothing.
func testUpdateRefused(t *testing.T, s auth.Store) {
	ctx := context.Background()
	w := watchCreated(t, s, 24)
	tok := w.tok

	errVeto := errors.New("vetoed by fn")
	got, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		u.Status = auth.StatusInactive // edits made before failing are dropped
		return errVeto
	})
	if !errors.Is(err, errVeto) {
		t.Fatalf("Update with a failing fn = %v, %v; want an error wrapping fn's", got, err)
	}
	if errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrRevoked) {
		t.Errorf("Update with a failing fn: %v also matches a store error", err)
	}
	other, _ := NewToken(t, 24, auth.RoleOwner)
	for name, edit := range map[string]func(*auth.Token){
		"invalid role":          func(u *auth.Token) { u.Role = auth.RoleInvalid },
		"negative rate":         func(u *auth.Token) { u.RateLimit = -1 },
		"burst, no rate":        func(u *auth.Token) { u.RateBurst = 3 },
		"project":               func(u *auth.Token) { u.ProjectID = 25 },
		"id":                    func(u *auth.Token) { u.ID = other.ID },
		"created":               func(u *auth.Token) { u.CreatedAt = u.CreatedAt.Add(-time.Hour) },
		"secret":                func(u *auth.Token) { u.SecretHash = other.SecretHash },
		"revoked by fn":         func(u *auth.Token) { u.RevokedAt = time.Now() },
		"name over 100 B":       func(u *auth.Token) { u.Name = strings.Repeat("n", auth.MaxNameLen+1) },
		"invalid status":        func(u *auth.Token) { u.Status = auth.StatusInvalid },
		"burst below zero":      func(u *auth.Token) { u.RateLimit, u.RateBurst = 1, -1 },
		"rotated to self":       func(u *auth.Token) { u.RotatedTo = u.ID },
		"rotated to junk":       func(u *auth.Token) { u.RotatedTo = "tsw_nope" },
		"replaced, not rotated": func(u *auth.Token) { u.Replaced = true },
		"scope beyond role": func(u *auth.Token) {
			u.Role, u.Scopes = auth.RoleAccounting, auth.PermSet(0).With(auth.PermComputeWrite)
		},
		"unmasked range": func(u *auth.Token) { u.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} },
	} {
		got, err := s.Update(ctx, tok.ID, func(u *auth.Token) error { edit(u); return nil })
		if err == nil {
			t.Errorf("Update (%s) succeeded: %s", name, format(got))
			continue
		}
		if errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrRevoked) {
			t.Errorf("Update (%s): %v, want a validation error", name, err)
		}
	}

	stored, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	AssertEqual(t, stored, tok)
	if _, err := s.Get(ctx, other.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Get of the id a refused Update tried to move to: %v, want ErrNotFound", err)
	}
	awaitOnlyMarkers(t, s, w.ch, 24, "a refused Update announced")
}

// orderMarkers is how many markers awaitOnlyMarkers creates. A store that
// spreads its announcements over several servers (a Redis Cluster client
// sends each PUBLISH to the next node) keeps their order only per server,
// so one marker would show only that nothing was announced through the
// server it went through; this many go through every server of a small
// cluster.
const orderMarkers = 6

// awaitOnlyMarkers creates orderMarkers new records in project and awaits
// their announcements, failing the test (with what, and the event) on any
// other change announced before the last of them: the announcements of
// whatever the test did before, if any, come first on every server.
func awaitOnlyMarkers(t *testing.T, s auth.Store, events <-chan auth.Event, project int64, what string) {
	t.Helper()
	pending := make(map[string]bool, orderMarkers)
	for range orderMarkers {
		marker, _ := NewToken(t, project, auth.RoleOwner)
		if err := s.Create(context.Background(), marker); err != nil {
			t.Fatalf("Create of a marker: %v", err)
		}
		pending[marker.ID] = true
	}
	for len(pending) > 0 {
		ev := Await(t, events, fmt.Sprintf("the announcements of %d markers", len(pending)))
		switch {
		case ev.Kind == auth.EventResync:
		case ev.Kind == auth.EventChanged && pending[ev.ID]:
			delete(pending, ev.ID)
		default:
			t.Fatalf("%s %+v", what, ev)
		}
	}
}

// createdWatch is a Watch of a store started before the creation of a
// record, tok, whose announcement it has delivered.
type createdWatch struct {
	ch  chan auth.Event
	tok *auth.Token
}

// watchCreated starts watching s (until the test ends), then creates a
// record of project and awaits its announcement. Watching from before the
// Create is what makes the announcements that follow unambiguous: an
// announcement made before a Watch subscribed may still be delivered
// after its first EventResync (in a Redis Cluster, a PUBLISH on one node
// reaches a subscriber on another over the cluster bus, after the PUBLISH
// has returned).
func watchCreated(t *testing.T, s auth.Store, project int64) createdWatch {
	t.Helper()
	w := createdWatch{ch: make(chan auth.Event, 100)}
	t.Cleanup(watch(t, s, w.ch))
	if ev := Await(t, w.ch, "the first event"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}
	w.tok, _ = NewToken(t, project, auth.RoleOwner)
	if err := s.Create(context.Background(), w.tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	AwaitChanged(t, w.ch, w.tok.ID)
	return w
}

func testUpdateWatch(t *testing.T, s auth.Store) {
	ctx := context.Background()
	w := watchCreated(t, s, 26)
	tok := w.tok
	for _, status := range []auth.Status{auth.StatusInactive, auth.StatusActive} {
		if _, err := s.Update(ctx, tok.ID, func(u *auth.Token) error { u.Status = status; return nil }); err != nil {
			t.Fatalf("Update to %s: %v", status, err)
		}
		AwaitChanged(t, w.ch, tok.ID)
	}
}

// testConcurrentUpdate runs many Updates of one token at once, each adding
// one to its burst: every one must be applied, none lost to another's
// write.
func testConcurrentUpdate(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 27, auth.RoleOwner)
	tok.RateLimit = 1
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	const goroutines, each = 16, 3
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for range goroutines {
		wg.Go(func() {
			for range each {
				_, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
					u.RateBurst++
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		t.Errorf("concurrent Update: %v", err)
	}
	got, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := goroutines*each - failed; got.RateBurst != want {
		t.Fatalf("after %d successful concurrent increments the burst is %d: updates were lost", want, got.RateBurst)
	}
}

// testRotatedTo checks the successor mark of a rotation with a grace
// period: set in the same Update that shortens the token's life, kept by
// Get, List and Revoke, cleared by an Update; a record without it is not
// rotated.
func testRotatedTo(t *testing.T, s auth.Store) {
	ctx := context.Background()
	old, _ := NewToken(t, 28, auth.RoleOwner)
	next, _ := NewToken(t, 28, auth.RoleOwner)
	for _, tok := range []*auth.Token{old, next} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if got, err := s.Get(ctx, old.ID); err != nil || got.Rotated() || got.RotatedTo != "" {
		t.Fatalf("a new record: %v, %v; want no RotatedTo", got, err)
	}
	until := time.Now().Add(time.Hour)
	want := *old
	want.ExpiresAt, want.RotatedTo = until, next.ID
	got, err := s.Update(ctx, old.ID, func(u *auth.Token) error {
		u.ExpiresAt, u.RotatedTo = until, next.ID
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	AssertEqual(t, got, &want)
	if stored, err := s.Get(ctx, old.ID); err != nil || !stored.Rotated() {
		t.Fatalf("Get after the rotation mark: %v, %v", stored, err)
	} else {
		AssertEqual(t, stored, &want)
	}
	for _, l := range list(t, s, 28) {
		if l.ID == old.ID {
			AssertEqual(t, l, &want)
		}
	}
	// Cleared by an Update (an admin's), kept by a Revoke.
	want.RotatedTo = ""
	if got, err = s.Update(ctx, old.ID, func(u *auth.Token) error { u.RotatedTo = ""; return nil }); err != nil {
		t.Fatalf("clearing Update: %v", err)
	}
	AssertEqual(t, got, &want)
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.RotatedTo = next.ID; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	tomb, err := s.Revoke(ctx, old.ID, time.Now())
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if tomb.RotatedTo != next.ID {
		t.Errorf("tombstone = %s, want RotatedTo %s kept", format(tomb), next.ID)
	}
}

// testReplaced checks the mark of a rotation without grace period: set
// with RotatedTo in one Update, kept by Get, later Updates and Revoke,
// and never cleared (nor its RotatedTo).
func testReplaced(t *testing.T, s auth.Store) {
	ctx := context.Background()
	old, _ := NewToken(t, 29, auth.RoleOwner)
	next, _ := NewToken(t, 29, auth.RoleOwner)
	for _, tok := range []*auth.Token{old, next} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	want := *old
	want.ExpiresAt, want.RotatedTo, want.Replaced = now, next.ID, true
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error {
		u.ExpiresAt, u.RotatedTo, u.Replaced = now, next.ID, true
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got, err := s.Get(ctx, old.ID); err != nil || !got.Ended() || got.Revoked() {
		t.Fatalf("Get after the mark: %v, %v; want ended, not a tombstone", got, err)
	} else {
		AssertEqual(t, got, &want)
	}
	for name, edit := range map[string]func(*auth.Token){
		"cleared":              func(u *auth.Token) { u.Replaced = false },
		"rotated to cleared":   func(u *auth.Token) { u.RotatedTo = "" },
		"cleared, rotated off": func(u *auth.Token) { u.Replaced, u.RotatedTo = false, "" },
	} {
		if got, err := s.Update(ctx, old.ID, func(u *auth.Token) error { edit(u); return nil }); err == nil {
			t.Errorf("Update (%s) succeeded: %s", name, format(got))
		}
	}
	tomb, err := s.Revoke(ctx, old.ID, time.Now())
	if err != nil || !tomb.Replaced || tomb.RotatedTo != next.ID {
		t.Errorf("tombstone = %v (%v), want Replaced and RotatedTo kept", tomb, err)
	}
}

// watch runs s.Watch in a goroutine sending to events; stop ends it.
func watch(t *testing.T, s auth.Store, events chan<- auth.Event) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func(ev auth.Event) {
			select {
			case events <- ev:
			case <-ctx.Done():
			}
		})
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Watch did not return after its context was canceled")
		}
	}
}

// Await returns the next event from events, failing the test if none comes
// within a generous timeout.
func Await(tb testing.TB, events <-chan auth.Event, what string) auth.Event {
	tb.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(waitTimeout):
		tb.Fatalf("timed out waiting for %s", what)
		return auth.Event{}
	}
}

// AwaitChanged waits for an EventChanged about id, skipping EventResync
// events (which a store may send at any time); any other event fails the
// test.
func AwaitChanged(tb testing.TB, events <-chan auth.Event, id string) auth.Event {
	tb.Helper()
	return awaitMatch(tb, events, "EventChanged for "+id, func(ev auth.Event) bool {
		return ev.Kind == auth.EventChanged && ev.ID == id
	})
}

// awaitMatch waits for the event match accepts (what it is: what),
// skipping EventResync events; any other event fails the test.
func awaitMatch(tb testing.TB, events <-chan auth.Event, what string, match func(auth.Event) bool) auth.Event {
	tb.Helper()
	for {
		ev := Await(tb, events, what)
		switch {
		case ev.Kind == auth.EventResync:
			continue
		case match(ev):
			return ev
		}
		tb.Fatalf("waiting for %s, got %+v", what, ev)
	}
}

// AssertEqual fails the test unless got and want hold the same record, times
// compared at millisecond precision.
func AssertEqual(tb testing.TB, got, want *auth.Token) {
	tb.Helper()
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	switch {
	case got == nil:
		tb.Errorf("got no record, want %s", want.ID)
	case got.ID != want.ID,
		got.ProjectID != want.ProjectID,
		got.Name != want.Name,
		got.Role != want.Role,
		got.Status != want.Status,
		ms(got.CreatedAt) != ms(want.CreatedAt),
		got.CreatedAt.IsZero() != want.CreatedAt.IsZero(),
		ms(got.ExpiresAt) != ms(want.ExpiresAt),
		got.ExpiresAt.IsZero() != want.ExpiresAt.IsZero(),
		ms(got.RevokedAt) != ms(want.RevokedAt),
		got.RevokedAt.IsZero() != want.RevokedAt.IsZero(),
		got.SecretHash != want.SecretHash,
		got.PepperID != want.PepperID,
		got.RateLimit != want.RateLimit,
		got.RateBurst != want.RateBurst,
		got.RateShadow != want.RateShadow,
		got.RotatedTo != want.RotatedTo,
		got.Replaced != want.Replaced,
		got.Lineage != want.Lineage,
		got.Scopes != want.Scopes,
		!slices.Equal(got.AllowedIPs, want.AllowedIPs):
		tb.Errorf("record differs:\n got %s\nwant %s", format(got), format(want))
	}
}

func format(t *auth.Token) string {
	f := func(tm time.Time) string {
		if tm.IsZero() {
			return "-"
		}
		return tm.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return fmt.Sprintf("{id %s project %d name %q role %s status %s created %s expires %s revoked %s rate %g burst %d shadow %t rotated_to %q replaced %t lineage %+v scopes %q allowed_ips %v hash %x pepper %q}",
		t.ID, t.ProjectID, t.Name, t.Role, t.Status, f(t.CreatedAt), f(t.ExpiresAt), f(t.RevokedAt),
		t.RateLimit, t.RateBurst, t.RateShadow, t.RotatedTo, t.Replaced, t.Lineage, t.Scopes, t.AllowedIPs, t.SecretHash[:4], t.PepperID)
}

func list(tb testing.TB, s auth.Store, project int64) []*auth.Token {
	tb.Helper()
	l, err := s.List(context.Background(), project)
	if err != nil {
		tb.Fatalf("List(%d): %v", project, err)
	}
	return l
}

func ids(l []*auth.Token) []string {
	out := make([]string, len(l))
	for i, t := range l {
		out[i] = t.ID
	}
	return out
}

// before reports whether a sorts before b in List order.
func before(a, b *auth.Token) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// prefixes parses CIDR ranges as a token holds them.
func prefixes(tb testing.TB, cidrs ...string) []netip.Prefix {
	tb.Helper()
	ps, err := auth.ParsePrefixes(cidrs)
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}

// testRestrictions checks a token's scopes and address ranges: stored as
// given, changed by Update, and never shared with a record handed out
// before (an edit in place of fn's copy leaves that record alone).
func testRestrictions(t *testing.T, s auth.Store) {
	ctx := context.Background()
	tok, _ := NewToken(t, 31, auth.RoleOwner)
	tok.Scopes = auth.PermSet(0).With(auth.PermComputeRead).With(auth.PermNetworkWrite)
	tok.AllowedIPs = prefixes(t, "10.0.0.0/8", "2001:db8::/32")
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create: %v", err)
	}
	before, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	AssertEqual(t, before, tok)
	want := *tok
	want.Scopes = auth.PermSet(0).With(auth.PermComputeRead)
	want.AllowedIPs = prefixes(t, "10.1.0.0/16", "2001:db8::/32")
	got, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		u.Scopes = want.Scopes
		if len(u.AllowedIPs) > 0 {
			u.AllowedIPs[0] = want.AllowedIPs[0] // in place: fn owns its copy
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	AssertEqual(t, got, &want)
	if !slices.Equal(before.AllowedIPs, tok.AllowedIPs) {
		t.Errorf("a record handed out before the Update changed: ranges %v, want %v", before.AllowedIPs, tok.AllowedIPs)
	}
	stored, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get after Update: %v", err)
	}
	AssertEqual(t, stored, &want)
}
