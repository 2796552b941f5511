package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kind is one sort of request in the load's mix.
type kind int

// The request kinds. Their share of the load is set by mixSlots.
const (
	kindOwner          kind = iota // Owner token, GET /v2/Instance?ProjectId=42: 200
	kindAccountingRead             // Accounting token, GET /v2/Invoice: 200
	kindAccountingDeny             // Accounting token, GET /v2/Instance?ProjectId=42: 403 permission_denied
	kindUnknownToken               // a well-formed token that was never issued: 401 invalid_token
	kindWrongSecret                // the Owner token's id with another secret (valid checksum): 401 invalid_token
	kindMalformed                  // the Owner token with a mistyped character: 401 malformed_token
	numKinds
)

// mixSlots is the load's mix, 20 slots of 5%: request i is of kind
// mixSlots[i%20]. Owner 50%, Accounting allowed 20%, Accounting denied
// 10%, unknown token 10%, wrong secret 5%, malformed 5%.
var mixSlots = [20]kind{
	kindOwner, kindAccountingRead, kindOwner, kindUnknownToken, kindOwner,
	kindAccountingDeny, kindOwner, kindAccountingRead, kindOwner, kindWrongSecret,
	kindOwner, kindAccountingRead, kindOwner, kindUnknownToken, kindOwner,
	kindAccountingDeny, kindOwner, kindAccountingRead, kindOwner, kindMalformed,
}

// kindOf returns the kind of the i-th request.
func kindOf(i uint64) kind { return mixSlots[i%uint64(len(mixSlots))] }

// String describes the kind in the report.
func (k kind) String() string {
	switch k {
	case kindOwner:
		return "Owner, GET /v2/Instance?ProjectId=42"
	case kindAccountingRead:
		return "Accounting, GET /v2/Invoice"
	case kindAccountingDeny:
		return "Accounting, GET /v2/Instance?ProjectId=42 (denied)"
	case kindUnknownToken:
		return "unknown token (never issued)"
	case kindWrongSecret:
		return "Owner id, wrong secret"
	case kindMalformed:
		return "malformed token (bad checksum)"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// path is the request's path and query.
func (k kind) path() string {
	if k == kindAccountingRead {
		return "/v2/Invoice"
	}
	return "/v2/Instance?ProjectId=42"
}

// outcome is what a request got: an HTTP status and the gateway's error
// code (X-Tsw-Error-Code), or a transport error.
type outcome struct {
	Status int    // 0 for a transport error
	Code   string // the error code, or the transport error's category
}

// String renders the outcome as in the report: "200", "401 invalid_token",
// "error: connection refused".
func (o outcome) String() string {
	if o.Status == 0 {
		return "error: " + o.Code
	}
	if o.Code == "" {
		return fmt.Sprint(o.Status)
	}
	return fmt.Sprintf("%d %s", o.Status, o.Code)
}

// phase says when a request ran: in steady state, or around a Redis
// restart.
type phase int

// The phases.
const (
	phaseSteady phase = iota
	phaseRestart
	numPhases
)

// String names the phase in the report.
func (p phase) String() string {
	if p == phaseRestart {
		return "Redis restart window"
	}
	return "steady"
}

// expected reports whether a request of kind k may get o in phase p.
//
// In steady state each kind has exactly one right answer. Within a Redis
// restart window the store is first down, then back but empty until the
// tokens are recreated, so a token's request may also be refused as
// invalid_token (its record is gone) or store_unavailable (503), and an
// Owner or Accounting request may still succeed from the cache
// (TSWGATE_STALE_IF_ERROR). A malformed token is refused before any store
// lookup, so it gets malformed_token in every phase. The failing kinds
// (unknown, wrong secret, malformed) come from one address, far above its
// failed-authentication limit: they may also get auth_rate_limited, which
// the valid kinds never get (a guesser does not lock out its neighbours).
// Transport errors and other statuses are never expected.
func expected(k kind, p phase, o outcome) bool {
	var want outcome
	limited := outcome{Status: http.StatusTooManyRequests, Code: "auth_rate_limited"}
	switch k {
	case kindOwner, kindAccountingRead:
		want = outcome{Status: http.StatusOK}
	case kindAccountingDeny:
		want = outcome{Status: http.StatusForbidden, Code: "permission_denied"}
	case kindUnknownToken, kindWrongSecret:
		want = outcome{Status: http.StatusUnauthorized, Code: "invalid_token"}
		if o == limited {
			return true
		}
	case kindMalformed:
		return o == outcome{Status: http.StatusUnauthorized, Code: "malformed_token"} || o == limited
	default:
		return false
	}
	if o == want {
		return true
	}
	if p != phaseRestart {
		return false
	}
	return o == outcome{Status: http.StatusUnauthorized, Code: "invalid_token"} ||
		o == outcome{Status: http.StatusServiceUnavailable, Code: "store_unavailable"}
}

// errorCategory names a transport error briefly, for grouping.
func errorCategory(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// window is a span of time around one Redis restart in which refusals
// caused by the restart are expected.
type window struct {
	Start time.Time // just before Redis was killed
	End   time.Time // zero while still open
}

// windows is the list of restart windows, safe for concurrent use.
type windows struct {
	mu   sync.Mutex
	list []window
}

// open starts a window at t; it stays open until closeAt.
func (ws *windows) open(t time.Time) {
	ws.mu.Lock()
	ws.list = append(ws.list, window{Start: t})
	ws.mu.Unlock()
}

// closeAt sets the end of the last window.
func (ws *windows) closeAt(t time.Time) {
	ws.mu.Lock()
	if n := len(ws.list); n > 0 {
		ws.list[n-1].End = t
	}
	ws.mu.Unlock()
}

// phaseOf returns the phase of a request that ran from start to end: a
// restart window's if the two overlap (an open window extends to now).
func (ws *windows) phaseOf(start, end time.Time) phase {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for i := len(ws.list) - 1; i >= 0; i-- {
		w := ws.list[i]
		if !end.Before(w.Start) && (w.End.IsZero() || start.Before(w.End)) {
			return phaseRestart
		}
	}
	return phaseSteady
}

// tally counts outcomes by phase, kind and outcome, safe for concurrent
// use.
type tally struct {
	mu     sync.Mutex
	counts map[tallyKey]int64
}

// tallyKey is one row of the outcome table.
type tallyKey struct {
	Phase   phase
	Kind    kind
	Outcome outcome
}

func newTally() *tally { return &tally{counts: map[tallyKey]int64{}} }

// add counts one request.
func (t *tally) add(p phase, k kind, o outcome) {
	t.mu.Lock()
	t.counts[tallyKey{p, k, o}]++
	t.mu.Unlock()
}

// row is one line of the outcome table.
type row struct {
	tallyKey
	Count    int64
	Expected bool
}

// rows returns the counts sorted by phase, kind and outcome.
func (t *tally) rows() []row {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := make([]row, 0, len(t.counts))
	for k, n := range t.counts {
		rows = append(rows, row{tallyKey: k, Count: n, Expected: expected(k.Kind, k.Phase, k.Outcome)})
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Phase != b.Phase {
			return a.Phase < b.Phase
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Outcome.Status != b.Outcome.Status {
			return a.Outcome.Status < b.Outcome.Status
		}
		return a.Outcome.Code < b.Outcome.Code
	})
	return rows
}
