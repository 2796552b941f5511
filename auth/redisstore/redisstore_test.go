package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// prefixes makes every store of a test binary use its own keys and channel,
// so tests can share a server and never rely on an empty database.
var prefixes atomic.Int64

func newPrefix() string {
	return fmt.Sprintf("tswtest%d:%d:", time.Now().UnixNano(), prefixes.Add(1))
}

// generous is the per-call timeout of stores in tests that do not test
// timeouts: the machine may be loaded, and it only bounds how long a broken
// test hangs.
const generous = 10 * time.Second

func newStore(t *testing.T, c redis.UniversalClient, prefix string) *Store {
	t.Helper()
	s, err := New(Options{Client: c, Prefix: prefix, Timeout: generous})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	storetest.Run(t, func(t *testing.T) auth.ActivityStore {
		return newStore(t, c, newPrefix())
	}, peerOn(c))
}

// peerOn opens, for storetest.WithPeer, a second store on c with the
// first's prefix: another replica sharing its keys.
func peerOn(c redis.UniversalClient) storetest.Option {
	return storetest.WithPeer(func(t *testing.T, s auth.ActivityStore) auth.ActivityStore {
		p := newStore(t, c, s.(*Store).prefix)
		t.Cleanup(func() { _ = p.Close() })
		return p
	})
}

func TestNewOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a client succeeded")
	}
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	_, err := New(Options{Client: plain})
	if err == nil || !strings.Contains(err.Error(), "ContextTimeoutEnabled") {
		t.Errorf("New with a client without ContextTimeoutEnabled: %v, want an error naming it", err)
	}

	ok := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer ok.Close()
	s, err := New(Options{Client: ok})
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != DefaultPrefix || s.channel != DefaultPrefix+"events" ||
		s.timeout != DefaultTimeout || s.retention != DefaultRevokedRetention {
		t.Errorf("defaults: prefix %q channel %q timeout %s retention %s", s.prefix, s.channel, s.timeout, s.retention)
	}
}

// Two stores on one server, as two replicas: each sees the other's records
// and announcements.
func TestCrossReplica(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	a := newStore(t, srv.Client(t), prefix)
	b := newStore(t, srv.Client(t), prefix)
	ctx := context.Background()

	events := make(chan auth.Event, 100)
	stop := watch(t, b, events)
	defer stop()
	if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}

	tok, _ := storetest.NewToken(t, 4, auth.RoleOwner)
	before := time.Now()
	if err := a.Create(ctx, tok); err != nil {
		t.Fatalf("Create on a: %v", err)
	}
	ev := storetest.AwaitChanged(t, events, tok.ID)
	if ev.At.Before(before.Add(-time.Second)) || ev.At.After(time.Now().Add(time.Second)) {
		t.Errorf("EventChanged.At = %v, want the publication time (about %v)", ev.At, before)
	}
	got, err := b.Get(ctx, tok.ID)
	if err != nil {
		t.Fatalf("Get on b: %v", err)
	}
	storetest.AssertEqual(t, got, tok)
	if l, err := b.List(ctx, 4); err != nil || len(l) != 1 {
		t.Fatalf("List on b = %d tokens, %v; want 1", len(l), err)
	}

	if _, err := a.Revoke(ctx, tok.ID, time.Now()); err != nil {
		t.Fatalf("Revoke on a: %v", err)
	}
	storetest.AwaitChanged(t, events, tok.ID)
	if got, err := b.Get(ctx, tok.ID); err != nil || !got.Revoked() {
		t.Fatalf("Get on b after Revoke on a = %+v, %v; want the tombstone", got, err)
	}
}

func TestTombstoneTTL(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s, err := New(Options{Client: c, Prefix: newPrefix(), RevokedRetention: time.Hour, Timeout: generous})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, s.tokenKey(tok.ID)).Val(); ttl != -1 {
		t.Errorf("PTTL of a live record = %v, want none (-1)", ttl)
	}
	if _, err := s.Revoke(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(ctx, s.tokenKey(tok.ID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("PTTL of the tombstone = %v, want in (0, 1h]", ttl)
	}
	fields := c.HGetAll(ctx, s.tokenKey(tok.ID)).Val()
	if _, ok := fields["hash"]; ok {
		t.Error("the tombstone still holds the secret hash")
	}
	if _, ok := fields["pepper"]; ok {
		t.Error("the tombstone still holds the pepper id")
	}
}

// A stopped server makes calls fail with ErrUnavailable, not hang and not
// claim anything about the token.
func TestServerStopped(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	prefix := newPrefix()
	s, err := New(Options{Client: c, Prefix: prefix}) // default 100ms timeout
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := newStore(t, c, prefix).Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	_, err = s.Get(ctx, tok.ID)
	assertUnavailable(t, "Get", err)
	assertUnavailable(t, "Create", s.Create(ctx, tok))
	_, err = s.List(ctx, 1)
	assertUnavailable(t, "List", err)
	_, err = s.Revoke(ctx, tok.ID, time.Now())
	assertUnavailable(t, "Revoke", err)
	_, err = s.Update(ctx, tok.ID, func(u *auth.Token) error { u.Status = auth.StatusInactive; return nil })
	assertUnavailable(t, "Update", err)
}

// The rate-limit override is stored as the fields rate and burst, absent
// when zero; Update deletes the optional fields it clears.
func TestUpdateFields(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s := newStore(t, c, newPrefix())
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 8, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	fields := c.HGetAll(ctx, s.tokenKey(tok.ID)).Val()
	for _, f := range []string{"rate", "burst", "expires"} {
		if _, ok := fields[f]; ok {
			t.Errorf("a record without %s has the field: %v", f, fields)
		}
	}
	exp := time.Now().Add(time.Hour)
	if _, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		u.RateLimit, u.RateBurst, u.ExpiresAt = 0.25, 3, exp
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fields = c.HGetAll(ctx, s.tokenKey(tok.ID)).Val()
	if fields["rate"] != "0.25" || fields["burst"] != "3" || fields["expires"] != strconv.FormatInt(exp.UnixMilli(), 10) {
		t.Errorf("fields after setting the override and expiry: %v", fields)
	}
	if ttl := c.PTTL(ctx, s.tokenKey(tok.ID)).Val(); ttl >= 0 {
		t.Errorf("an updated live record has a TTL of %v", ttl)
	}
	if _, err := s.Update(ctx, tok.ID, func(u *auth.Token) error {
		u.RateLimit, u.RateBurst, u.ExpiresAt = 0, 0, time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fields = c.HGetAll(ctx, s.tokenKey(tok.ID)).Val()
	for _, f := range []string{"rate", "burst", "expires"} {
		if _, ok := fields[f]; ok {
			t.Errorf("field %s left after clearing it: %v", f, fields)
		}
	}
	if _, ok := fields["hash"]; !ok {
		t.Errorf("Update lost the secret hash: %v", fields)
	}
}

// A hung server (SIGSTOP) makes Get return ErrUnavailable once Timeout has
// passed, rather than hang; after it resumes, Get works again.
func TestServerHung(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	prefix := newPrefix()
	s, err := New(Options{Client: c, Prefix: prefix}) // default 100ms timeout
	if err != nil {
		t.Fatal(err)
	}
	patient := newStore(t, c, prefix)
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := patient.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	_, err = s.Get(ctx, tok.ID)
	srv.Resume()
	assertUnavailable(t, "Get", err)
	if _, err := patient.Get(ctx, tok.ID); err != nil {
		t.Fatalf("Get after the server resumed: %v", err)
	}
}

func assertUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("%s with Redis down: %v, want ErrUnavailable", op, err)
	}
	if errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrExists) {
		t.Errorf("%s with Redis down: %v claims something about the token", op, err)
	}
}

// A restart of Redis makes Watch report the outage, then a resync.
func TestWatchRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	events := make(chan auth.Event, 100)
	stop := watch(t, s, events)
	defer stop()
	if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}

	srv.Restart()
	awaitOutage(t, events)

	// The new subscription hears changes.
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := s.Create(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	storetest.AwaitChanged(t, events, tok.ID)
}

// A server that hangs is noticed by the unanswered PING.
func TestWatchHung(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	s.pingInterval = 200 * time.Millisecond
	events := make(chan auth.Event, 100)
	stop := watch(t, s, events)
	defer stop()
	if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
		t.Fatalf("first event = %+v, want EventResync", ev)
	}

	srv.Pause()
	ev := storetest.Await(t, events, "EventDisconnected")
	srv.Resume()
	if ev.Kind != auth.EventDisconnected {
		t.Fatalf("event while hung = %+v, want EventDisconnected", ev)
	}
	for {
		ev := storetest.Await(t, events, "EventResync")
		if ev.Kind == auth.EventResync {
			break
		}
		if ev.Kind != auth.EventDisconnected {
			t.Fatalf("event after resume = %+v, want EventResync", ev)
		}
	}
}

// awaitOutage waits for EventDisconnected then EventResync.
func awaitOutage(t *testing.T, events <-chan auth.Event) {
	t.Helper()
	ev := storetest.Await(t, events, "EventDisconnected")
	if ev.Kind != auth.EventDisconnected || !errors.Is(ev.Err, auth.ErrUnavailable) {
		t.Fatalf("event after restart = %+v, want EventDisconnected with ErrUnavailable", ev)
	}
	if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
		t.Fatalf("event after EventDisconnected = %+v, want EventResync", ev)
	}
}

func TestWatchClose(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	events := make(chan auth.Event, 10)
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
	if err := s.Watch(context.Background(), func(auth.Event) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch on a closed store: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCorruptRecord(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s := newStore(t, c, newPrefix())
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 3, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, s.tokenKey(tok.ID), "role", "janitor", "created", "yesterday").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, tok.ID)
	if err == nil || errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Get of a corrupt record: %v, want a corruption error", err)
	}
	for _, want := range []string{tok.ID, "corrupt", "janitor", "created"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := s.List(ctx, 3); err == nil {
		t.Error("List over a corrupt record succeeded")
	}
}

// An index entry without a live record (a lost ZREM, an expired tombstone)
// is skipped and removed by List.
func TestListStaleIndex(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s := newStore(t, c, newPrefix())
	ctx := context.Background()
	live, _ := storetest.NewToken(t, 6, auth.RoleOwner)
	gone, _ := storetest.NewToken(t, 6, auth.RoleOwner)
	dead, _ := storetest.NewToken(t, 6, auth.RoleOwner)
	for _, tok := range []*auth.Token{live, gone, dead} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// gone: the record vanished; dead: revoked behind the index's back.
	c.Del(ctx, s.tokenKey(gone.ID))
	c.HSet(ctx, s.tokenKey(dead.ID), "revoked", time.Now().UnixMilli())

	l, err := s.List(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].ID != live.ID {
		t.Fatalf("List = %d tokens, want only %s", len(l), live.ID)
	}
	members := c.ZRange(ctx, s.projectKey(6), 0, -1).Val()
	if len(members) != 1 || members[0] != live.ID {
		t.Errorf("index after List = %v, want [%s]", members, live.ID)
	}
}

func TestParseMessage(t *testing.T) {
	id, _, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		payload string
		ok      bool
		at      time.Time
	}{
		{id + " 1700000000123456789", true, at},
		{"  " + id + "  1700000000123456789 ", true, at},
		{id, true, time.Time{}},
		{id + " soon", true, time.Time{}},
		{id + " -5", true, time.Time{}},
		{"", false, time.Time{}},
		{"tsw_short 1", false, time.Time{}},
		{"hello world", false, time.Time{}},
	} {
		gotID, gotAt, ok := parseMessage(tc.payload)
		if ok != tc.ok || (ok && (gotID != id || !gotAt.Equal(tc.at))) {
			t.Errorf("parseMessage(%q) = %q, %v, %v; want ok %v at %v", tc.payload, gotID, gotAt, ok, tc.ok, tc.at)
		}
	}
}

// An unreadable announcement is reported as a resync, never dropped.
func TestWatchUnreadableMessage(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s := newStore(t, c, newPrefix())
	events := make(chan auth.Event, 10)
	stop := watch(t, s, events)
	defer stop()
	storetest.Await(t, events, "EventResync")
	if err := c.Publish(context.Background(), s.channel, "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
		t.Fatalf("event for an unreadable message = %+v, want EventResync", ev)
	}
}

// watch runs s.Watch in a goroutine, sending its events to events; the
// returned function stops it and checks that it returned ctx's error.
func watch(t *testing.T, s auth.Store, events chan<- auth.Event) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(ev auth.Event) { events <- ev }) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	}
}

// CountTokens walks the records of its own prefix only, across SCAN
// batches, and leaves tombstones out.
func TestCountTokens(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	prefix := newPrefix()
	s := newStore(t, c, prefix+"a*[x]:") // glob characters are matched literally
	other := newStore(t, c, prefix+"a")
	var ids []string
	for i := range 25 {
		role := auth.RoleOwner
		if i%5 == 0 {
			role = auth.RoleAccounting
		}
		tok, _ := storetest.NewToken(t, int64(i+1), role)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	otherTok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := other.Create(ctx, otherTok); err != nil {
		t.Fatal(err)
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
	// 20 owner tokens: one inactive, one revoked; 5 accounting tokens.
	if got[auth.RoleOwner][auth.StatusActive] != 18 || got[auth.RoleOwner][auth.StatusInactive] != 1 ||
		got[auth.RoleAccounting][auth.StatusActive] != 5 || got[auth.RoleAccounting][auth.StatusInactive] != 0 {
		t.Errorf("CountTokens = %v, want owner 18 active 1 inactive, accounting 5 active", got)
	}
	got, err = other.CountTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got[auth.RoleOwner][auth.StatusActive] != 1 || len(got) != 1 {
		t.Errorf("CountTokens of the other prefix = %v, want 1 active owner", got)
	}
}

// TestAddUsageRetryAppliesOnce: a flush that Redis applied (or partly
// applied) before the client saw an error is sent again with the same
// recorder and batch; it is counted once. The next batch counts.
func TestAddUsageRetryAppliesOnce(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), newPrefix())
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 5, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := func(batch uint64, n int64) []auth.UsageRecord {
		return []auth.UsageRecord{{TokenID: tok.ID, Minute: now, LastUsed: now, Counts: map[auth.Code]int64{auth.OK: n},
			Recorder: "replica-a", Batch: batch}}
	}
	for _, step := range []struct {
		recs []auth.UsageRecord
		want int64
	}{
		{rec(1, 5), 5},
		{rec(1, 5), 5}, // the retry of batch 1
		{append(rec(1, 5), rec(2, 3)...), 8},
		{rec(2, 3), 8},
		{[]auth.UsageRecord{{TokenID: tok.ID, Minute: now, LastUsed: now, Counts: map[auth.Code]int64{auth.OK: 1}}}, 9}, // no recorder: always
	} {
		if err := s.AddUsage(ctx, step.recs); err != nil {
			t.Fatal(err)
		}
		u, err := s.UsageOf(ctx, []string{tok.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := u[tok.ID].Counts[auth.OK]; got != step.want {
			t.Fatalf("after %d record(s) of batch %d: %d allowed, want %d", len(step.recs), step.recs[0].Batch, got, step.want)
		}
	}
}

// A record written before rotated_to existed decodes without it; the field
// is written when set and deleted when cleared.
func TestRotatedToField(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	s := newStore(t, c, newPrefix())
	ctx := context.Background()
	old, _ := storetest.NewToken(t, 9, auth.RoleOwner)
	next, _ := storetest.NewToken(t, 9, auth.RoleOwner)
	if err := c.HSet(ctx, s.tokenKey(old.ID), "project", "9", "name", "before", "role", "owner", "status", "active",
		"created", "1700000000000", "hash", strings.Repeat("ab", 32), "pepper", "p1").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, old.ID)
	if err != nil || got.Rotated() || got.Name != "before" {
		t.Fatalf("a record without rotated_to: %+v, %v", got, err)
	}
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.RotatedTo = next.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	if v := c.HGet(ctx, s.tokenKey(old.ID), "rotated_to").Val(); v != next.ID {
		t.Errorf("rotated_to = %q, want %s", v, next.ID)
	}
	if _, err := s.Update(ctx, old.ID, func(u *auth.Token) error { u.RotatedTo = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := c.HExists(ctx, s.tokenKey(old.ID), "rotated_to").Val(); n {
		t.Error("rotated_to left after clearing it")
	}
}
