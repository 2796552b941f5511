package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// stats reads an endpoint's queue stats, or fails the test.
func stats(t *testing.T, q Queue, endpoint string) QueueStats {
	t.Helper()
	s, err := q.Stats(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runQueueCap checks that a queue of MaxPending 3 keeps at most 3
// undelivered deliveries per endpoint, drops and counts the rest, and
// takes new ones again once some end.
func runQueueCap(t *testing.T, h queueHarness) {
	ctx := context.Background()
	now := h.clock.Now()
	for i := range 3 {
		if err := h.q.Enqueue(ctx, testDelivery(i, "ep_a", now)); err != nil {
			t.Fatal(err)
		}
	}
	err := h.q.Enqueue(ctx, testDelivery(3, "ep_a", now), testDelivery(4, "ep_b", now))
	if !errors.Is(err, ErrQueueFull) || len(dropped(err)) != 1 || dropped(err)[0].ID != "dlv_003" {
		t.Fatalf("Enqueue over the bound: %v, want dlv_003 dropped", err)
	}
	if _, err := h.q.Get(ctx, "dlv_003"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the dropped delivery is stored: %v", err)
	}
	if _, err := h.q.Get(ctx, "dlv_004"); err != nil {
		t.Errorf("another endpoint's delivery of the same batch: %v", err)
	}
	if s := stats(t, h.q, "ep_a"); s.Pending != 3 || s.MaxPending != 3 || !s.Full() || s.Dropped != 1 || s.LastDropped.IsZero() {
		t.Errorf("ep_a stats %+v, want 3 of 3 pending, 1 dropped", s)
	}
	if s := stats(t, h.q, "ep_b"); s.Pending != 1 || s.Full() || s.Dropped != 0 {
		t.Errorf("ep_b stats %+v, want 1 pending, none dropped", s)
	}
	ds := leaseAll(t, h.q, "a", 4)
	i := slices.IndexFunc(ds, func(d *Delivery) bool { return d.EndpointID == "ep_a" })
	j := slices.IndexFunc(ds[i+1:], func(d *Delivery) bool { return d.EndpointID == "ep_a" }) + i + 1
	retry, done := ds[i], ds[j]
	retry.record(Attempt{At: now, Error: "refused"})
	retry.State, retry.NextAttempt = StateRetrying, now.Add(time.Hour)
	done.record(Attempt{At: now, Status: 204})
	done.State = StateDelivered
	for _, d := range []*Delivery{retry, done} {
		if err := h.q.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if s := stats(t, h.q, "ep_a"); s.Pending != 2 || s.Full() {
		t.Errorf("after one delivered and one retrying: %+v, want 2 pending", s)
	}
	if err := h.q.Enqueue(ctx, testDelivery(5, "ep_a", now)); err != nil {
		t.Errorf("Enqueue after one ended: %v", err)
	}
	if err := h.q.Enqueue(ctx, testDelivery(6, "ep_a", now)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Enqueue at the bound again: %v", err)
	}
	if s := stats(t, h.q, "ep_a"); s.Pending != 3 || s.Dropped != 2 {
		t.Errorf("after refilling: %+v, want 3 pending, 2 dropped", s)
	}
	// A replay of a delivery that ended would be one more undelivered:
	// the bound refuses it, saying how full the queue is.
	_, err = h.q.Replay(ctx, done.ID)
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, ErrQueueFull) || fe.Project || fe.Pending != 3 || fe.Max != 3 {
		t.Fatalf("Replay at the bound: %v, want a FullError of 3 of 3", err)
	}
	if d, err := h.q.Get(ctx, done.ID); err != nil || d.State != StateDelivered {
		t.Errorf("the refused replay changed the delivery: %+v, %v", d, err)
	}
	// One waiting for a retry is counted already: it may be replayed.
	if _, err := h.q.Replay(ctx, retry.ID); err != nil {
		t.Fatalf("Replay of a retrying delivery at the bound: %v", err)
	}
	if s := stats(t, h.q, "ep_a"); s.Pending != 3 || !s.Full() {
		t.Errorf("after the replays: %+v, want 3 pending", s)
	}
}

func TestFileQueueBoundsUndelivered(t *testing.T) {
	clock := newClock()
	path := t.TempDir() + "/webhooks.queue"
	q := fileQueue(t, path, FileQueueOptions{Now: clock.Now, MaxPending: 3})
	runQueueCap(t, queueHarness{q: q, clock: clock})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	again := fileQueue(t, path, FileQueueOptions{Now: clock.Now, MaxPending: 3})
	if s := stats(t, again, "ep_a"); s.Pending != 3 {
		t.Errorf("after a restart: %+v, want 3 pending", s)
	}
	if err := again.Enqueue(context.Background(), testDelivery(7, "ep_a", clock.Now())); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Enqueue after a restart: %v, want ErrQueueFull", err)
	}
}

func TestRedisQueueBoundsUndelivered(t *testing.T) {
	srv := startRedis(t)
	c := srv.Client(t)
	clock := newClock()
	prefix := newPrefix()
	runQueueCap(t, queueHarness{q: redisQueue(t, c, prefix, RedisQueueOptions{Now: clock.Now, MaxPending: 3}), clock: clock})
	// Another replica shares the bound.
	other := redisQueue(t, c, prefix, RedisQueueOptions{Now: clock.Now, MaxPending: 3})
	if err := other.Enqueue(context.Background(), testDelivery(7, "ep_a", clock.Now())); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Enqueue on another replica: %v, want ErrQueueFull", err)
	}
}

// An event for an endpoint whose queue is full is dropped, counted and
// warned of (once a minute per endpoint, without secret or URL); the
// event's other endpoints get it, and Publish does not fail.
func TestPublisherDropsWhenQueueFull(t *testing.T) {
	ctx := context.Background()
	reg, err := OpenFileRegistry("")
	if err != nil {
		t.Fatal(err)
	}
	var eps []*Endpoint
	for i, u := range []string{"https://hooks.example.com/?key=receiver-credential", "https://other.example.com/"} {
		e, err := NewEndpoint(42, u, nil, time.Unix(1_800_000_000+int64(i), 0))
		if err == nil {
			err = reg.Put(ctx, e)
		}
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, e)
	}
	full, open := eps[0], eps[1]
	q := fileQueue(t, "", FileQueueOptions{MaxPending: 2})
	obs := newAttempts()
	var logs bytes.Buffer
	pub, err := NewPublisher(PublisherOptions{Endpoints: reg, Queue: q, Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, testDeliveryID("dlv_x1", full.ID), testDeliveryID("dlv_x2", full.ID)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		n, err := pub.Publish(ctx, Event{Type: TypeTokenCreated, ProjectID: 42})
		if err != nil || n != 1 {
			t.Fatalf("Publish = %d, %v; want 1 (the open endpoint), nil", n, err)
		}
	}
	if got := obs.dropped.Load(); got != 2 {
		t.Errorf("dropped %d, want 2", got)
	}
	if s := stats(t, q, open.ID); s.Pending != 2 {
		t.Errorf("the open endpoint has %d pending, want 2", s.Pending)
	}
	out := logs.String()
	if strings.Count(out, "queue is full") != 1 || !strings.Contains(out, full.ID) {
		t.Errorf("want one warning naming the endpoint:\n%s", out)
	}
	for _, secret := range []string{full.Secret, "receiver-credential", "hooks.example.com"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}

func testDeliveryID(id, endpoint string) *Delivery {
	d := testDelivery(0, endpoint, time.Now())
	d.ID = id
	return d
}

// dropped returns the deliveries err says were dropped (none when err is
// not a DroppedError).
func dropped(err error) []*Delivery {
	var de *DroppedError
	if errors.As(err, &de) {
		return de.Dropped
	}
	return nil
}
