package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// runActivity runs the activity contract:
//   - ListPage returns List's order, filtered, in pages whose concatenation
//     is the filtered list; Next is zero exactly on the last page; a cursor
//     stays valid while tokens are created and revoked (no token that
//     stays live is skipped or repeated);
//   - AddUsage adds up, UsageOf counts only the window and never lowers
//     last used, and leaves out tokens never used;
//   - ClaimExpired returns each (token, expiry) once, even to concurrent
//     callers, again after the expiry changes or UnclaimExpired;
//   - ReadAudit pages a project's events newest first and refuses a
//     foreign cursor with auth.ErrBadCursor.
func runActivity(t *testing.T, open func(t *testing.T) auth.ActivityStore) {
	t.Run("ListPage", func(t *testing.T) { testListPage(t, open(t)) })
	t.Run("ListPageStable", func(t *testing.T) { testListPageStable(t, open(t)) })
	t.Run("ListPageSparse", func(t *testing.T) { testListPageSparse(t, open(t)) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, open(t)) })
	t.Run("ClaimExpired", func(t *testing.T) { testClaimExpired(t, open(t)) })
	t.Run("ClaimExpiring", func(t *testing.T) { testClaimExpiring(t, open(t)) })
	t.Run("CountsDrift", func(t *testing.T) { testCountsDrift(t, open(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open(t)) })
	t.Run("CountProject", func(t *testing.T) { testCountProject(t, open(t)) })
	t.Run("ProjectPolicy", func(t *testing.T) { testProjectPolicy(t, open(t)) })
	t.Run("PolicyWatch", func(t *testing.T) { testPolicyWatch(t, open(t)) })
}

// testCountProject: CountProject counts a project's live tokens — created
// ones, not revoked ones, not other projects'.
func testCountProject(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	count := func(project int64) int {
		t.Helper()
		n, err := s.CountProject(ctx, project)
		if err != nil {
			t.Fatalf("CountProject(%d): %v", project, err)
		}
		return n
	}
	if n := count(71); n != 0 {
		t.Fatalf("an empty project counts %d", n)
	}
	var ids []string
	for range 3 {
		tok, _ := NewToken(t, 71, auth.RoleOwner)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	other, _ := NewToken(t, 72, auth.RoleAccounting)
	if err := s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n := count(71); n != 3 {
		t.Fatalf("3 tokens created: CountProject = %d", n)
	}
	if _, err := s.Revoke(ctx, ids[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := count(71); n != 2 {
		t.Fatalf("one of 3 revoked: CountProject = %d, want 2", n)
	}
	if n := count(72); n != 1 {
		t.Fatalf("the other project: CountProject = %d, want 1", n)
	}
}

// pages follows every page of q and returns the tokens' ids.
func pages(t *testing.T, s auth.ActivityStore, q auth.ListQuery) []string {
	t.Helper()
	var got []string
	for range 100 {
		p, err := s.ListPage(context.Background(), q)
		if err != nil {
			t.Fatalf("ListPage(%+v): %v", q, err)
		}
		if len(p.Tokens) > q.Limit {
			t.Fatalf("ListPage returned %d tokens, over the limit %d", len(p.Tokens), q.Limit)
		}
		got = append(got, ids(p.Tokens)...)
		if p.Next.IsZero() {
			return got
		}
		if len(p.Tokens) == 0 {
			t.Fatalf("ListPage returned an empty page with a next cursor")
		}
		q.After = p.Next
	}
	t.Fatal("ListPage did not reach its last page in 100 pages")
	return nil
}

func testListPage(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var all []*auth.Token
	for i := range 9 {
		role := auth.RoleOwner
		if i%3 == 0 {
			role = auth.RoleAccounting
		}
		tok, _ := NewToken(t, 31, role)
		tok.CreatedAt = base.Add(time.Duration(i/2) * time.Minute) // pairs share a creation time
		if i%2 == 0 {
			tok.Status = auth.StatusInactive
		}
		all = append(all, tok)
	}
	other, _ := NewToken(t, 32, auth.RoleOwner)
	revoked, _ := NewToken(t, 31, auth.RoleOwner)
	for _, tok := range append(slices.Clone(all), other, revoked) {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if _, err := s.Revoke(ctx, revoked.ID, time.Now()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	slices.SortFunc(all, func(a, b *auth.Token) int {
		if before(a, b) {
			return -1
		}
		return 1
	})
	for _, tc := range []struct {
		name   string
		status auth.Status
		role   auth.Role
	}{
		{"all", 0, 0},
		{"inactive", auth.StatusInactive, 0},
		{"active owners", auth.StatusActive, auth.RoleOwner},
		{"accounting", 0, auth.RoleAccounting},
	} {
		q := auth.ListQuery{ProjectID: 31, Status: tc.status, Role: tc.role}
		var want []string
		for _, tok := range all {
			if q.Matches(tok) {
				want = append(want, tok.ID)
			}
		}
		for _, limit := range []int{1, 2, len(want), 100} {
			q.Limit = limit
			if got := pages(t, s, q); !slices.Equal(got, want) {
				t.Errorf("%s, limit %d: pages gave %v, want %v", tc.name, limit, got, want)
			}
		}
	}
	// The last page has no next cursor, even when it is full.
	p, err := s.ListPage(ctx, auth.ListQuery{ProjectID: 32, Limit: 1})
	if err != nil || len(p.Tokens) != 1 || !p.Next.IsZero() {
		t.Errorf("ListPage of a one-token project, limit 1 = %v (next %v), %v; want the token and no next cursor", ids(p.Tokens), p.Next, err)
	}
	p, err = s.ListPage(ctx, auth.ListQuery{ProjectID: 99, Limit: 5})
	if err != nil || p.Tokens == nil || len(p.Tokens) != 0 || !p.Next.IsZero() {
		t.Errorf("ListPage of an empty project = %#v, %v; want an empty non-nil page", p, err)
	}
}

// testListPageStable changes the project between pages: revokes a token
// already listed and one not yet listed, creates one before the cursor and
// one after it.
func testListPageStable(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	base := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	var toks []*auth.Token
	for i := range 6 {
		tok, _ := NewToken(t, 33, auth.RoleOwner)
		tok.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
		toks = append(toks, tok)
	}
	first, err := s.ListPage(ctx, auth.ListQuery{ProjectID: 33, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(first.Tokens), ids(toks[:3]); !slices.Equal(got, want) {
		t.Fatalf("first page = %v, want %v", got, want)
	}
	for _, id := range []string{toks[1].ID, toks[4].ID} {
		if _, err := s.Revoke(ctx, id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	early, _ := NewToken(t, 33, auth.RoleOwner)
	early.CreatedAt = base.Add(-time.Hour)
	late, _ := NewToken(t, 33, auth.RoleOwner)
	late.CreatedAt = base.Add(time.Hour)
	for _, tok := range []*auth.Token{early, late} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// The cursor string survives a round trip, as clients hold it.
	cur, err := auth.ParseListCursor(first.Next.String())
	if err != nil {
		t.Fatalf("ParseListCursor(%q): %v", first.Next.String(), err)
	}
	got := pages(t, s, auth.ListQuery{ProjectID: 33, Limit: 2, After: cur})
	if want := []string{toks[3].ID, toks[5].ID, late.ID}; !slices.Equal(got, want) {
		t.Errorf("pages after the first, with changes in between = %v, want %v", got, want)
	}
}

// testListPageSparse filters out all but the last of many tokens: a page
// must look past everything its filters drop.
func testListPageSparse(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	base := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	var last *auth.Token
	for i := range 60 {
		role := auth.RoleOwner
		if i == 59 {
			role = auth.RoleAccounting
		}
		tok, _ := NewToken(t, 36, role)
		tok.CreatedAt = base.Add(time.Duration(i) * time.Second)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		last = tok
	}
	if got := pages(t, s, auth.ListQuery{ProjectID: 36, Role: auth.RoleAccounting, Limit: 1}); !slices.Equal(got, []string{last.ID}) {
		t.Errorf("the one accounting token after 59 owners: pages gave %v, want [%s]", got, last.ID)
	}
	if got := pages(t, s, auth.ListQuery{ProjectID: 36, Limit: 7}); len(got) != 60 {
		t.Errorf("60 tokens in pages of 7: got %d", len(got))
	}
}

func testUsage(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	a, _ := NewToken(t, 34, auth.RoleOwner)
	b, _ := NewToken(t, 34, auth.RoleOwner)
	never, _ := NewToken(t, 34, auth.RoleOwner)
	for _, tok := range []*auth.Token{a, b, never} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	minute := time.Unix(auth.UnixMinute(now)*60, 0).UTC()
	old := minute.Add(-auth.UsageWindow - time.Hour)
	batches := [][]auth.UsageRecord{
		{
			{TokenID: a.ID, Minute: minute, Counts: map[auth.Code]int64{auth.OK: 3, auth.CodeInvalidToken: 1}, LastUsed: now},
			{TokenID: a.ID, Minute: old, Counts: map[auth.Code]int64{auth.OK: 100}, LastUsed: old},
			{TokenID: b.ID, Minute: minute.Add(-time.Hour), Counts: map[auth.Code]int64{auth.CodeRateLimited: 4}, LastUsed: now.Add(-time.Hour)},
		},
		{
			// Another replica's flush: counts add up; an older last use
			// does not lower it.
			{TokenID: a.ID, Minute: minute, Counts: map[auth.Code]int64{auth.OK: 2}, LastUsed: now.Add(-time.Second)},
		},
	}
	for _, batch := range batches {
		if err := s.AddUsage(ctx, batch); err != nil {
			t.Fatalf("AddUsage: %v", err)
		}
	}
	got, err := s.UsageOf(ctx, []string{a.ID, b.ID, never.ID}, now)
	if err != nil {
		t.Fatalf("UsageOf: %v", err)
	}
	if _, ok := got[never.ID]; ok {
		t.Errorf("UsageOf has an entry for a token never used: %+v", got[never.ID])
	}
	check := func(id string, last time.Time, want map[auth.Code]int64) {
		t.Helper()
		u := got[id]
		if !u.LastUsed.Equal(last) {
			t.Errorf("%s last used %v, want %v", id, u.LastUsed, last)
		}
		for c, n := range want {
			if u.Counts[c] != n {
				t.Errorf("%s %s = %d, want %d (all: %v)", id, c, u.Counts[c], n, u.Counts)
			}
		}
		if len(u.Counts) != len(want) {
			t.Errorf("%s counts = %v, want %v", id, u.Counts, want)
		}
	}
	check(a.ID, now, map[auth.Code]int64{auth.OK: 5, auth.CodeInvalidToken: 1})
	check(b.ID, now.Add(-time.Hour), map[auth.Code]int64{auth.CodeRateLimited: 4})

	// A day later the counts are out of the window; the last use stays.
	got, err = s.UsageOf(ctx, []string{a.ID}, now.Add(auth.UsageWindow+2*time.Minute))
	if err != nil {
		t.Fatalf("UsageOf: %v", err)
	}
	if u := got[a.ID]; !u.LastUsed.Equal(now) || len(u.Counts) != 0 {
		t.Errorf("a day later: %+v, want last used %v and no counts", u, now)
	}
}

func testClaimExpired(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(expires time.Time) *auth.Token {
		tok, _ := NewToken(t, 35, auth.RoleOwner)
		tok.ExpiresAt = expires
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	past := mk(now.Add(-time.Minute))
	mk(now.Add(time.Hour)) // not yet
	mk(time.Time{})        // never
	revoked := mk(now.Add(-time.Minute))
	if _, err := s.Revoke(ctx, revoked.ID, now); err != nil {
		t.Fatal(err)
	}
	claim := claimer(t, "ClaimExpired", s.ClaimExpired)
	if got := claim(now); !slices.Equal(got, []string{past.ID}) {
		t.Fatalf("ClaimExpired = %v, want [%s]", got, past.ID)
	}
	if got := claim(now); len(got) != 0 {
		t.Fatalf("second ClaimExpired = %v, want none", got)
	}
	// A new expiry is a new claim.
	if _, err := s.Update(ctx, past.ID, func(u *auth.Token) error { u.ExpiresAt = now.Add(-time.Second); return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimExpired(ctx, now)
	if err != nil || len(got) != 1 || got[0].ID != past.ID {
		t.Fatalf("ClaimExpired after a new expiry = %v, %v; want [%s]", ids(got), err, past.ID)
	}
	if !got[0].ExpiresAt.Equal(now.Add(-time.Second)) {
		t.Errorf("claimed record expires %v, want %v", got[0].ExpiresAt, now.Add(-time.Second))
	}
	// A withdrawn claim is made again.
	if err := s.UnclaimExpired(ctx, got[0]); err != nil {
		t.Fatalf("UnclaimExpired: %v", err)
	}
	if got := claim(now); !slices.Equal(got, []string{past.ID}) {
		t.Fatalf("ClaimExpired after UnclaimExpired = %v, want [%s]", got, past.ID)
	}

	// Concurrent claimants: each expiry goes to exactly one.
	var due []string
	for range 5 {
		due = append(due, mk(now.Add(-time.Second)).ID)
	}
	assertClaimedOnce(t, func() ([]*auth.Token, error) { return s.ClaimExpired(ctx, now) }, due)
}

func testAudit(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	at := time.Date(2025, 8, 1, 12, 0, 0, 0, time.UTC)
	var appended []auth.AuditEvent
	for i := range 5 {
		ev := auth.AuditEvent{
			Time: at.Add(time.Duration(i) * time.Second), Action: "token.create",
			ActorKind: auth.ActorAdminKey, Actor: "0123abcd", ProjectID: 51,
			TokenID: fmt.Sprintf("tsw_%020d", i), Source: "127.0.0.1:5000", Outcome: auth.OutcomeOK,
		}
		if i == 4 {
			ev.Outcome, ev.Reason, ev.Detail = auth.OutcomeRefused, "project_forbidden", "asked for project 52"
		}
		if err := s.AppendAudit(ctx, &ev); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		if ev.ID == "" {
			t.Fatal("AppendAudit set no ID")
		}
		appended = append(appended, ev)
		other := auth.AuditEvent{Time: at, Action: "token.revoke", ActorKind: auth.ActorToken, ProjectID: 52, Outcome: auth.OutcomeOK}
		if err := s.AppendAudit(ctx, &other); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	var got []auth.AuditEvent
	q := auth.AuditQuery{ProjectID: 51, Limit: 2}
	for range 10 {
		p, err := s.ReadAudit(ctx, q)
		if err != nil {
			t.Fatalf("ReadAudit(%+v): %v", q, err)
		}
		got = append(got, p.Events...)
		if p.Next == "" {
			break
		}
		q.Before = p.Next
	}
	if len(got) != len(appended) {
		t.Fatalf("ReadAudit pages gave %d events, want %d: %+v", len(got), len(appended), got)
	}
	for i, ev := range got {
		want := appended[len(appended)-1-i]
		if ev.ID != want.ID || !ev.Time.Equal(want.Time) || ev.Action != want.Action || ev.ActorKind != want.ActorKind ||
			ev.Actor != want.Actor || ev.ProjectID != want.ProjectID || ev.TokenID != want.TokenID ||
			ev.Source != want.Source || ev.Outcome != want.Outcome || ev.Reason != want.Reason || ev.Detail != want.Detail {
			t.Errorf("event %d (newest first) = %+v, want %+v", i, ev, want)
		}
	}
	p, err := s.ReadAudit(ctx, auth.AuditQuery{ProjectID: 53, Limit: 10})
	if err != nil || p.Events == nil || len(p.Events) != 0 || p.Next != "" {
		t.Errorf("ReadAudit of a project without events = %+v, %v; want an empty non-nil page", p, err)
	}
	if _, err := s.ReadAudit(ctx, auth.AuditQuery{ProjectID: 51, Limit: 2, Before: "not a cursor"}); !errors.Is(err, auth.ErrBadCursor) {
		t.Errorf("ReadAudit with a bad cursor: %v, want ErrBadCursor", err)
	}
}
