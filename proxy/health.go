package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Pinger checks that the token store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Health serves /healthz (the process is alive) and /readyz (this replica
// should get traffic), each with a JSON account of what is degraded.
//
// A replica is not ready before it has subscribed to token changes (it could
// serve revoked tokens from a stale view) and once it is shutting down. A
// store outage alone does not make it unready: every replica shares the
// store, so unreadying them all would turn a partial outage (tokens verified
// within the stale window keep working) into a total one. It is reported as
// degraded instead, with the cause.
type Health struct {
	pinger  Pinger
	timeout time.Duration

	subscribed atomic.Bool
	draining   atomic.Bool

	mu        sync.Mutex
	subErr    string
	subSince  time.Time
	lastPing  time.Time
	pingError string
}

// NewHealth returns a Health. pinger may be nil (nothing to ping).
func NewHealth(pinger Pinger, timeout time.Duration) *Health {
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	return &Health{pinger: pinger, timeout: timeout}
}

// HandleEvent tracks the state of the token-change subscription.
func (h *Health) HandleEvent(ev auth.Event) {
	switch ev.Kind {
	case auth.EventResync:
		h.mu.Lock()
		h.subErr, h.subSince = "", time.Now()
		h.mu.Unlock()
		h.subscribed.Store(true)
	case auth.EventDisconnected:
		h.mu.Lock()
		if h.subErr == "" {
			h.subSince = time.Now()
		}
		h.subErr = "disconnected"
		if ev.Err != nil {
			h.subErr = "disconnected: " + ev.Err.Error()
		}
		h.mu.Unlock()
	}
}

// Drain marks the replica as shutting down: /readyz answers 503 from now on.
func (h *Health) Drain() { h.draining.Store(true) }

// Check is one line of a health report.
type Check struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Since string `json:"since,omitempty"`
}

// Report is the JSON body of /healthz and /readyz.
type Report struct {
	Status string           `json:"status"` // ok, degraded, not_ready
	Ready  bool             `json:"ready"`
	Checks map[string]Check `json:"checks"`
}

// Report checks the replica now.
func (h *Health) Report(ctx context.Context) Report {
	r := Report{Status: "ok", Ready: true, Checks: map[string]Check{}}
	h.mu.Lock()
	sub := Check{OK: h.subscribed.Load() && h.subErr == "", Error: h.subErr}
	if !h.subSince.IsZero() {
		sub.Since = h.subSince.UTC().Format(time.RFC3339)
	}
	h.mu.Unlock()
	if !h.subscribed.Load() {
		sub.Error = "not yet subscribed to token changes"
		r.Ready = false
	}
	r.Checks["subscription"] = sub
	if h.pinger != nil {
		st := Check{OK: true}
		pctx, cancel := context.WithTimeout(ctx, h.timeout)
		if err := h.pinger.Ping(pctx); err != nil {
			st = Check{Error: err.Error()}
		}
		cancel()
		r.Checks["store"] = st
	}
	if h.draining.Load() {
		r.Checks["shutdown"] = Check{Error: "shutting down"}
		r.Ready = false
	}
	for _, c := range r.Checks {
		if !c.OK && r.Status == "ok" {
			r.Status = "degraded"
		}
	}
	if !r.Ready {
		r.Status = "not_ready"
	}
	return r
}

// LiveHandler serves /healthz: 200 while the process serves HTTP at all.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReport(w, http.StatusOK, h.Report(r.Context()))
	})
}

// ReadyHandler serves /readyz: 200 when ready, 503 otherwise.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Report(r.Context())
		status := http.StatusOK
		if !rep.Ready {
			status = http.StatusServiceUnavailable
		}
		writeReport(w, status, rep)
	})
}

func writeReport(w http.ResponseWriter, status int, rep Report) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}
