package redisstore

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
)

// policyStateScript reads, in one step, whether the policy hash KEYS[1]
// exists and whether the set KEYS[2] names the project ARGV[1].
var policyStateScript = redis.NewScript(`
return {redis.call('EXISTS', KEYS[1]), redis.call('SISMEMBER', KEYS[2], ARGV[1])}
`)

// policyState reports whether project's policy hash exists and whether
// the set of projects with a policy names it, as one snapshot.
func policyState(t *testing.T, s *Store, project int64) (hash, listed bool) {
	t.Helper()
	v, err := policyStateScript.Run(context.Background(), s.client, []string{s.policyKey(project), s.policiesKey()},
		strconv.FormatInt(project, 10)).Int64Slice()
	if err != nil {
		t.Fatalf("reading the policy keys of project %d: %v", project, err)
	}
	return v[0] == 1, v[1] == 1
}

// TestPolicyKeysAgree: the policy hash and the set of projects with a
// policy change together. After each set or clear they agree, and a
// reader taking snapshots of both while they change never sees one
// without the other.
func TestPolicyKeysAgree(t *testing.T) {
	s := newStore(t, redistest.Start(t).Client(t), newPrefix())
	pol := testPolicySteps(t, s, func(project int64) (bool, bool) { return policyState(t, s, project) })
	ctx := context.Background()

	// A writer sets and clears one project's policy while the reader
	// looks; every snapshot must show both keys or neither.
	const rounds = 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range rounds {
			p := auth.ProjectPolicy{}
			if i%2 == 0 {
				p = pol
			}
			if err := s.SetProjectPolicy(ctx, 7, p); err != nil {
				t.Errorf("SetProjectPolicy round %d: %v", i, err)
				return
			}
		}
	}()
	seen := map[[2]bool]int{}
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		hash, listed := policyState(t, s, 7)
		seen[[2]bool{hash, listed}]++
	}
	wg.Wait()
	if n := seen[[2]bool{true, false}] + seen[[2]bool{false, true}]; n > 0 {
		t.Fatalf("%d of the reader's snapshots saw the policy hash and the set disagree: %v", n, seen)
	}
}

// testPolicySteps sets and clears policies of projects 42 and 43 on s,
// checking after each step with state that the project's hash exists and
// is listed exactly when it has a policy. It returns a policy to set.
func testPolicySteps(t *testing.T, s *Store, state func(project int64) (hash, listed bool)) auth.ProjectPolicy {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pol := auth.ProjectPolicy{MaxLifetime: 90 * 24 * time.Hour, RateLimit: 5, UpdatedAt: at}
	steps := []struct {
		project int64
		p       auth.ProjectPolicy
		want    bool
	}{
		{42, pol, true}, {43, pol, true}, {42, auth.ProjectPolicy{RequireExpiry: true, UpdatedAt: at}, true},
		{42, auth.ProjectPolicy{}, false}, {43, auth.ProjectPolicy{}, false}, {43, auth.ProjectPolicy{}, false},
	}
	for _, st := range steps {
		if err := s.SetProjectPolicy(context.Background(), st.project, st.p); err != nil {
			t.Fatalf("SetProjectPolicy(%d, %+v): %v", st.project, st.p, err)
		}
		if hash, listed := state(st.project); hash != st.want || listed != st.want {
			t.Fatalf("after setting %+v on project %d: hash %t, listed %t; want both %t", st.p, st.project, hash, listed, st.want)
		}
	}
	return pol
}
