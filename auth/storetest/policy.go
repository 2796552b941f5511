package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// testProjectPolicy: a project's policy is stored whole (at millisecond
// precision), per project, listed by ProjectPolicies, replaced by a later
// set, removed by a zero one; an invalid one is refused and changes
// nothing.
func testProjectPolicy(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	if p, err := s.ProjectPolicy(ctx, 42); err != nil || !p.IsZero() {
		t.Fatalf("ProjectPolicy of a project without one = %+v, %v; want zero, nil", p, err)
	}
	if all, err := s.ProjectPolicies(ctx); err != nil || len(all) != 0 {
		t.Fatalf("ProjectPolicies of an empty store = %v, %v; want empty", all, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 678912345, time.UTC)
	full := auth.ProjectPolicy{MaxLifetime: 90 * 24 * time.Hour, RequireExpiry: true, RateLimit: 2.5, Burst: 7, UpdatedAt: at}
	limitOnly := auth.ProjectPolicy{RateLimit: 100, UpdatedAt: at}
	for id, p := range map[int64]auth.ProjectPolicy{42: full, 43: limitOnly} {
		if err := s.SetProjectPolicy(ctx, id, p); err != nil {
			t.Fatalf("SetProjectPolicy(%d): %v", id, err)
		}
	}
	want := full
	want.UpdatedAt = at.Truncate(time.Millisecond)
	got, err := s.ProjectPolicy(ctx, 42)
	if err != nil || !samePolicy(got, want) {
		t.Fatalf("ProjectPolicy(42) = %+v, %v; want %+v", got, err, want)
	}
	all, err := s.ProjectPolicies(ctx)
	if err != nil || len(all) != 2 || !samePolicy(all[42], want) || all[43].RateLimit != 100 {
		t.Fatalf("ProjectPolicies = %+v, %v; want projects 42 and 43", all, err)
	}

	if err := s.SetProjectPolicy(ctx, 42, auth.ProjectPolicy{MaxLifetime: -time.Hour}); err == nil {
		t.Error("SetProjectPolicy with a negative lifetime succeeded")
	}
	if err := s.SetProjectPolicy(ctx, 42, auth.ProjectPolicy{Burst: 3}); err == nil {
		t.Error("SetProjectPolicy with a burst and no rate succeeded")
	}
	if got, _ := s.ProjectPolicy(ctx, 42); !samePolicy(got, want) {
		t.Fatalf("a refused set changed the policy: %+v", got)
	}

	// A later set replaces the whole policy: fields it leaves out go.
	replaced := auth.ProjectPolicy{MaxLifetime: time.Hour, UpdatedAt: at.Add(time.Hour).Truncate(time.Millisecond)}
	if err := s.SetProjectPolicy(ctx, 42, replaced); err != nil {
		t.Fatalf("SetProjectPolicy(replace): %v", err)
	}
	if got, _ := s.ProjectPolicy(ctx, 42); !samePolicy(got, replaced) {
		t.Fatalf("after replacing, ProjectPolicy(42) = %+v; want %+v", got, replaced)
	}
	if err := s.SetProjectPolicy(ctx, 42, auth.ProjectPolicy{UpdatedAt: at}); err != nil {
		t.Fatalf("SetProjectPolicy(zero): %v", err)
	}
	if got, _ := s.ProjectPolicy(ctx, 42); !got.IsZero() {
		t.Fatalf("after clearing, ProjectPolicy(42) = %+v; want zero", got)
	}
	if all, _ := s.ProjectPolicies(ctx); len(all) != 1 || all[43].IsZero() {
		t.Fatalf("after clearing 42, ProjectPolicies = %+v; want project 43 only", all)
	}
}

// testPolicyWatch: setting and clearing a project's policy are announced
// to Watch as EventPolicyChanged naming the project.
func testPolicyWatch(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	events := make(chan auth.Event, 16)
	stop := watch(t, s, events)
	defer stop()
	if ev := Await(t, events, "the first event"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []auth.ProjectPolicy{{RateLimit: 5, UpdatedAt: at}, {}} {
		if err := s.SetProjectPolicy(ctx, 42, p); err != nil {
			t.Fatalf("SetProjectPolicy(42, %+v): %v", p, err)
		}
		AwaitPolicyChanged(t, events, 42)
	}
}

// AwaitPolicyChanged waits for an EventPolicyChanged about project,
// skipping EventResync events; any other event fails the test.
func AwaitPolicyChanged(tb testing.TB, events <-chan auth.Event, project int64) auth.Event {
	tb.Helper()
	return awaitMatch(tb, events, fmt.Sprintf("EventPolicyChanged for project %d", project), func(ev auth.Event) bool {
		return ev.Kind == auth.EventPolicyChanged && ev.Project == project
	})
}

func samePolicy(a, b auth.ProjectPolicy) bool {
	return a.MaxLifetime == b.MaxLifetime && a.RequireExpiry == b.RequireExpiry &&
		a.RateLimit == b.RateLimit && a.Burst == b.Burst && a.UpdatedAt.Equal(b.UpdatedAt)
}
