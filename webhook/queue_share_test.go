package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// sharedDelivery is delivery i of project's event to the operator's
// endpoint ep_op, which receives every project's events.
func sharedDelivery(i int, project int64, at time.Time) *Delivery {
	d := testDelivery(i, "ep_op", at)
	d.ProjectID, d.Shared = project, true
	return d
}

// runProjectShare checks that on a shared endpoint (MaxPending 10,
// MaxPendingPerProject 3) one project holds at most 3 undelivered
// deliveries, so that a noisy project leaves room for the others; an
// endpoint of one project is bounded by MaxPending only.
func runProjectShare(t *testing.T, h queueHarness) {
	ctx := context.Background()
	now := h.clock.Now()
	var noisy []*Delivery
	for i := range 5 {
		noisy = append(noisy, sharedDelivery(i, 1, now))
	}
	err := h.q.Enqueue(ctx, noisy...)
	if !errors.Is(err, ErrProjectQueueFull) || len(dropped(err)) != 2 {
		t.Fatalf("Enqueue of 5 by one project: %v, want 2 dropped for the project's share", err)
	}
	var de *DroppedError
	if errors.As(err, &de) && de.Reason(de.Dropped[0]) != DropProjectQueueFull {
		t.Errorf("reason %q, want %q", de.Reason(de.Dropped[0]), DropProjectQueueFull)
	}
	for i := range 3 {
		if err := h.q.Enqueue(ctx, sharedDelivery(10+i, 2, now)); err != nil {
			t.Errorf("another project's delivery %d: %v", i, err)
		}
	}
	s := stats(t, h.q, "ep_op")
	if s.Pending != 6 || s.Dropped != 2 || s.DroppedProject != 2 || s.MaxPendingPerProject != 3 {
		t.Errorf("ep_op stats %+v, want 6 pending, 2 dropped for a project's share", s)
	}
	for i := range 5 { // a project's own endpoint: its events only
		if err := h.q.Enqueue(ctx, testDelivery(20+i, "ep_p", now)); err != nil {
			t.Errorf("project endpoint delivery %d: %v", i, err)
		}
	}
	// Room comes back to the noisy project as its deliveries end.
	ds := leaseAll(t, h.q, "a", 11)
	var ended *Delivery
	for _, d := range ds {
		if d.EndpointID == "ep_op" && d.ProjectID == 1 {
			d.record(Attempt{At: now, Status: 204})
			d.State = StateDelivered
			if err := h.q.Complete(ctx, d); err != nil {
				t.Fatal(err)
			}
			ended = d
			break
		}
	}
	if err := h.q.Enqueue(ctx, sharedDelivery(30, 1, now)); err != nil {
		t.Errorf("after one of its deliveries ended: %v", err)
	}
	if err := h.q.Enqueue(ctx, sharedDelivery(31, 1, now)); !errors.Is(err, ErrProjectQueueFull) {
		t.Errorf("at its share again: %v, want ErrProjectQueueFull", err)
	}
	// A replay over the project's share is refused too.
	_, err = h.q.Replay(ctx, ended.ID)
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, ErrProjectQueueFull) || !fe.Project || fe.Pending != 3 || fe.Max != 3 {
		t.Errorf("Replay over the project's share: %v, want a project FullError of 3 of 3", err)
	}
}

func TestFileQueueProjectShare(t *testing.T) {
	clock := newClock()
	path := t.TempDir() + "/webhooks.queue"
	opts := FileQueueOptions{Now: clock.Now, MaxPending: 10, MaxPendingPerProject: 3}
	q := fileQueue(t, path, opts)
	runProjectShare(t, queueHarness{q: q, clock: clock})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	again := fileQueue(t, path, opts)
	if err := again.Enqueue(context.Background(), sharedDelivery(40, 1, clock.Now())); !errors.Is(err, ErrProjectQueueFull) {
		t.Errorf("after a restart: %v, want ErrProjectQueueFull", err)
	}
}

func TestRedisQueueProjectShare(t *testing.T) {
	srv := startRedis(t)
	clock := newClock()
	opts := RedisQueueOptions{Now: clock.Now, MaxPending: 10, MaxPendingPerProject: 3}
	runProjectShare(t, queueHarness{q: redisQueue(t, srv.Client(t), newPrefix(), opts), clock: clock})
}

// A noisy project fills its share of the operator's endpoint and no
// more: another project's event still reaches it, and the drops are
// counted with the reason project_queue_full.
func TestPublisherKeepsRoomForOtherProjects(t *testing.T) {
	ctx := context.Background()
	reg, err := OpenFileRegistry("")
	if err != nil {
		t.Fatal(err)
	}
	op, err := NewEndpoint(0, "https://ops.example.com/", nil, time.Unix(1_800_000_000, 0))
	if err == nil {
		err = reg.Put(ctx, op)
	}
	if err != nil {
		t.Fatal(err)
	}
	q := fileQueue(t, "", FileQueueOptions{MaxPending: 10, MaxPendingPerProject: 4})
	obs := newAttempts()
	var logs bytes.Buffer
	pub, err := NewPublisher(PublisherOptions{Endpoints: reg, Queue: q, Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := pub.Publish(ctx, Event{Type: TypeTokenCreated, ProjectID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := pub.Publish(ctx, Event{Type: TypeTokenRevoked, ProjectID: 2}); err != nil || n != 1 {
		t.Errorf("the quiet project's event: %d, %v; want queued to the operator's endpoint", n, err)
	}
	if got := obs.droppedBy(DropProjectQueueFull); got != 16 {
		t.Errorf("dropped for the project's share: %d, want 16", got)
	}
	if out := logs.String(); strings.Count(out, "reason=project_queue_full") != 1 || !strings.Contains(out, "project_id=1") {
		t.Errorf("want one warning naming the project and the reason:\n%s", out)
	}
}
