package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// queueHarness is a queue under test, its clock, and how to make a lease
// run out.
type queueHarness struct {
	q     Queue
	clock *fakeClock
	// stall makes the leases held now expire (advancing the clock, or
	// waiting for the server's visibility timeout).
	stall func()
}

func testDelivery(i int, endpoint string, at time.Time) *Delivery {
	return &Delivery{
		ID: fmt.Sprintf("dlv_%03d", i), EventID: fmt.Sprintf("msg_%03d", i), EventType: TypeTokenCreated,
		EndpointID: endpoint, ProjectID: 42, Payload: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`),
		CreatedAt: at.Add(time.Duration(i) * time.Millisecond),
	}
}

// leaseAll leases until it has n deliveries, or fails the test.
func leaseAll(t *testing.T, q Queue, consumer string, n int) []*Delivery {
	t.Helper()
	var got []*Delivery
	deadline := time.Now().Add(waitTimeout)
	for len(got) < n && time.Now().Before(deadline) {
		ds, err := q.Lease(context.Background(), consumer, n-len(got), 50*time.Millisecond)
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		got = append(got, ds...)
	}
	if len(got) != n {
		t.Fatalf("leased %d deliveries, want %d", len(got), n)
	}
	return got
}

func expectNone(t *testing.T, q Queue, consumer string) {
	t.Helper()
	ds, err := q.Lease(context.Background(), consumer, 10, 20*time.Millisecond)
	if err != nil || len(ds) != 0 {
		t.Fatalf("Lease = %d deliveries, %v; want none", len(ds), err)
	}
}

// runQueueContract checks the behaviour every Queue shares.
func runQueueContract(t *testing.T, open func(t *testing.T) queueHarness) {
	ctx := context.Background()
	t.Run("lease each once", func(t *testing.T) {
		h := open(t)
		for i := range 3 {
			if err := h.q.Enqueue(ctx, testDelivery(i, "ep_a", h.clock.Now())); err != nil {
				t.Fatal(err)
			}
		}
		a := leaseAll(t, h.q, "a", 2)
		b := leaseAll(t, h.q, "b", 1)
		expectNone(t, h.q, "c")
		ids := map[string]bool{}
		for _, d := range append(a, b...) {
			if ids[d.ID] {
				t.Errorf("%s leased twice", d.ID)
			}
			ids[d.ID] = true
			if d.State != StatePending || string(d.Payload) == "" {
				t.Errorf("leased %+v", d)
			}
		}
	})
	t.Run("complete delivered", func(t *testing.T) {
		h := open(t)
		_ = h.q.Enqueue(ctx, testDelivery(1, "ep_a", h.clock.Now()), testDelivery(2, "ep_a", h.clock.Now()))
		ds := leaseAll(t, h.q, "a", 2)
		for _, d := range ds {
			d.record(Attempt{At: h.clock.Now(), Status: 204})
			d.State = StateDelivered
			if err := h.q.Complete(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		expectNone(t, h.q, "a")
		got, err := h.q.Get(ctx, "dlv_001")
		if err != nil || got.State != StateDelivered || got.Attempts != 1 || len(got.Recent) != 1 || got.Recent[0].Status != 204 {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		list, err := h.q.List(ctx, "ep_a", 10)
		if err != nil || len(list) != 2 || list[0].ID != "dlv_002" || list[1].ID != "dlv_001" {
			t.Fatalf("List = %v, %v; want dlv_002, dlv_001", ids(list), err)
		}
		if l, _ := h.q.List(ctx, "ep_other", 10); len(l) != 0 {
			t.Errorf("another endpoint lists %v", ids(l))
		}
		if _, err := h.q.Get(ctx, "dlv_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of an unknown id: %v", err)
		}
	})
	t.Run("retry when due", func(t *testing.T) {
		h := open(t)
		_ = h.q.Enqueue(ctx, testDelivery(1, "ep_a", h.clock.Now()))
		d := leaseAll(t, h.q, "a", 1)[0]
		d.record(Attempt{At: h.clock.Now(), Status: 500, Error: "endpoint answered 500"})
		d.State, d.NextAttempt = StateRetrying, h.clock.Now().Add(time.Hour)
		if err := h.q.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
		expectNone(t, h.q, "a")
		got, _ := h.q.Get(ctx, d.ID)
		if got.State != StateRetrying || !got.NextAttempt.Equal(d.NextAttempt) {
			t.Errorf("status %s next %v, want retrying at %v", got.State, got.NextAttempt, d.NextAttempt)
		}
		h.clock.Advance(time.Hour)
		again := leaseAll(t, h.q, "b", 1)[0]
		if again.ID != d.ID || again.Attempts != 1 {
			t.Errorf("leased %s with %d attempts, want %s with 1", again.ID, again.Attempts, d.ID)
		}
	})
	t.Run("stalled lease is taken over", func(t *testing.T) {
		h := open(t)
		_ = h.q.Enqueue(ctx, testDelivery(1, "ep_a", h.clock.Now()))
		dead := leaseAll(t, h.q, "dead-replica", 1)[0]
		h.stall()
		live := leaseAll(t, h.q, "live-replica", 1)[0]
		if live.ID != dead.ID {
			t.Fatalf("took over %s, want %s", live.ID, dead.ID)
		}
		dead.State = StateDelivered
		if err := h.q.Complete(ctx, dead); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("Complete by the stalled consumer: %v, want ErrLeaseLost", err)
		}
		live.State = StateDelivered
		if err := h.q.Complete(ctx, live); err != nil {
			t.Errorf("Complete by the consumer that took over: %v", err)
		}
	})
	t.Run("dead letter and replay", func(t *testing.T) {
		h := open(t)
		_ = h.q.Enqueue(ctx, testDelivery(1, "ep_a", h.clock.Now()))
		if _, err := h.q.Replay(ctx, "dlv_001"); !errors.Is(err, ErrInFlight) {
			t.Errorf("Replay of a pending delivery: %v, want ErrInFlight", err)
		}
		d := leaseAll(t, h.q, "a", 1)[0]
		d.record(Attempt{At: h.clock.Now(), Error: "refused"})
		d.State = StateDead
		if err := h.q.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
		expectNone(t, h.q, "a")
		r, err := h.q.Replay(ctx, d.ID)
		if err != nil || r.State != StatePending || r.Attempts != 0 || len(r.Recent) != 1 {
			t.Fatalf("Replay = %+v, %v", r, err)
		}
		again := leaseAll(t, h.q, "a", 1)[0]
		if again.EventID != d.EventID || again.Attempts != 0 {
			t.Errorf("replayed %+v: want the same event id, attempts reset", again)
		}
		if _, err := h.q.Replay(ctx, "dlv_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replay of an unknown id: %v", err)
		}
	})
	t.Run("replay of a retry moves it to now", func(t *testing.T) {
		h := open(t)
		_ = h.q.Enqueue(ctx, testDelivery(1, "ep_a", h.clock.Now()))
		d := leaseAll(t, h.q, "a", 1)[0]
		d.record(Attempt{At: h.clock.Now(), Error: "refused"})
		d.State, d.NextAttempt = StateRetrying, h.clock.Now().Add(time.Hour)
		_ = h.q.Complete(ctx, d)
		if _, err := h.q.Replay(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		leaseAll(t, h.q, "a", 1)
		expectNone(t, h.q, "a") // moved, not copied
	})
}

func ids(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestFileQueueContract(t *testing.T) {
	runQueueContract(t, func(t *testing.T) queueHarness {
		clock := newClock()
		q := fileQueue(t, "", FileQueueOptions{Now: clock.Now, VisibilityTimeout: time.Minute})
		return queueHarness{q: q, clock: clock, stall: func() { clock.Advance(2 * time.Minute) }}
	})
}

func TestRedisQueueContract(t *testing.T) {
	srv := startRedis(t)
	c := srv.Client(t)
	runQueueContract(t, func(t *testing.T) queueHarness {
		clock := newClock()
		q := redisQueue(t, c, newPrefix(), RedisQueueOptions{Now: clock.Now, VisibilityTimeout: 100 * time.Millisecond})
		// XAUTOCLAIM measures idleness on the server's clock: leaseAll
		// polls until the lease has been idle long enough.
		return queueHarness{q: q, clock: clock, stall: func() {}}
	})
}

func TestFileQueueSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	path := t.TempDir() + "/q"
	q := fileQueue(t, path, FileQueueOptions{Now: clock.Now})
	for i := range 4 {
		_ = q.Enqueue(ctx, testDelivery(i, "ep_a", clock.Now()))
	}
	ds := leaseAll(t, q, "a", 4)
	ds[0].State = StateDelivered
	ds[1].State, ds[1].NextAttempt = StateRetrying, clock.Now().Add(time.Hour)
	for _, d := range ds[:2] {
		d.record(Attempt{At: clock.Now()})
		if err := q.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// ds[2] and ds[3] are being attempted when the process stops.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := fileQueue(t, path, FileQueueOptions{Now: clock.Now})
	again := leaseAll(t, q2, "b", 2)
	got := map[string]bool{again[0].ID: true, again[1].ID: true}
	if !got[ds[2].ID] || !got[ds[3].ID] {
		t.Errorf("after a restart, leased %v; want the two in flight", ids(again))
	}
	expectNone(t, q2, "b")
	for _, d := range again {
		d.State = StateDelivered
		if err := q2.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := q2.Get(ctx, ds[0].ID); d.State != StateDelivered {
		t.Errorf("delivered one is %s after a restart", d.State)
	}
	clock.Advance(time.Hour)
	if d := leaseAll(t, q2, "b", 1)[0]; d.ID != ds[1].ID || d.Attempts != 1 {
		t.Errorf("after a restart, the retry leased is %+v", d)
	}
}

func TestFileQueueCompactsAndDropsOld(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	path := t.TempDir() + "/q"
	q := fileQueue(t, path, FileQueueOptions{Now: clock.Now, Retention: time.Hour})
	for i := range 300 {
		_ = q.Enqueue(ctx, testDelivery(i, "ep_a", clock.Now()))
	}
	for _, d := range leaseAll(t, q, "a", 300) {
		d.record(Attempt{At: clock.Now()})
		d.State = StateDelivered
		if err := q.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	q.mu.Lock()
	lines := q.lines
	q.mu.Unlock()
	if lines > 2*300+100 {
		t.Errorf("journal has %d lines for 300 deliveries: not compacted", lines)
	}
	_ = q.Close()
	clock.Advance(2 * time.Hour)
	q2 := fileQueue(t, path, FileQueueOptions{Now: clock.Now, Retention: time.Hour})
	if _, err := q2.Get(ctx, "dlv_000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a delivery ended past the retention is still there: %v", err)
	}
}

func TestRedisQueueRecreatesItsGroup(t *testing.T) {
	srv := startRedis(t)
	c := srv.Client(t)
	q := redisQueue(t, c, newPrefix(), RedisQueueOptions{})
	ctx := context.Background()
	_ = q.Enqueue(ctx, testDelivery(1, "ep_a", time.Now()))
	leaseAll(t, q, "a", 1)
	srv.Restart() // an empty Redis: no stream, no group
	if err := q.Enqueue(ctx, testDelivery(2, "ep_a", time.Now())); err != nil {
		t.Fatal(err)
	}
	if d := leaseAll(t, q, "a", 1)[0]; d.ID != "dlv_002" {
		t.Errorf("leased %s after a restart", d.ID)
	}
}
