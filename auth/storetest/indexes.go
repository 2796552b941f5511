package storetest

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// The contract of the background queries, which a store may serve from
// indexes it keeps on every change (as redisstore does):
//   - CountTokens equals a count of the records one by one, after any
//     sequence of creations, imports of tombstones, updates and revocations;
//   - the expiry claims see exactly the live tokens with an expiry, after
//     such a sequence;
//   - ClaimExpiring returns each (token, expiry) once, within WarnBefore
//     of its expiry and before it, even to concurrent callers, again after
//     the expiry changes or UnclaimExpiring.

// countsOf counts tokens by role and status, leaving out tombstones.
func countsOf(toks []*auth.Token) map[auth.Role]map[auth.Status]int {
	out := map[auth.Role]map[auth.Status]int{}
	for _, t := range toks {
		if t.Revoked() {
			continue
		}
		if out[t.Role] == nil {
			out[t.Role] = map[auth.Status]int{}
		}
		out[t.Role][t.Status]++
	}
	return out
}

// equalCounts compares counts, ignoring zero entries.
func equalCounts(a, b map[auth.Role]map[auth.Status]int) bool {
	flat := func(m map[auth.Role]map[auth.Status]int) map[[2]uint8]int {
		out := map[[2]uint8]int{}
		for r, byStatus := range m {
			for st, n := range byStatus {
				if n != 0 {
					out[[2]uint8{uint8(r), uint8(st)}] = n
				}
			}
		}
		return out
	}
	return maps.Equal(flat(a), flat(b))
}

// testCountsDrift runs a random sequence of changes, then compares
// CountTokens and the expiry claims with the records read one by one.
func testCountsDrift(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	now := time.Now().UTC().Truncate(time.Millisecond)
	roles := []auth.Role{auth.RoleOwner, auth.RoleAccounting}
	expiry := func() time.Time {
		switch rng.IntN(3) {
		case 0:
			return time.Time{}
		case 1:
			return now.Add(-time.Duration(1+rng.IntN(100)) * time.Minute)
		}
		return now.Add(time.Duration(1+rng.IntN(100)) * time.Hour)
	}
	var all []string
	for range 150 {
		switch op := rng.IntN(10); {
		case op < 4 || len(all) == 0:
			tok, _ := NewToken(t, 40+int64(rng.IntN(3)), roles[rng.IntN(2)])
			tok.ExpiresAt = expiry()
			if rng.IntN(10) == 0 { // an imported tombstone
				tok.RevokedAt = now
			}
			if err := s.Create(ctx, tok); err != nil {
				t.Fatalf("Create: %v", err)
			}
			all = append(all, tok.ID)
		case op < 8:
			_, err := s.Update(ctx, all[rng.IntN(len(all))], func(u *auth.Token) error {
				u.Role = roles[rng.IntN(2)]
				u.Status = []auth.Status{auth.StatusActive, auth.StatusInactive}[rng.IntN(2)]
				u.ExpiresAt = expiry()
				return nil
			})
			if err != nil && !isRevoked(err) {
				t.Fatalf("Update: %v", err)
			}
		default:
			if _, err := s.Revoke(ctx, all[rng.IntN(len(all))], now); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
		}
	}
	var records []*auth.Token
	for _, id := range all {
		rec, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		records = append(records, rec)
	}
	got, err := s.CountTokens(ctx)
	if err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	if want := countsOf(records); !equalCounts(got, want) {
		t.Errorf("CountTokens = %v, want %v (counted one by one)", got, want)
	}

	var wantDue []string
	for _, rec := range records {
		if !rec.Revoked() && !rec.ExpiresAt.IsZero() {
			wantDue = append(wantDue, rec.ID)
		}
	}
	claimed, err := s.ClaimExpired(ctx, now.Add(1000*time.Hour))
	if err != nil {
		t.Fatalf("ClaimExpired: %v", err)
	}
	if got := ids(claimed); !sameSet(got, wantDue) {
		t.Errorf("ClaimExpired far ahead = %d tokens %v, want the %d live ones with an expiry %v", len(got), got, len(wantDue), wantDue)
	}
}

func isRevoked(err error) bool { return errors.Is(err, auth.ErrRevoked) }

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func testClaimExpiring(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	within := s.WarnBefore()
	mk := func(expires time.Time) *auth.Token {
		tok, _ := NewToken(t, 36, auth.RoleOwner)
		tok.ExpiresAt = expires
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	soon := mk(now.Add(within - time.Hour))
	mk(now.Add(within + time.Hour)) // not yet
	mk(now.Add(-time.Minute))       // already expired
	mk(time.Time{})                 // never
	revoked := mk(now.Add(time.Hour))
	if _, err := s.Revoke(ctx, revoked.ID, now); err != nil {
		t.Fatal(err)
	}
	claim := claimer(t, "ClaimExpiring", s.ClaimExpiring)
	if got := claim(now); !slices.Equal(got, []string{soon.ID}) {
		t.Fatalf("ClaimExpiring = %v, want [%s]", got, soon.ID)
	}
	if got := claim(now); len(got) != 0 {
		t.Fatalf("second ClaimExpiring = %v, want none", got)
	}
	// A new expiry is a new claim.
	later := now.Add(within - 2*time.Hour)
	if _, err := s.Update(ctx, soon.ID, func(u *auth.Token) error { u.ExpiresAt = later; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimExpiring(ctx, now)
	if err != nil || len(got) != 1 || got[0].ID != soon.ID || !got[0].ExpiresAt.Equal(later) {
		t.Fatalf("ClaimExpiring after a new expiry = %v, %v; want [%s] expiring %v", ids(got), err, soon.ID, later)
	}
	if err := s.UnclaimExpiring(ctx, got[0]); err != nil {
		t.Fatalf("UnclaimExpiring: %v", err)
	}
	if got := claim(now); !slices.Equal(got, []string{soon.ID}) {
		t.Fatalf("ClaimExpiring after UnclaimExpiring = %v, want [%s]", got, soon.ID)
	}
	// A warning is no expiry claim, and the other way round.
	if got, err := s.ClaimExpired(ctx, now); err != nil || slices.Contains(ids(got), soon.ID) {
		t.Fatalf("ClaimExpired = %v, %v; want no %s", ids(got), err, soon.ID)
	}

	// Concurrent claimants: each warning goes to exactly one.
	var due []string
	for range 5 {
		due = append(due, mk(now.Add(time.Hour)).ID)
	}
	assertClaimedOnce(t, func() ([]*auth.Token, error) { return s.ClaimExpiring(ctx, now) }, due)
}

// assertClaimedOnce calls claim from 4 goroutines at once and checks that
// due, and nothing else, was claimed, each once.
func assertClaimedOnce(t *testing.T, claim func() ([]*auth.Token, error), due []string) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := claim()
			if err != nil {
				t.Errorf("concurrent claim: %v", err)
				return
			}
			mu.Lock()
			for _, tok := range got {
				counts[tok.ID]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, id := range due {
		if counts[id] != 1 {
			t.Errorf("%s was claimed %d times by concurrent callers, want once", id, counts[id])
		}
	}
	if len(counts) != len(due) {
		t.Errorf("concurrent claims = %v, want exactly %v", counts, due)
	}
}

// claimer returns a function that claims with fn at a time and returns the
// ids claimed, failing the test on an error.
func claimer(t *testing.T, name string, fn func(context.Context, time.Time) ([]*auth.Token, error)) func(time.Time) []string {
	return func(at time.Time) []string {
		t.Helper()
		got, err := fn(context.Background(), at)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ids(got)
	}
}
