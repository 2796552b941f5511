package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// TestReconcile: records written without the indexes (by a version that
// did not keep them, or changed behind their back) are brought in by the
// one-time reconciliation, which one replica runs under a lock.
func TestReconcile(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	prefix := newPrefix()
	s := newStore(t, c, prefix)
	defer s.Close()

	now := time.Now().UTC().Truncate(time.Millisecond)
	var toks []*auth.Token
	for i := range 6 {
		tok, _ := storetest.NewToken(t, 3, []auth.Role{auth.RoleOwner, auth.RoleAccounting}[i%2])
		if i < 2 {
			tok.ExpiresAt = now.Add(-time.Minute)
		}
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	// As an older version would have left them: no indexes, no "ix", and
	// one record changed without its count following.
	sh := s.shardOf("")
	if err := c.Del(ctx, sh.counts, sh.exp, sh.warn).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if err := c.HDel(ctx, s.tokenKey(tok.ID), "ix").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.HSet(ctx, s.tokenKey(toks[1].ID), "status", "inactive").Err(); err != nil {
		t.Fatal(err)
	}
	want := map[auth.Role]map[auth.Status]int{
		auth.RoleOwner:      {auth.StatusActive: 3},
		auth.RoleAccounting: {auth.StatusActive: 2, auth.StatusInactive: 1},
	}

	// Another replica holds the lock: this one does not reconcile.
	if err := c.Set(ctx, s.lockKey(), "other", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountTokens(ctx)
	if err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	s.bg.Wait()
	if len(got) != 0 || c.Exists(ctx, s.doneKey()).Val() != 0 {
		t.Fatalf("with the lock held elsewhere: counts %v, marker %d; want none, none", got, c.Exists(ctx, s.doneKey()).Val())
	}

	// The lock released: the next count starts the reconciliation.
	if err := c.Del(ctx, s.lockKey()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CountTokens(ctx); err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	s.bg.Wait()
	if c.Exists(ctx, s.doneKey()).Val() != 1 || c.Exists(ctx, s.lockKey()).Val() != 0 {
		t.Fatal("after the reconciliation: want the marker set and the lock released")
	}
	if got, err := s.CountTokens(ctx); err != nil || !equal(got, want) {
		t.Fatalf("CountTokens after the reconciliation = %v, %v; want %v", got, err, want)
	}
	claimed, err := s.ClaimExpired(ctx, now)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("ClaimExpired after the reconciliation = %d tokens, %v; want 2", len(claimed), err)
	}

	// Idempotent: a second run changes nothing.
	if n, err := s.Reconcile(ctx); err != nil || n != len(toks) {
		t.Fatalf("Reconcile = %d, %v; want %d, nil", n, err, len(toks))
	}
	if got, err := s.CountTokens(ctx); err != nil || !equal(got, want) {
		t.Fatalf("CountTokens after a second reconciliation = %v, %v; want %v", got, err, want)
	}
}

func equal(a, b map[auth.Role]map[auth.Status]int) bool {
	for _, m := range []map[auth.Role]map[auth.Status]int{a, b} {
		for r, byStatus := range m {
			for st := range byStatus {
				if a[r][st] != b[r][st] {
					return false
				}
			}
		}
	}
	return true
}

// TestSlotTags: each slot's tag hashes to it, and keySlot knows hash tags
// (values from CLUSTER KEYSLOT).
func TestSlotTags(t *testing.T) {
	for slot, tag := range slotTags() {
		if got := keySlot(tag); got != slot {
			t.Fatalf("tag %q of slot %d hashes to %d", tag, slot, got)
		}
	}
	for key, want := range map[string]int{"foo": 12182, "{user1000}.following": 3443, "user1000": 3443, "a{}b": 13694} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestImport: records imported in bulk are stored, listed and counted as
// created ones; an existing id is left as it is; an invalid record is
// refused, naming why.
func TestImport(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	defer s.Close()
	ctx := context.Background()
	existing, _ := storetest.NewToken(t, 7, auth.RoleOwner)
	if err := s.Create(ctx, existing); err != nil {
		t.Fatal(err)
	}
	a, _ := storetest.NewToken(t, 7, auth.RoleAccounting)
	b, _ := storetest.NewToken(t, 7, auth.RoleOwner)
	gone, _ := storetest.NewToken(t, 7, auth.RoleOwner)
	gone.RevokedAt = time.Now().UTC().Truncate(time.Millisecond)
	n, err := s.Import(ctx, []*auth.Token{a, b, gone, existing})
	if err != nil || n != 3 {
		t.Fatalf("Import = %d, %v; want 3, nil", n, err)
	}
	list, err := s.List(ctx, 7)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %d tokens, %v; want 3", len(list), err)
	}
	want := map[auth.Role]map[auth.Status]int{auth.RoleOwner: {auth.StatusActive: 2}, auth.RoleAccounting: {auth.StatusActive: 1}}
	if got, err := s.CountTokens(ctx); err != nil || !equal(got, want) {
		t.Fatalf("CountTokens = %v, %v; want %v", got, err, want)
	}
	bad := *a
	bad.ProjectID = 0
	if _, err := s.Import(ctx, []*auth.Token{&bad}); err == nil || !strings.Contains(err.Error(), "project id") {
		t.Fatalf("Import of a record without a project = %v, want an error naming the project id", err)
	}
}

// TestClaimExpiredBatches: more due tokens than one batch are all claimed
// by one call, each once.
func TestClaimExpiredBatches(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var toks []*auth.Token
	for i := range 2*claimBatch + 7 {
		tok, _ := storetest.NewToken(t, 9, auth.RoleOwner)
		tok.ExpiresAt = now.Add(-time.Duration(i+1) * time.Second)
		toks = append(toks, tok)
	}
	if _, err := s.Import(ctx, toks); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimExpired(ctx, now)
	if err != nil || len(got) != len(toks) {
		t.Fatalf("ClaimExpired = %d tokens, %v; want %d", len(got), err, len(toks))
	}
	seen := map[string]bool{}
	for _, tok := range got {
		if seen[tok.ID] {
			t.Fatalf("%s claimed twice", tok.ID)
		}
		seen[tok.ID] = true
	}
	if again, err := s.ClaimExpired(ctx, now); err != nil || len(again) != 0 {
		t.Fatalf("second ClaimExpired = %d tokens, %v; want none", len(again), err)
	}
}
