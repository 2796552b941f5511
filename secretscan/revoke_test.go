package secretscan

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/limiter"
)

func newRevoker(t *testing.T, s store, opts RevokeOptions) (*RevokeHandler, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts.Options = baseOptions(t, s, rec)
	h, err := NewRevokeHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func run(t *testing.T, h *RevokeHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func revokeReq(body, from string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/tswgate/v1/credentials/revoke", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = from
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestRevokeEndpointIsNoOracle(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			h, rec := newRevoker(t, s, RevokeOptions{})
			run(t, h)
			live, liveCred := addToken(t, s)
			old, oldCred := addToken(t, s)
			if _, err := s.Revoke(context.Background(), old.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			_, unknown := storetest.NewToken(t, 42, auth.RoleOwner)
			other, _ := addToken(t, s)
			var first *httptest.ResponseRecorder
			for _, cred := range []string{liveCred, oldCred, unknown, wrongSecret(other.ID), "tsw_garbage"} {
				w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "203.0.113.7:4711"))
				if first == nil {
					first = w
				}
				if w.Code != http.StatusAccepted || w.Body.String() != first.Body.String() || !sameHeaders(w.Header(), first.Header()) {
					t.Errorf("answer for %s…: %d %v %s; the first was %d %v %s", cred[:8], w.Code, w.Header(), w.Body,
						first.Code, first.Header(), first.Body)
				}
			}
			rec.waitChecked(t, 5)
			if !revoked(t, s, live.ID) {
				t.Error("the live token is not revoked")
			}
			if revoked(t, s, other.ID) {
				t.Error("a wrong secret revoked a token")
			}
			var found bool
			for _, ev := range audit(t, s) {
				if ev.TokenID == live.ID && ev.Action == "token.revoke" {
					found = ev.ActorKind == ActorPublicRevoke && ev.Source == "203.0.113.7" && !strings.Contains(ev.Detail, "tswsk_")
				}
			}
			if !found {
				t.Errorf("no token.revoke by public_revoke in the trail: %+v", audit(t, s))
			}
			if l := rec.leaked(); len(l) != 1 || l[0].Token.ID != live.ID || l[0].ActorKind != ActorPublicRevoke {
				t.Errorf("leaks %+v", l)
			}
		})
	}
}

func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a.Get(k) != b.Get(k) {
			return false
		}
	}
	return true
}

func TestRevokeEndpointBatch(t *testing.T) {
	s := openStores(t)["file"](t)
	h, rec := newRevoker(t, s, RevokeOptions{})
	run(t, h)
	a, ca := addToken(t, s)
	b, cb := addToken(t, s)
	if w := serve(h, revokeReq(`{"credentials":["`+ca+`","`+cb+`"]}`, "192.0.2.1:1")); w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	rec.waitChecked(t, 2)
	if !revoked(t, s, a.ID) || !revoked(t, s, b.ID) {
		t.Error("a batch did not revoke both")
	}
}

func TestRevokeEndpointRateLimited(t *testing.T) {
	s := openStores(t)["file"](t)
	guard := limiter.NewAuthGuard(0.001, 3)
	h, _ := newRevoker(t, s, RevokeOptions{Limiter: guard})
	_, cred := storetest.NewToken(t, 42, auth.RoleOwner)
	body := `{"credentials":["` + cred + `","` + cred + `","` + cred + `"]}`
	if w := serve(h, revokeReq(body, "198.51.100.9:1")); w.Code != http.StatusAccepted {
		t.Fatalf("first request: %d", w.Code)
	}
	w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "198.51.100.9:2"))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), CodeRateLimited) {
		t.Errorf("past the limit: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "198.51.100.10:1")); w.Code != http.StatusAccepted {
		t.Errorf("another address: %d", w.Code)
	}
}

func TestRevokeEndpointRefusals(t *testing.T) {
	s := openStores(t)["file"](t)
	h, rec := newRevoker(t, s, RevokeOptions{MaxCredentials: 2})
	many := `{"credentials":["a","b","c"]}`
	for name, c := range map[string]struct {
		req    *http.Request
		status int
		code   string
	}{
		"get": {httptest.NewRequest(http.MethodGet, "/", nil), 405, CodeMethodNotAllowed},
		"form": {func() *http.Request {
			r := revokeReq(`{}`, "1.2.3.4:5")
			r.Header.Set("Content-Type", "text/plain")
			return r
		}(), 415, CodeUnsupportedMediaType},
		"not json":     {revokeReq(`tsw_`, "1.2.3.4:5"), 400, CodeInvalidRequest},
		"empty":        {revokeReq(`{}`, "1.2.3.4:5"), 400, CodeInvalidRequest},
		"unknown key":  {revokeReq(`{"token":"x"}`, "1.2.3.4:5"), 400, CodeInvalidRequest},
		"too many":     {revokeReq(many, "1.2.3.4:5"), 400, CodeInvalidRequest},
		"too large":    {revokeReq(`{"credential":"`+strings.Repeat("a", maxRevokeBody)+`"}`, "1.2.3.4:5"), 413, CodeBodyTooLarge},
		"two values":   {revokeReq(`{"credential":"a"} {}`, "1.2.3.4:5"), 400, CodeInvalidRequest},
		"bad encoding": {revokeReq(`{"credentials":"a"}`, "1.2.3.4:5"), 400, CodeInvalidRequest},
	} {
		t.Run(name, func(t *testing.T) {
			if w := serve(h, c.req); w.Code != c.status || !strings.Contains(w.Body.String(), c.code) {
				t.Errorf("%d %s, want %d %s", w.Code, w.Body, c.status, c.code)
			}
			if rec.refusals(c.code) == 0 {
				t.Errorf("refusal %s not counted", c.code)
			}
		})
	}
}

func TestRevokeEndpointBusy(t *testing.T) {
	s := openStores(t)["file"](t)
	h, _ := newRevoker(t, s, RevokeOptions{QueueSize: 1}) // no Run: nothing drains the queue
	_, cred := storetest.NewToken(t, 42, auth.RoleOwner)
	if w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "1.2.3.4:5")); w.Code != http.StatusAccepted {
		t.Fatalf("first: %d", w.Code)
	}
	if w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "1.2.3.4:5")); w.Code != http.StatusServiceUnavailable ||
		w.Header().Get("Retry-After") == "" {
		t.Errorf("with the queue full: %d %s", w.Code, w.Body)
	}
}

// flakyStore answers the first fails reads as a store outage.
type flakyStore struct {
	store
	mu    sync.Mutex
	fails int
}

func (s *flakyStore) Get(ctx context.Context, id string) (*auth.Token, error) {
	s.mu.Lock()
	down := s.fails > 0
	if down {
		s.fails--
	}
	s.mu.Unlock()
	if down {
		return nil, fmt.Errorf("flaky: %w", auth.ErrUnavailable)
	}
	return s.store.Get(ctx, id)
}

// A credential whose check meets a store outage is checked again when the
// store is back, not dropped: its sender was told it would be revoked.
func TestRevokeEndpointRetriesOutage(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			tok, cred := addToken(t, s)
			flaky := &flakyStore{store: s, fails: 2}
			rec := newRecorder()
			opts := RevokeOptions{Options: baseOptions(t, flaky, rec), RetryBase: time.Millisecond}
			h, err := NewRevokeHandler(opts)
			if err != nil {
				t.Fatal(err)
			}
			run(t, h)
			if w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "192.0.2.1:1")); w.Code != http.StatusAccepted {
				t.Fatalf("HTTP %d", w.Code)
			}
			if got := rec.waitChecked(t, 1); got[0] != TruePositive {
				t.Errorf("label %s, want true_positive", got[0])
			}
			if !revoked(t, s, tok.ID) {
				t.Error("the token is live after the outage")
			}
		})
	}
}

// A credential still unchecked after every retry of an outage is given
// up, and that is counted (tswgate_secret_scanning_dropped_total), not
// left to a log line: a leaked token that stays live must be alertable.
func TestRevokeEndpointCountsGivenUp(t *testing.T) {
	s := openStores(t)["file"](t)
	tok, cred := addToken(t, s)
	flaky := &flakyStore{store: s, fails: revokeAttempts}
	rec := newRecorder()
	h, err := NewRevokeHandler(RevokeOptions{Options: baseOptions(t, flaky, rec), RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, h)
	if w := serve(h, revokeReq(`{"credential":"`+cred+`"}`, "192.0.2.1:1")); w.Code != http.StatusAccepted {
		t.Fatalf("HTTP %d", w.Code)
	}
	select {
	case <-rec.dropped:
	case l := <-rec.checked:
		t.Fatalf("decided %s through an outage longer than the retries", l)
	case <-time.After(waitTimeout):
		t.Fatal("a credential given up was not counted")
	}
	if revoked(t, s, tok.ID) {
		t.Fatal("revoked through the outage")
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Dropped()
	if n := testutil.ToFloat64(m.dropped); n != 1 {
		t.Fatalf("tswgate_secret_scanning_dropped_total = %v", n)
	}
}

// A request is read one way: a key given twice, or in another case (which
// encoding/json would take for the same field, keeping the last), is
// refused as a whole, not answered "Accepted" with a credential dropped.
func TestRevokeEndpointReadsOneWay(t *testing.T) {
	s := openStores(t)["file"](t)
	h, rec := newRevoker(t, s, RevokeOptions{})
	a, ca := addToken(t, s)
	b, cb := addToken(t, s)
	for name, body := range map[string]string{
		"twice":             `{"credentials":["` + ca + `"],"credentials":["` + cb + `"]}`,
		"other case":        `{"credentials":["` + ca + `"],"Credentials":["` + cb + `"]}`,
		"singular twice":    `{"credential":"` + ca + `","credential":"` + cb + `"}`,
		"upper case only":   `{"CREDENTIAL":"` + ca + `"}`,
		"folded":            `{"credentia\u212a":"` + ca + `"}`,
		"escaped duplicate": `{"credential":"` + ca + `","credentia\u006c":"` + cb + `"}`,
		"trailing garbage":  `{"credential":"` + ca + `"} x`,
	} {
		t.Run(name, func(t *testing.T) {
			if w := serve(h, revokeReq(body, "192.0.2.7:1")); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), CodeInvalidRequest) {
				t.Errorf("%d %s, want 400 %s", w.Code, w.Body, CodeInvalidRequest)
			}
		})
	}
	// Both forms together are fine: each names its own credentials.
	run(t, h)
	if w := serve(h, revokeReq(`{"credentials":["`+ca+`"],"credential":"`+cb+`"}`, "192.0.2.7:2")); w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	rec.waitChecked(t, 2)
	if !revoked(t, s, a.ID) || !revoked(t, s, b.ID) {
		t.Error("not both revoked")
	}
}
