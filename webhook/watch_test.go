package webhook

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
)

// fakePublisher records events and passes them on a channel.
type fakePublisher struct {
	ch chan Event
}

func (p *fakePublisher) Publish(_ context.Context, ev Event) (int, error) {
	p.ch <- ev
	return 1, nil
}

type tokenMap map[string]*auth.Token

func (m tokenMap) Get(_ context.Context, id string) (*auth.Token, error) {
	if t, ok := m[id]; ok {
		return t, nil
	}
	return nil, auth.ErrNotFound
}

func TestRateLimitWatchThresholdAndDebounce(t *testing.T) {
	tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	pub := &fakePublisher{ch: make(chan Event, 10)}
	w, err := NewRateLimitWatch(RateLimitWatchOptions{Tokens: tokenMap{tok.ID: tok}, Publisher: pub,
		Threshold: 5, Window: time.Minute, Debounce: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0)
	for i := range 4 {
		w.Record(tok.ID, auth.CodeRateLimited, at.Add(time.Duration(i)*time.Second))
		w.Record(tok.ID, auth.OK, at)
		w.Record(tok.ID, auth.CodeInvalidToken, at)
	}
	if len(w.notes) != 0 {
		t.Fatal("an event below the threshold")
	}
	w.Record(tok.ID, auth.CodeRateLimited, at.Add(5*time.Second)) // the 5th within a minute
	for i := range 100 {                                          // more within the debounce: no new event
		w.Record(tok.ID, auth.CodeRateLimited, at.Add(6*time.Second+time.Duration(i)*time.Second))
	}
	if len(w.notes) != 1 {
		t.Fatalf("%d events, want 1 (debounced)", len(w.notes))
	}
	for i := range 5 { // after the debounce, a new window over the threshold
		w.Record(tok.ID, auth.CodeRateLimited, at.Add(11*time.Minute+time.Duration(i)*time.Second))
	}
	if len(w.notes) != 2 {
		t.Fatalf("%d events after the debounce, want 2", len(w.notes))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	ev := <-pub.ch
	cancel()
	wg.Wait()
	if ev.Type != TypeTokenRateLimited || ev.ProjectID != 42 || ev.Data.RateLimited.Refused != 5 ||
		!ev.Data.RateLimited.Since.Equal(at) || ev.DedupKey == "" {
		t.Errorf("event %+v, rate_limited %+v", ev, ev.Data.RateLimited)
	}
}

func TestRateLimitWatchSweeps(t *testing.T) {
	w, _ := NewRateLimitWatch(RateLimitWatchOptions{Tokens: tokenMap{}, Publisher: &fakePublisher{}, Threshold: 1000})
	at := time.Unix(1_800_000_000, 0)
	for _, id := range []string{"tsw_a", "tsw_b"} {
		w.Record(id, auth.CodeRateLimited, at)
	}
	w.sweep(at.Add(2 * time.Minute))
	for i := range w.shards {
		if n := len(w.shards[i].tokens); n != 0 {
			t.Errorf("shard %d keeps %d idle counts", i, n)
		}
	}
}

func TestRateLimitRecordDoesNotAllocate(t *testing.T) {
	w, _ := NewRateLimitWatch(RateLimitWatchOptions{Tokens: tokenMap{}, Publisher: &fakePublisher{}, Threshold: 1 << 30})
	at := time.Unix(1_800_000_000, 0)
	w.Record("tsw_a", auth.CodeRateLimited, at)
	if n := testing.AllocsPerRun(100, func() {
		w.Record("tsw_a", auth.CodeRateLimited, at)
		w.Record("tsw_b", auth.OK, at)
	}); n != 0 {
		t.Errorf("Record allocates %v times per call", n)
	}
}

func TestPublisherDedup(t *testing.T) {
	for name, once := range map[string]Once{
		"memory": &MemoryOnce{},
		"redis":  NewRedisOnce(startRedis(t).Client(t), newPrefix()),
	} {
		t.Run(name, func(t *testing.T) {
			q := fileQueue(t, "", FileQueueOptions{})
			reg, _ := OpenFileRegistry("")
			ep, _ := NewEndpoint(42, "https://hooks.example.com/", nil, time.Now())
			_ = reg.Put(context.Background(), ep)
			obs := newAttempts()
			pub, _ := NewPublisher(PublisherOptions{Endpoints: reg, Queue: q, Once: once, Observer: obs})
			tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
			tok.ExpiresAt = time.Now().Add(24 * time.Hour)
			for range 3 { // three replicas notice the same expiry
				if _, err := pub.Publish(context.Background(), TokenExpiring(tok, time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			if n := obs.published.Load(); n != 1 {
				t.Errorf("%d deliveries queued, want 1", n)
			}
			other, _ := storetest.NewToken(t, 7, auth.RoleOwner) // no endpoint of project 7
			if n, err := pub.Publish(context.Background(), TokenCreated(other, Actor{Kind: "system"}, time.Now())); n != 0 || err != nil {
				t.Errorf("an event of a project without endpoints: %d, %v", n, err)
			}
		})
	}
}

// TestPublishExpiring runs the sweep on the embedded store: one event per
// token coming due, none on the next sweep, and an event that cannot be
// published is claimed again at the next sweep.
func TestPublishExpiring(t *testing.T) {
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json"), WarnBefore: ExpiringWithin})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	soon, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	soon.ExpiresAt = now.Add(3 * 24 * time.Hour)
	later, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	later.ExpiresAt = now.Add(30 * 24 * time.Hour)
	never, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	for _, tok := range []*auth.Token{soon, later, never} {
		if err := st.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}

	failing := &failingPublisher{}
	if n, err := PublishExpiring(ctx, st, failing, now); err == nil || n != 0 {
		t.Fatalf("PublishExpiring with a failing publisher = %d, %v; want 0 and an error", n, err)
	}
	pub := &fakePublisher{ch: make(chan Event, 10)}
	n, err := PublishExpiring(ctx, st, pub, now)
	if err != nil || n != 1 {
		t.Fatalf("PublishExpiring = %d, %v", n, err)
	}
	if ev := <-pub.ch; ev.Type != TypeTokenExpiring || ev.Data.Token.ID != soon.ID {
		t.Errorf("event %s of %s", ev.Type, ev.Data.Token.ID)
	}
	if n, err := PublishExpiring(ctx, st, pub, now); err != nil || n != 0 {
		t.Fatalf("second PublishExpiring = %d, %v; want 0, nil", n, err)
	}
}

// failingPublisher fails every Publish.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, Event) (int, error) {
	return 0, errors.New("queue down")
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Published(TypeTokenLeaked, 2)
	m.Attempted(&Delivery{State: StateRetrying}, Attempt{Duration: time.Millisecond})
	if got := testutil.ToFloat64(m.published.WithLabelValues(TypeTokenLeaked)); got != 2 {
		t.Errorf("queued = %v", got)
	}
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("retrying")); got != 1 {
		t.Errorf("attempts = %v", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}
