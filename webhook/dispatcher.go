package webhook

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Leaser is the part of a Queue a Dispatcher uses.
type Leaser interface {
	Lease(ctx context.Context, consumer string, n int, wait time.Duration) ([]*Delivery, error)
	Complete(ctx context.Context, d *Delivery) error
}

// EndpointSource looks endpoints up; every Registry is one.
type EndpointSource interface {
	Get(ctx context.Context, id string) (*Endpoint, error)
}

// Defaults of DispatcherOptions.
const (
	DefaultMaxAttempts = 15
	DefaultConcurrency = 8
	DefaultPoll        = time.Second
	// userAgent identifies the gateway to receivers.
	userAgent = "tswgate-webhooks/1"
	// maxResponseRead bounds what is read of a response (to reuse the
	// connection); the rest is dropped.
	maxResponseRead = 64 << 10
)

// DispatcherOptions configure a Dispatcher. Queue and Endpoints are
// required.
type DispatcherOptions struct {
	Queue     Leaser
	Endpoints EndpointSource
	// Client posts to projects' endpoints; NewClient(ClientOptions{})
	// when nil (public addresses only).
	Client *http.Client
	// OperatorClient posts to the operator's endpoints (ProjectID 0);
	// Client when nil.
	OperatorClient *http.Client
	// Consumer names this dispatcher in the queue; unique per replica
	// (hostname, pid and a random part when empty).
	Consumer string
	// Concurrency bounds the attempts in flight; DefaultConcurrency when
	// zero.
	Concurrency int
	// Poll is the longest a Lease waits for work; DefaultPoll when zero.
	Poll time.Duration
	// Backoff spaces the retries; DefaultBackoff when nil.
	Backoff Backoff
	// MaxAttempts is the number of attempts after which a delivery is
	// dead; DefaultMaxAttempts when zero.
	MaxAttempts int
	// Observer is told of each attempt; nil: none.
	Observer Observer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives a line per failed attempt; nil discards them.
	Logger *slog.Logger
}

// Dispatcher delivers the deliveries of a Queue: it leases them, signs and
// posts each to its endpoint, and records the outcome. Run one per
// replica; the queue hands each delivery to one of them.
type Dispatcher struct {
	opts DispatcherOptions
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Queue == nil || opts.Endpoints == nil {
		return nil, errors.New("webhook: DispatcherOptions.Queue and Endpoints are required")
	}
	if opts.Client == nil {
		opts.Client = NewClient(ClientOptions{})
	}
	if opts.OperatorClient == nil {
		opts.OperatorClient = opts.Client
	}
	if opts.Consumer == "" {
		host, _ := os.Hostname()
		opts.Consumer = host + ":" + strconv.Itoa(os.Getpid()) + ":" + randomID(6)
	}
	opts.Concurrency = orDefault(opts.Concurrency, DefaultConcurrency)
	opts.Poll = orDefault(opts.Poll, DefaultPoll)
	opts.MaxAttempts = orDefault(opts.MaxAttempts, DefaultMaxAttempts)
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{opts: opts}, nil
}

// Run delivers until ctx is done, then waits for the attempts in flight
// (each bounded by the client's timeout) and returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	slots := make(chan struct{}, d.opts.Concurrency)
	for range d.opts.Concurrency {
		slots <- struct{}{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		n, ok := d.takeSlots(ctx, slots)
		if !ok {
			return nil
		}
		ds, err := d.opts.Queue.Lease(ctx, d.opts.Consumer, n, d.opts.Poll)
		for range n - len(ds) {
			slots <- struct{}{}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.opts.Logger.Warn("webhook: leasing deliveries failed; retrying", "err", err)
			if !pause(ctx, d.opts.Poll) {
				return nil
			}
			continue
		}
		for _, del := range ds {
			wg.Go(func() {
				defer func() { slots <- struct{}{} }()
				d.deliver(context.WithoutCancel(ctx), del)
			})
		}
	}
}

// takeSlots waits for a free slot, then takes every free one.
func (d *Dispatcher) takeSlots(ctx context.Context, slots chan struct{}) (int, bool) {
	select {
	case <-ctx.Done():
		return 0, false
	case <-slots:
	}
	n := 1
	for n < d.opts.Concurrency {
		select {
		case <-slots:
			n++
		default:
			return n, true
		}
	}
	return n, true
}

// pause waits for d or ctx, and reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deliver makes one attempt of del and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, del *Delivery) {
	ep, err := d.opts.Endpoints.Get(ctx, del.EndpointID)
	var a Attempt
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && ep.Disabled:
		del.State, del.NextAttempt = StateCanceled, time.Time{}
		a = Attempt{At: d.opts.Now(), Error: "endpoint deleted or disabled", Consumer: d.opts.Consumer}
		del.Recent = append(del.Recent, a)
	case err != nil:
		// The store's error names the gateway's own network: it goes to
		// the log, not to the delivery, which the project reads.
		d.opts.Logger.Warn("webhook: looking a delivery's endpoint up failed", "delivery", del.ID,
			"endpoint", del.EndpointID, "err", err)
		a = Attempt{At: d.opts.Now(), Error: "the endpoint could not be read: the gateway's store is unavailable", Consumer: d.opts.Consumer}
		d.settle(del, a)
	default:
		a = d.post(ctx, ep, del)
		d.settle(del, a)
	}
	if err := d.opts.Queue.Complete(ctx, del); err != nil {
		d.opts.Logger.Warn("webhook: recording a delivery attempt failed", "delivery", del.ID, "err", err)
		return
	}
	if a.Error != "" {
		d.opts.Logger.Info("webhook: delivery attempt failed", "delivery", del.ID, "endpoint", del.EndpointID,
			"attempt", del.Attempts, "state", del.State, "status", a.Status, "err", cmp.Or(a.detail, a.Error))
	}
	d.opts.Observer.Attempted(del, a)
}

// settle records attempt a on del and sets its next state.
func (d *Dispatcher) settle(del *Delivery, a Attempt) {
	del.record(a)
	switch {
	case a.Error == "":
		del.State, del.NextAttempt = StateDelivered, time.Time{}
	case del.Attempts >= d.opts.MaxAttempts:
		del.State, del.NextAttempt = StateDead, time.Time{}
	default:
		del.State, del.NextAttempt = StateRetrying, a.At.Add(d.opts.Backoff.Delay(del.Attempts))
	}
}

// post signs and sends del to ep; a 2xx answer is a success.
func (d *Dispatcher) post(ctx context.Context, ep *Endpoint, del *Delivery) Attempt {
	a := Attempt{At: d.opts.Now(), Consumer: d.opts.Consumer}
	keys, err := ep.signingKeys(a.At)
	if err != nil {
		a.Error = "endpoint secret: " + err.Error()
		return a
	}
	// An endpoint stored before the URL rules it now breaks is not posted
	// to: its host may be read as another address than was checked.
	if err := validURL(ep.URL); err != nil {
		a.Error = "endpoint " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(del.Payload))
	if err != nil {
		a.Error = "endpoint url: " + describe(err)
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	SetHeadersKeys(req.Header, keys, del.EventID, a.At, del.Payload)
	client := d.opts.Client
	if ep.Operator() {
		client = d.opts.OperatorClient
	}
	start := time.Now()
	resp, err := client.Do(req)
	a.Duration = time.Since(start)
	if err != nil {
		a.Error, a.detail = describe(err), describe(err)
		if !ep.Operator() {
			a.Error = describePublic(err)
		}
		return a
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	_ = resp.Body.Close()
	a.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = fmt.Sprintf("endpoint answered %d", resp.StatusCode)
	}
	return a
}

// describePublic says why an attempt to post to a project's endpoint
// failed, as its project may read it: nothing of the gateway's own
// network. The address a host name resolved to when it is not public (an
// internal service's) and the DNS server asked are left out; the log has
// them. Other failures come from a public address, and are told as they
// are.
func describePublic(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, ErrPrivateAddress):
		return "the endpoint's host is not at a public address: webhooks go to the internet only"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "the endpoint's host name does not resolve"
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return "resolving the endpoint's host name timed out"
	case errors.As(err, &dnsErr):
		return "the endpoint's host name could not be resolved"
	}
	return describe(err)
}

// describe is an error without the URL net/http puts in it (which may
// hold a receiver's credential in its query), redacted.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return auth.RedactSecrets(err.Error())
}
