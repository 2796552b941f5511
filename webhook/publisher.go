package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Matcher finds the endpoints of an event; every Registry is one.
type Matcher interface {
	Match(ctx context.Context, projectID int64, typ string) ([]*Endpoint, error)
}

// Enqueuer queues deliveries; every Queue is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, ds ...*Delivery) error
}

// Observer is told what the package does, for metrics; Metrics is one.
type Observer interface {
	// Published: an event of typ was queued for deliveries endpoints.
	Published(typ string, deliveries int)
	// Attempted: an attempt of d ended (d.State is its outcome).
	Attempted(d *Delivery, a Attempt)
	// Dropped: deliveries were not queued, for reason (DropQueueFull,
	// DropProjectQueueFull).
	Dropped(reason string, deliveries int)
}

type noObserver struct{}

func (noObserver) Published(string, int)        {}
func (noObserver) Attempted(*Delivery, Attempt) {}
func (noObserver) Dropped(string, int)          {}

// PublisherOptions configure a Publisher. Endpoints and Queue are
// required.
type PublisherOptions struct {
	Endpoints Matcher
	Queue     Enqueuer
	// Once deduplicates events with a DedupKey across replicas; without
	// it they are published every time.
	Once Once
	// Observer is told of each publication; nil: none.
	Observer Observer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives a line per failed publication; nil discards them.
	Logger *slog.Logger
}

// Publisher turns events into deliveries. It is called by the replica
// that made a change, so each event is published once; events that
// several replicas may notice carry a DedupKey.
type Publisher struct {
	opts PublisherOptions
	warn dropWarner
}

// NewPublisher returns a Publisher.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if opts.Endpoints == nil || opts.Queue == nil {
		return nil, errors.New("webhook: PublisherOptions.Endpoints and Queue are required")
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
	return &Publisher{opts: opts}, nil
}

// Publish queues one delivery of ev per endpoint that wants it, and
// returns how many. An event whose DedupKey was published within its
// DedupTTL is skipped (0, nil).
func (p *Publisher) Publish(ctx context.Context, ev Event) (int, error) {
	if ev.DedupKey != "" && p.opts.Once != nil {
		first, err := p.opts.Once.First(ctx, ev.DedupKey, ev.DedupTTL)
		if err != nil || !first {
			return 0, err
		}
	}
	n, err := p.enqueue(ctx, &ev)
	if err != nil && ev.DedupKey != "" && p.opts.Once != nil {
		_ = p.opts.Once.Forget(context.WithoutCancel(ctx), ev.DedupKey)
	}
	if err != nil {
		p.opts.Logger.LogAttrs(ctx, slog.LevelError, "webhook: publishing an event failed",
			slog.String("type", ev.Type), slog.String("event_id", ev.ID), slog.String("err", err.Error()))
		return 0, err
	}
	p.opts.Observer.Published(ev.Type, n)
	return n, nil
}

func (p *Publisher) enqueue(ctx context.Context, ev *Event) (int, error) {
	eps, err := p.opts.Endpoints.Match(ctx, ev.ProjectID, ev.Type)
	if err != nil || len(eps) == 0 {
		return 0, err
	}
	if ev.ID == "" {
		ev.ID = NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = p.opts.Now()
	}
	body, err := ev.Body()
	if err != nil {
		return 0, err
	}
	now := p.opts.Now()
	ds := make([]*Delivery, len(eps))
	for i, e := range eps {
		ds[i] = newDelivery(ev, body, e, now)
	}
	err = p.opts.Queue.Enqueue(ctx, ds...)
	var de *DroppedError
	if errors.As(err, &de) && len(de.Dropped) > 0 {
		p.noteDropped(ctx, ev, de)
		return len(ds) - len(de.Dropped), nil
	}
	if err != nil {
		return 0, fmt.Errorf("webhook: queueing event %s: %w", ev.ID, err)
	}
	return len(ds), nil
}

// noteDropped counts deliveries of ev dropped as their endpoint's queue
// (or their project's share of it) was full, by reason, and warns of each
// endpoint (each project's share of it, for DropProjectQueueFull) at most
// once per dropWarnEvery.
func (p *Publisher) noteDropped(ctx context.Context, ev *Event, de *DroppedError) {
	byReason := map[string]int{}
	for _, d := range de.Dropped {
		reason := de.Reason(d)
		byReason[reason]++
		key := d.EndpointID
		if reason == DropProjectQueueFull {
			key += " " + projectKey(d.ProjectID)
		}
		if !p.warn.due(key, p.opts.Now()) {
			continue
		}
		msg := "webhook: an endpoint's queue is full: new events for it are dropped"
		if reason == DropProjectQueueFull {
			msg = "webhook: a project has its share of a shared endpoint's queue: its new events for it are dropped"
		}
		p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, msg,
			slog.String("endpoint", d.EndpointID), slog.Int64("project_id", d.ProjectID),
			slog.String("reason", reason), slog.String("type", ev.Type), slog.String("event_id", ev.ID))
	}
	for reason, n := range byReason {
		p.opts.Observer.Dropped(reason, n)
	}
}

// dropWarnEvery is the least time between two warnings of one endpoint's
// dropped deliveries.
const dropWarnEvery = time.Minute

// dropWarner spaces the warnings of dropped deliveries per endpoint. Its
// zero value is ready.
type dropWarner struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether endpoint's drop may be warned of at now, and if so
// notes it; endpoints not warned of within dropWarnEvery are forgotten.
func (w *dropWarner) due(endpoint string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.last[endpoint]; ok && now.Sub(t) < dropWarnEvery {
		return false
	}
	if w.last == nil || len(w.last) >= 1024 {
		for id, t := range w.last {
			if now.Sub(t) >= dropWarnEvery {
				delete(w.last, id)
			}
		}
		if w.last == nil {
			w.last = map[string]time.Time{}
		}
	}
	w.last[endpoint] = now
	return true
}
