package main

import (
	"context"
	"testing"
	"time"
)

// TestShutdownDelayKeepsServingWhileUnready checks TSWGATE_SHUTDOWN_DELAY:
// once shutdown begins /readyz answers 503 at once, yet new requests are
// still served until the delay is over.
func TestShutdownDelayKeepsServingWhileUnready(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_SHUTDOWN_DELAY=2s")
	tok := g.MustCreateToken(t, testProject, "owner", "owner")

	done := make(chan error, 1)
	go func() { done <- g.ShutdownOnce(context.Background()) }()
	MustPoll(t, 5*time.Second, "/readyz to answer 503", func() (bool, string) {
		r := g.MustGet(t, g.MetricsURL+"/readyz")
		return r.Status == 503, r.String()
	})
	// Unready, and still serving: a load balancer has time to notice.
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", tok.Token, nil))
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned during the delay: %v", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
