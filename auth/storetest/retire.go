package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// errChanged is what a compare-and-mark edit returns when the record is
// no longer the one read.
var errChanged = errors.New("changed since read")

// testRetireCompare checks what a rotation relies on to retire its token
// atomically: an Update whose fn compares the current record with the
// one the rotation read and marks it rotated is refused (nothing stored)
// once another call changed the record in between — a deactivation, say —
// and of concurrent such Updates from one read, exactly one succeeds, on
// every replica sharing the store; the Revoke after it keeps the mark, and
// a compare-and-mark on the tombstone fails with ErrRevoked.
func testRetireCompare(t *testing.T, s auth.Store) {
	ctx := context.Background()
	old, _ := NewToken(t, 29, auth.RoleOwner)
	if err := s.Create(ctx, old); err != nil {
		t.Fatalf("Create: %v", err)
	}
	read, err := s.Get(ctx, old.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	mark := func(next string) func(*auth.Token) error {
		return func(u *auth.Token) error {
			if u.Status != read.Status || u.RotatedTo != read.RotatedTo || !u.ExpiresAt.Equal(read.ExpiresAt) {
				return errChanged
			}
			u.RotatedTo, u.ExpiresAt = next, time.Now().UTC().Truncate(time.Millisecond)
			return nil
		}
	}
	// Deactivated between the read and the retirement: refused.
	deactivated, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.Status = auth.StatusInactive; return nil })
	if err != nil {
		t.Fatalf("deactivating Update: %v", err)
	}
	next1, _ := NewToken(t, 29, auth.RoleOwner)
	if _, err := s.Update(ctx, old.ID, mark(next1.ID)); !errors.Is(err, errChanged) {
		t.Fatalf("compare-and-mark after a deactivation: %v, want the edit's refusal", err)
	}
	if got, err := s.Get(ctx, old.ID); err != nil {
		t.Fatalf("Get: %v", err)
	} else {
		AssertEqual(t, got, deactivated)
	}

	// Concurrent rotations from one read: one wins.
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.Status = auth.StatusActive; return nil }); err != nil {
		t.Fatalf("reactivating Update: %v", err)
	}
	if read, err = s.Get(ctx, old.ID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	const rotations = 8
	var wg sync.WaitGroup
	won := make(chan string, rotations)
	for range rotations {
		next, _ := NewToken(t, 29, auth.RoleOwner)
		wg.Go(func() {
			_, err := s.Update(ctx, old.ID, mark(next.ID))
			switch {
			case err == nil:
				won <- next.ID
			case !errors.Is(err, errChanged):
				t.Errorf("concurrent compare-and-mark: %v", err)
			}
		})
	}
	wg.Wait()
	close(won)
	var winners []string
	for id := range won {
		winners = append(winners, id)
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent rotations of one token stood, want exactly 1", len(winners), rotations)
	}
	tomb, err := s.Revoke(ctx, old.ID, time.Now())
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if tomb.RotatedTo != winners[0] {
		t.Errorf("tombstone = %s, want RotatedTo %s kept", format(tomb), winners[0])
	}
	if _, err := s.Update(ctx, old.ID, mark(next1.ID)); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("compare-and-mark on the tombstone: %v, want ErrRevoked", err)
	}
}
