package redisstore

// The store beyond one Redis: a Redis Cluster of three masters and a
// Sentinel setup (master, replica, three sentinels) with a failover during
// traffic. Each top-level test starts its topology once for its subtests,
// which keep apart by key prefix.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

func TestCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)

	t.Run("Contract", func(t *testing.T) {
		c := rc.Client(t)
		storetest.Run(t, func(t *testing.T) auth.ActivityStore { return newStore(t, c, newPrefix()) }, peerOn(c))
	})

	// A prefix with a hash tag puts every key in one slot: the indexes have
	// one copy, and a create within a limit is one script.
	t.Run("ContractHashTagPrefix", func(t *testing.T) {
		c := rc.Client(t)
		storetest.Run(t, func(t *testing.T) auth.ActivityStore { return newStore(t, c, "{"+newPrefix()+"}") }, peerOn(c))
	})

	// The client tswgate builds for cluster=true (cmd/tswgate's openStore).
	t.Run("UniversalClient", func(t *testing.T) {
		u := redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: rc.Addrs(), IsClusterMode: true, ContextTimeoutEnabled: true,
		})
		t.Cleanup(func() { _ = u.Close() })
		if _, ok := u.(*redis.ClusterClient); !ok {
			t.Fatalf("NewUniversalClient with IsClusterMode made a %T, want *redis.ClusterClient", u)
		}
		s := newStore(t, u, newPrefix())
		tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
		ctx := context.Background()
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.Get(ctx, tok.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		storetest.AssertEqual(t, got, tok)
	})

	// Two replicas on their own cluster clients hear each other's changes:
	// cross-replica revocation over cluster Pub/Sub. Announcements are also
	// published on each node in turn, so that whichever node the watcher's
	// subscription landed on, delivery from every other node is shown.
	t.Run("CrossReplica", func(t *testing.T) {
		prefix := newPrefix()
		a := newStore(t, rc.Client(t), prefix)
		b := newStore(t, rc.Client(t), prefix)
		ctx := context.Background()
		events := make(chan auth.Event, 100)
		stop := watch(t, b, events)
		defer stop()
		if ev := storetest.Await(t, events, "EventResync"); ev.Kind != auth.EventResync {
			t.Fatalf("first event = %+v, want EventResync", ev)
		}

		tok, _ := storetest.NewToken(t, 5, auth.RoleOwner)
		if err := a.Create(ctx, tok); err != nil {
			t.Fatalf("Create on a: %v", err)
		}
		storetest.AwaitChanged(t, events, tok.ID)
		got, err := b.Get(ctx, tok.ID)
		if err != nil {
			t.Fatalf("Get on b: %v", err)
		}
		storetest.AssertEqual(t, got, tok)
		if _, err := a.Revoke(ctx, tok.ID, time.Now()); err != nil {
			t.Fatalf("Revoke on a: %v", err)
		}
		storetest.AwaitChanged(t, events, tok.ID)
		if got, err := b.Get(ctx, tok.ID); err != nil || !got.Revoked() {
			t.Fatalf("Get on b after Revoke on a = %+v, %v; want the tombstone", got, err)
		}

		for _, addr := range rc.Addrs() {
			node := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
			id, _, err := auth.NewCredential()
			if err != nil {
				t.Fatal(err)
			}
			err = node.Publish(ctx, b.channel, id+" "+strconv.FormatInt(time.Now().UnixNano(), 10)).Err()
			node.Close()
			if err != nil {
				t.Fatalf("PUBLISH on node %s: %v", addr, err)
			}
			storetest.AwaitChanged(t, events, id)
		}
	})

	// A policy hash and the set of projects with a policy are in two
	// slots: a set or clear still leaves them agreeing.
	t.Run("PolicyKeys", func(t *testing.T) {
		s := newStore(t, rc.Client(t), newPrefix())
		if keySlot(s.policyKey(42)) == keySlot(s.policiesKey()) {
			t.Fatal("the policy of project 42 and the set are in one slot: pick another project")
		}
		testPolicySteps(t, s, func(project int64) (hash, listed bool) {
			ctx := context.Background()
			n, err := s.client.Exists(ctx, s.policyKey(project)).Result()
			if err != nil {
				t.Fatal(err)
			}
			in, err := s.client.SIsMember(ctx, s.policiesKey(), strconv.FormatInt(project, 10)).Result()
			if err != nil {
				t.Fatal(err)
			}
			return n == 1, in
		})
	})

	// Records of one project hash to slots on different nodes, while the
	// project's index is one key on one node: List gathers them all.
	t.Run("ManySlots", func(t *testing.T) {
		c := rc.Client(t)
		s := newStore(t, c, newPrefix())
		ctx := context.Background()
		const n = 40
		var toks []*auth.Token
		nodes := map[string]bool{}
		slots := map[int64]bool{}
		owners := slotOwners(t, c)
		for range n {
			tok, _ := storetest.NewToken(t, 77, auth.RoleOwner)
			if err := s.Create(ctx, tok); err != nil {
				t.Fatalf("Create: %v", err)
			}
			toks = append(toks, tok)
			slot, err := c.ClusterKeySlot(ctx, s.tokenKey(tok.ID)).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
			nodes[owners(slot)] = true
		}
		t.Logf("%d records in %d slots on %d nodes", n, len(slots), len(nodes))
		if len(nodes) < 2 {
			t.Fatalf("%d records all hash to one node: the test shows nothing", n)
		}
		// Another replica, on its own client, lists them.
		l, err := newStore(t, rc.Client(t), s.prefix).List(ctx, 77)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(l) != n {
			t.Fatalf("List has %d tokens, want %d", len(l), n)
		}
		listed := map[string]*auth.Token{}
		for _, tok := range l {
			listed[tok.ID] = tok
		}
		for _, tok := range toks {
			storetest.AssertEqual(t, listed[tok.ID], tok)
		}
		// Revoke every third: List leaves them out.
		want := map[string]bool{}
		for i, tok := range toks {
			if i%3 == 0 {
				if _, err := s.Revoke(ctx, tok.ID, time.Now()); err != nil {
					t.Fatalf("Revoke: %v", err)
				}
			} else {
				want[tok.ID] = true
			}
		}
		l, err = s.List(ctx, 77)
		if err != nil {
			t.Fatalf("List after revoking: %v", err)
		}
		if len(l) != len(want) {
			t.Fatalf("List after revoking has %d tokens, want %d", len(l), len(want))
		}
		for _, tok := range l {
			if !want[tok.ID] {
				t.Errorf("List after revoking has %s, which was revoked", tok.ID)
			}
		}
	})
}

// slotOwners returns a function giving the address of the node that serves
// a slot.
func slotOwners(t *testing.T, c *redis.ClusterClient) func(slot int64) string {
	t.Helper()
	ranges, err := c.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	return func(slot int64) string {
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
				return r.Nodes[0].Addr
			}
		}
		t.Fatalf("slot %d is not served", slot)
		return ""
	}
}

func TestSentinel(t *testing.T) {
	rs := redistest.StartSentinel(t)

	t.Run("Contract", func(t *testing.T) {
		c := rs.Client(t)
		storetest.Run(t, func(t *testing.T) auth.ActivityStore { return newStore(t, c, newPrefix()) }, peerOn(c))
	})

	// Last: it moves the master.
	t.Run("FailoverDuringTraffic", func(t *testing.T) { testFailoverDuringTraffic(t, rs) })
}

// eventLog collects the events of a Watch without ever blocking it.
type eventLog struct {
	mu     sync.Mutex
	events []timedEvent
}

type timedEvent struct {
	auth.Event
	at time.Time
}

func (l *eventLog) add(ev auth.Event) {
	l.mu.Lock()
	l.events = append(l.events, timedEvent{ev, time.Now()})
	l.mu.Unlock()
}

// await polls until an event after since satisfies ok, and returns it.
func (l *eventLog) await(t *testing.T, since time.Time, timeout time.Duration, what string, ok func(auth.Event) bool) timedEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		for _, ev := range l.events {
			if !ev.at.Before(since) && ok(ev.Event) {
				l.mu.Unlock()
				return ev
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond) // bounded by the deadline
	}
}

// cycle is one worker's Create, Get, Revoke, Get of a fresh token.
type cycle struct {
	start time.Time
	tok   *auth.Token
	steps []step
}

type step struct {
	op    string
	start time.Time
	err   error
	got   *auth.Token // Get's and Revoke's record
}

// testFailoverDuringTraffic runs writers and readers against the Sentinel
// setup while it fails over, and checks:
//   - records created and confirmed replicated (WAIT) before the failover
//     survive it, live or revoked as they were;
//   - while it fails over, an operation fails only with ErrUnavailable,
//     and never returns a record that differs from one written; the
//     anomalies asynchronous replication allows (a write the old master
//     acknowledged but never passed on, a Create retried after its reply
//     was lost) are counted, not failed;
//   - once the store's client has switched to the new master, every
//     operation succeeds and reads its writes;
//   - Watch (another replica, on its own client) delivers EventResync after
//     the failover, then hears changes made on the new master.
func testFailoverDuringTraffic(t *testing.T, rs *redistest.Sentinel) {
	prefix := newPrefix()
	c := rs.Client(t)
	s, err := New(Options{Client: c, Prefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	watcher := newStore(t, rs.Client(t), prefix)
	var log eventLog
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- watcher.Watch(wctx, log.add) }()
	defer func() {
		wcancel()
		select {
		case <-wdone:
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	}()
	log.await(t, time.Time{}, 10*time.Second, "EventResync at the start", isKind(auth.EventResync))
	ctx := context.Background()

	// Before: live and revoked records, replicated.
	const preProject = 90
	var preLive, preRevoked []*auth.Token
	for i := range 10 {
		tok, _ := storetest.NewToken(t, preProject, auth.RoleOwner)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create before the failover: %v", err)
		}
		if i%2 == 0 {
			rev, err := s.Revoke(ctx, tok.ID, time.Now())
			if err != nil {
				t.Fatalf("Revoke before the failover: %v", err)
			}
			preRevoked = append(preRevoked, rev)
		} else {
			preLive = append(preLive, tok)
		}
	}
	rs.WaitReplicated(t)
	oldMaster := rs.MasterAddr(t)

	// Traffic.
	const workers = 4
	var (
		stopping atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		cycles   [workers][]*cycle
	)
	for w := range workers {
		wg.Go(func() {
			for !stopping.Load() {
				cy := runCycle(t, s, int64(100+w))
				mu.Lock()
				cycles[w] = append(cycles[w], cy)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // a steady, modest load
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // traffic before the failover

	failStart := time.Now()
	rs.Failover(t)
	failEnd := time.Now()
	newMaster := rs.MasterAddr(t)
	t.Logf("failover from %s to %s took %v", oldMaster, newMaster, failEnd.Sub(failStart))

	// The store's client has switched once it is answered by the new
	// master; from then on every operation must succeed.
	_, newPort, _ := net.SplitHostPort(newMaster)
	var switched time.Time
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Info(ctx, "server").Result()
		if err == nil && infoField(info, "tcp_port") == newPort {
			switched = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store's client was not answered by the new master %s within 10s (last: %v)", newMaster, err)
		}
		time.Sleep(10 * time.Millisecond) // bounded by the deadline
	}
	t.Logf("the store's client switched %v after the failover returned", switched.Sub(failEnd))

	// Let every worker complete cycles that start after the switch.
	deadline = time.Now().Add(10 * time.Second)
	for {
		done := 0
		mu.Lock()
		for w := range workers {
			n := 0
			for _, cy := range cycles[w] {
				if cy.start.After(switched) {
					n++
				}
			}
			if n >= 3 {
				done++
			}
		}
		mu.Unlock()
		if done == workers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers did not complete 3 cycles each within 10s of the switch")
		}
		time.Sleep(10 * time.Millisecond) // bounded by the deadline
	}
	stopping.Store(true)
	wg.Wait()

	// Judge every cycle.
	var total, inWindow, unavailable, anomalies int
	for w := range workers {
		for _, cy := range cycles[w] {
			total++
			after := cy.start.After(switched)
			if !after {
				inWindow++
			}
			u, a := judgeCycle(t, cy, after)
			unavailable += u
			anomalies += a
		}
	}
	// Every acknowledged write of a cycle begun after the switch is there;
	// one acknowledged before may have been lost with the old master, but
	// then the record is in an earlier state of its own, never another.
	lost := 0
	for w := range workers {
		for _, cy := range cycles[w] {
			if !finalState(t, s, cy, cy.start.After(switched)) {
				lost++
			}
		}
	}
	t.Logf("%d cycles, %d begun before the switch; %d operations failed with ErrUnavailable, "+
		"%d replication anomalies seen during the traffic, %d records afterwards in an earlier state than acknowledged (writes lost with the old master)",
		total, inWindow, unavailable, anomalies, lost)

	// The replicated records survived.
	for _, want := range preLive {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get of %s, created and replicated before the failover: %v", want.ID, err)
		}
		storetest.AssertEqual(t, got, want)
	}
	for _, want := range preRevoked {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get of %s, revoked and replicated before the failover: %v", want.ID, err)
		}
		storetest.AssertEqual(t, got, want)
	}
	l, err := s.List(ctx, preProject)
	if err != nil {
		t.Fatalf("List after the failover: %v", err)
	}
	if len(l) != len(preLive) {
		t.Errorf("List after the failover has %d tokens, want the %d live ones", len(l), len(preLive))
	}

	// The watcher resubscribed soon after the failover (Sentinel itself
	// drops the old master's subscribers only some 10 s later), and hears
	// changes made on the new master.
	const resyncBound = 5 * time.Second
	ev := log.await(t, failStart, max(time.Until(failEnd.Add(resyncBound)), 0), "EventResync after the failover", isKind(auth.EventResync))
	t.Logf("the watcher resynced %v after the failover returned", ev.at.Sub(failEnd))
	if ev.at.After(failEnd.Add(resyncBound)) {
		t.Fatalf("the watcher resynced %v after the failover returned, want within %v", ev.at.Sub(failEnd), resyncBound)
	}
	tok, _ := storetest.NewToken(t, 91, auth.RoleOwner)
	before := time.Now()
	if err := s.Create(ctx, tok); err != nil {
		t.Fatalf("Create after the failover: %v", err)
	}
	log.await(t, before, 5*time.Second, "EventChanged for a token created after the failover",
		func(ev auth.Event) bool { return ev.Kind == auth.EventChanged && ev.ID == tok.ID })
}

// finalState reads cy's token and checks it against the last state a step
// of cy acknowledged. It reports false when the record is in an earlier
// state (a lost write), which fails the test if strict.
func finalState(t *testing.T, s *Store, cy *cycle, strict bool) bool {
	t.Helper()
	var want *auth.Token // the last acknowledged state; nil: none
	created := false
	for _, st := range cy.steps {
		switch {
		case st.err != nil:
		case st.op == "create":
			want, created = cy.tok, true
		case st.op == "revoke":
			want = st.got
		}
	}
	got, err := s.Get(context.Background(), cy.tok.ID)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		if want == nil && !created {
			return true // its Create failed, and took no effect
		}
		if strict {
			t.Errorf("%s, created after the switch, is gone", cy.tok.ID)
		}
		return false
	case err != nil:
		t.Errorf("Get of %s after the failover: %v", cy.tok.ID, err)
		return true
	case want == nil: // a Create that failed but took effect
		storetest.AssertEqual(t, got, cy.tok)
		return true
	case got.Revoked() == want.Revoked():
		storetest.AssertEqual(t, got, want)
		return true
	case got.Revoked():
		t.Errorf("%s is revoked, but no Revoke of it was acknowledged", cy.tok.ID)
		return true
	default:
		storetest.AssertEqual(t, got, cy.tok)
		if strict {
			t.Errorf("%s, revoked after the switch, is live", cy.tok.ID)
		}
		return false
	}
}

func isKind(k auth.EventKind) func(auth.Event) bool {
	return func(ev auth.Event) bool { return ev.Kind == k }
}

// runCycle creates, reads, revokes and reads a fresh token of project,
// recording each step; it stops at the first failed step.
func runCycle(t *testing.T, s *Store, project int64) *cycle {
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, project, auth.RoleOwner)
	cy := &cycle{start: time.Now(), tok: tok}
	do := func(op string, f func() (*auth.Token, error)) bool {
		st := step{op: op, start: time.Now()}
		st.got, st.err = f()
		cy.steps = append(cy.steps, st)
		return st.err == nil
	}
	_ = do("create", func() (*auth.Token, error) { return nil, s.Create(ctx, tok) }) &&
		do("get", func() (*auth.Token, error) { return s.Get(ctx, tok.ID) }) &&
		do("revoke", func() (*auth.Token, error) { return s.Revoke(ctx, tok.ID, time.Now()) }) &&
		do("get", func() (*auth.Token, error) { return s.Get(ctx, tok.ID) })
	return cy
}

// judgeCycle fails the test for wrong data, and for any failure in a cycle
// begun after the switch. It returns how many steps failed with
// ErrUnavailable and how many replication anomalies it allowed.
func judgeCycle(t *testing.T, cy *cycle, afterSwitch bool) (unavailable, anomalies int) {
	t.Helper()
	live := cy.tok
	var tomb *auth.Token // the tombstone Revoke returned
	for _, st := range cy.steps {
		where := fmt.Sprintf("%s of %s (cycle begun %s, step begun %s)", st.op, live.ID,
			cy.start.Format("15:04:05.000"), st.start.Format("15:04:05.000"))
		if st.err != nil {
			if afterSwitch {
				t.Errorf("%s after the client switched to the new master: %v", where, st.err)
				continue
			}
			switch {
			case errors.Is(st.err, auth.ErrUnavailable):
				if errors.Is(st.err, auth.ErrNotFound) || errors.Is(st.err, auth.ErrExists) {
					t.Errorf("%s: %v is ErrUnavailable and claims something about the token", where, st.err)
				}
				unavailable++
			case st.op == "create" && errors.Is(st.err, auth.ErrExists),
				st.op != "create" && errors.Is(st.err, auth.ErrNotFound):
				// A Create retried after its reply was lost, or a
				// Create the old master acknowledged and lost.
				anomalies++
			default:
				t.Errorf("%s during the failover: %v, want ErrUnavailable", where, st.err)
			}
			continue
		}
		switch st.op {
		case "get":
			if st.got == nil {
				t.Errorf("%s returned no record and no error", where)
				continue
			}
			switch {
			case !st.got.Revoked():
				storetest.AssertEqual(t, st.got, live)
				if tomb != nil { // a revocation the old master lost
					if afterSwitch {
						t.Errorf("%s after the client switched: the token is live after its Revoke returned", where)
					}
					anomalies++
				}
			case tomb != nil:
				storetest.AssertEqual(t, st.got, tomb)
			default:
				t.Errorf("%s: a tombstone before the token was revoked: %+v", where, st.got)
			}
		case "revoke":
			if st.got == nil || !st.got.Revoked() {
				t.Errorf("%s returned %+v, want a tombstone", where, st.got)
				continue
			}
			want := *live
			want.SecretHash, want.PepperID, want.RevokedAt = [32]byte{}, "", st.got.RevokedAt
			storetest.AssertEqual(t, st.got, &want)
			if st.got.RevokedAt.Before(st.start.Add(-time.Second)) || st.got.RevokedAt.After(time.Now()) {
				t.Errorf("%s: revoked at %v, want the time of this Revoke (%v)", where, st.got.RevokedAt, st.start)
			}
			tomb = st.got
		}
	}
	if afterSwitch && len(cy.steps) != 4 {
		t.Errorf("cycle of %s begun after the switch stopped after %d steps", live.ID, len(cy.steps))
	}
	return unavailable, anomalies
}

func infoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return ""
}
