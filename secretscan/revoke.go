package secretscan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// AddrLimiter limits requests per client address; *limiter.AuthGuard is
// one.
type AddrLimiter interface {
	// Blocked reports whether addr may not try now, and for how long.
	Blocked(addr netip.Addr, now time.Time) (retryAfter time.Duration, blocked bool)
	// Failed charges one try to addr.
	Failed(addr netip.Addr, now time.Time)
}

// Defaults of RevokeOptions.
const (
	DefaultMaxCredentials = 100
	DefaultQueueSize      = 10000
	DefaultRetryBase      = time.Second
	// revokeAttempts bounds the checks of one credential during a store
	// outage: with DefaultRetryBase, about a minute.
	revokeAttempts = 6
	maxRevokeBody  = 64 << 10
	checkTimeout   = 10 * time.Second
)

// RevokeOptions configure NewRevokeHandler. Options' required fields are
// required.
type RevokeOptions struct {
	Options
	// Limiter charges every credential sent to its sender's address and
	// refuses an address past its limit (429 rate_limited); nil: no
	// limit. Use an AuthGuard of its own, not the gateway's.
	Limiter AddrLimiter
	// ClientAddr returns a request's client address (honouring trusted
	// proxies: proxy.ClientAddr); the peer address when nil.
	ClientAddr func(r *http.Request) netip.Addr
	// MaxCredentials bounds the credentials of one request;
	// DefaultMaxCredentials when zero.
	MaxCredentials int
	// QueueSize bounds the credentials waiting to be checked; past it
	// requests are refused (503 busy). DefaultQueueSize when zero.
	QueueSize int
	// RetryBase is the wait before checking a credential again when the
	// store could not answer (auth.ErrUnavailable), doubled at each of
	// revokeAttempts attempts; DefaultRetryBase when zero.
	RetryBase time.Duration
}

// RevokeRequest is the body of a revoke-by-value request: Credentials
// (GitHub's /credentials/revoke shape), or one Credential.
type RevokeRequest struct {
	Credentials []string `json:"credentials"`
	Credential  string   `json:"credential"`
}

// revokeAccepted is the one answer to every well-formed request within
// the limits: it tells nothing of the credentials.
var revokeAccepted = envelope{Success: true,
	Message: "Accepted. Every credential that is a live tswgate API token is revoked within seconds, and its owner told."}

// RevokeHandler is the public revoke-by-value endpoint. ServeHTTP only
// queues the credentials, so that its answer — and its time — are the
// same whether a credential is live, revoked, unknown or malformed; Run
// checks and revokes them.
type RevokeHandler struct {
	RevokeOptions
	queue chan job
}

type job struct {
	cred string
	from origin
}

// NewRevokeHandler returns the handler; start Run beside it.
func NewRevokeHandler(opts RevokeOptions) (*RevokeHandler, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.ClientAddr == nil {
		opts.ClientAddr = peerAddr
	}
	opts.MaxCredentials = orDefault(opts.MaxCredentials, DefaultMaxCredentials)
	opts.QueueSize = orDefault(opts.QueueSize, DefaultQueueSize)
	opts.RetryBase = orDefault(opts.RetryBase, DefaultRetryBase)
	return &RevokeHandler{RevokeOptions: opts, queue: make(chan job, opts.QueueSize)}, nil
}

func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (h *RevokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, h.Observer, CodeMethodNotAllowed, 0)
		return
	}
	now := h.Now()
	addr := h.ClientAddr(r)
	if h.Limiter != nil {
		if wait, blocked := h.Limiter.Blocked(addr, now); blocked {
			h.Limiter.Failed(addr, now)
			refuse(w, h.Observer, CodeRateLimited, wait)
			return
		}
	}
	creds, code := h.read(w, r)
	if code != "" {
		h.charge(addr, now, 1)
		refuse(w, h.Observer, code, 0)
		return
	}
	h.charge(addr, now, len(creds))
	if !h.enqueue(creds, addr) {
		refuse(w, h.Observer, CodeBusy, time.Second)
		return
	}
	writeJSON(w, http.StatusAccepted, revokeAccepted)
}

func (h *RevokeHandler) charge(addr netip.Addr, now time.Time, n int) {
	if h.Limiter == nil {
		return
	}
	for range n {
		h.Limiter.Failed(addr, now)
	}
}

// read decodes the request's credentials, or returns a refusal code.
func (h *RevokeHandler) read(w http.ResponseWriter, r *http.Request) ([]string, string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, CodeUnsupportedMediaType
	}
	body, code := readBody(w, r, maxRevokeBody, CodeInvalidRequest)
	if code != "" {
		return nil, code
	}
	req, err := decodeRevokeRequest(body)
	if err != nil {
		return nil, CodeInvalidRequest
	}
	creds := req.Credentials
	if req.Credential != "" {
		creds = append(creds, req.Credential)
	}
	if len(creds) == 0 || len(creds) > h.MaxCredentials {
		return nil, CodeInvalidRequest
	}
	return creds, ""
}

// decodeRevokeRequest reads body as exactly one JSON object whose
// members are "credentials" and "credential", each at most once, spelt
// exactly so (encoding/json alone would take "Credentials" or a repeated
// key for the same field and keep the last, dropping credentials the
// sender was told are revoked), and nothing after it.
func decodeRevokeRequest(body []byte) (RevokeRequest, error) {
	var req RevokeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return req, errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return req, err
		}
		key, _ := tok.(string)
		var dst any
		switch key {
		case "credentials":
			dst = &req.Credentials
		case "credential":
			dst = &req.Credential
		default:
			return req, fmt.Errorf("unknown member %q", key)
		}
		if seen[key] {
			return req, fmt.Errorf("member %q given twice", key)
		}
		seen[key] = true
		if err := dec.Decode(dst); err != nil {
			return req, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return req, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("data after the JSON object")
	}
	return req, nil
}

// enqueue queues the credentials worth a check (a failed checksum is not:
// it is public knowledge, so dropping it reveals nothing). It reports
// false when the queue is full.
func (h *RevokeHandler) enqueue(creds []string, addr netip.Addr) bool {
	from := origin{actorKind: ActorPublicRevoke, clientAddr: addr.String()}
	for _, c := range creds {
		if !auth.ValidCredential(c) {
			h.Observer.Checked(ActorPublicRevoke, FalsePositive)
			continue
		}
		select {
		case h.queue <- job{cred: c, from: from}:
		default:
			return false
		}
	}
	return true
}

// Run checks the queued credentials with Parallelism workers until ctx is
// done. Credentials still queued then are dropped (their senders were
// answered; they may send them again).
func (h *RevokeHandler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range h.Parallelism {
		wg.Go(func() { h.work(ctx) })
	}
	wg.Wait()
}

func (h *RevokeHandler) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-h.queue:
			h.process(ctx, j)
		}
	}
}

// process checks and revokes a queued credential. A store outage does
// not drop it (its sender was told it would be revoked): it is checked
// again after RetryBase, doubling, up to revokeAttempts times.
func (h *RevokeHandler) process(ctx context.Context, j job) {
	wait := h.RetryBase
	for attempt := 1; ; attempt++ {
		label, err := h.checkOnce(ctx, j)
		if err == nil {
			h.Observer.Checked(ActorPublicRevoke, label)
			return
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return
		}
		retry := errors.Is(err, auth.ErrUnavailable) && attempt < revokeAttempts
		msg := "secretscan: a credential sent for revocation could not be checked"
		if retry {
			msg += "; checking it again"
		} else {
			msg += "; given up: if it is a live token, it is not revoked"
		}
		h.Logger.Error(msg, "attempt", attempt, "err", redact(err.Error(), 1000))
		if !retry {
			h.Observer.Dropped()
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
	}
}

// checkOnce is one check of a queued credential, bounded by checkTimeout.
func (h *RevokeHandler) checkOnce(ctx context.Context, j job) (Label, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return h.checkOne(cctx, j.cred, j.from)
}
