package webhookapi

import (
	"context"
	"testing"
	"time"
)

func TestTestLimiter(t *testing.T) {
	var l testLimiter
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := range testBurst {
		if _, ok := l.allow("ep_a", t0); !ok {
			t.Fatalf("test %d refused within the burst", i+1)
		}
	}
	wait, ok := l.allow("ep_a", t0)
	if ok || wait <= 0 || wait > testEvery {
		t.Fatalf("past the burst: wait %v, ok %v", wait, ok)
	}
	if _, ok := l.allow("ep_b", t0); !ok {
		t.Error("another endpoint is limited too")
	}
	if _, ok := l.allow("ep_a", t0.Add(testEvery)); !ok {
		t.Error("refused after the wait")
	}
	if _, ok := l.allow("ep_a", t0.Add(testEvery)); ok {
		t.Error("a refused test was counted as waiting, or one wait bought two")
	}
}

// An endpoint's test messages are bounded: each is a stored delivery,
// so an unbounded run of them would fill the queue.
func TestTestMessagesAreLimited(t *testing.T) {
	b := backends(t)[0]
	f := newFixture(t, b, fixtureOptions{noDisp: true})
	c := client(f.admin, adminKey, 42)
	ctx := context.Background()
	ep, err := c.Create(ctx, CreateRequest{URL: "https://hooks.example.net/"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range testBurst {
		if _, err := c.Test(ctx, ep.ID); err != nil {
			t.Fatalf("test %d: %v", i+1, err)
		}
	}
	if _, err := c.Test(ctx, ep.ID); apiCode(err) != "rate_limited" {
		t.Fatalf("test %d: %v, want rate_limited", testBurst+1, err)
	}
	other, _ := c.Create(ctx, CreateRequest{URL: "https://hooks.example.net/other"})
	if _, err := c.Test(ctx, other.ID); err != nil {
		t.Errorf("another endpoint's test: %v", err)
	}
}
