package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
)

// TestGuardDoesNotLimitValidRequests: requests whose tokens are good are
// never held back by their number, however many are in flight at once
// from one address (a slow decision — a Redis lease call — once let them
// pass the failure budget when each attempt was charged up front).
func TestGuardDoesNotLimitValidRequests(t *testing.T) {
	const inFlight = 40 // twice the burst below
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(up.Close)
	var arrived sync.WaitGroup
	arrived.Add(inFlight)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	slow := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		arrived.Done()
		<-all // every request is being decided at once
		return allow(ctx, req, now)
	})
	gw := newHandler(t, slow, up.URL, Options{AuthGuard: limiter.NewAuthGuard(1, 2)})
	var wg sync.WaitGroup
	statuses := make(chan int, inFlight)
	tr := &http.Transport{MaxConnsPerHost: inFlight}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for range inFlight {
		wg.Go(func() {
			resp, err := client.Get(gw.URL + "/v2/Instance")
			if err != nil {
				t.Error(err)
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a valid request among %d in flight from one address: HTTP %d", inFlight, s)
		}
	}
}
