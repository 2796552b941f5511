package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// State is where a delivery stands.
type State string

// Delivery states.
const (
	// StatePending: queued, due now (or being attempted).
	StatePending State = "pending"
	// StateRetrying: an attempt failed; the next is at NextAttempt.
	StateRetrying State = "retrying"
	// StateDelivered: the endpoint answered 2xx.
	StateDelivered State = "delivered"
	// StateDead: MaxAttempts attempts failed; Replay queues it again.
	StateDead State = "dead"
	// StateCanceled: the endpoint was deleted or disabled before the
	// delivery's turn.
	StateCanceled State = "canceled"
)

// Terminal reports whether no attempt follows in state s.
func (s State) Terminal() bool {
	return s == StateDelivered || s == StateDead || s == StateCanceled
}

// MaxRecent is how many of its latest attempts a delivery keeps.
const MaxRecent = 5

// Errors of queues.
var (
	// ErrLeaseLost means another consumer took a delivery over after its
	// visibility timeout: the outcome of this attempt was not recorded.
	ErrLeaseLost = errors.New("webhook: delivery lease lost to another consumer")
	// ErrInFlight means a delivery is queued already: it cannot be
	// replayed.
	ErrInFlight = errors.New("webhook: delivery is queued already")
	// ErrQueueFull means an endpoint has the most undelivered deliveries
	// allowed: new ones for it are dropped until some end.
	ErrQueueFull = errors.New("webhook: the endpoint's queue is full")
	// ErrProjectQueueFull means a project has its share of undelivered
	// deliveries on an endpoint that receives several projects' events
	// (the operator's): new ones of that project for it are dropped until
	// some end, while other projects' are still queued.
	ErrProjectQueueFull = errors.New("webhook: the project's share of the endpoint's queue is full")
)

// DefaultMaxPending bounds the undelivered (pending or retrying)
// deliveries of one endpoint when a queue's MaxPending is zero.
const DefaultMaxPending = 1000

// DefaultMaxPendingPerProject bounds one project's undelivered deliveries
// on a shared endpoint when a queue's MaxPendingPerProject is zero.
const DefaultMaxPendingPerProject = 100

// Reasons a delivery is dropped rather than queued.
const (
	// DropQueueFull: its endpoint had MaxPending undelivered deliveries.
	DropQueueFull = "queue_full"
	// DropProjectQueueFull: its endpoint receives several projects'
	// events and its project had MaxPendingPerProject of them undelivered.
	DropProjectQueueFull = "project_queue_full"
)

// DroppedError is the error of an Enqueue that dropped some deliveries
// because their endpoint's queue, or their project's share of it, was
// full; the others were queued. It wraps ErrQueueFull, and
// ErrProjectQueueFull when a project's share was the reason of a drop.
type DroppedError struct {
	Dropped []*Delivery
	// ProjectFull holds the ids of the deliveries of Dropped that were
	// dropped for their project's share (DropProjectQueueFull); the
	// others were dropped as their endpoint's queue was full.
	ProjectFull map[string]bool
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("webhook: %d deliveries dropped: their endpoint's queue (for %d, their project's share of it) is full",
		len(e.Dropped), len(e.ProjectFull))
}

// Reason is why d, one of e.Dropped, was dropped: DropQueueFull or
// DropProjectQueueFull.
func (e *DroppedError) Reason(d *Delivery) string {
	if e.ProjectFull[d.ID] {
		return DropProjectQueueFull
	}
	return DropQueueFull
}

// Unwrap makes errors.Is(err, ErrQueueFull) hold, and
// errors.Is(err, ErrProjectQueueFull) when a project's share was full.
func (e *DroppedError) Unwrap() []error {
	if len(e.ProjectFull) > 0 {
		return []error{ErrQueueFull, ErrProjectQueueFull}
	}
	return []error{ErrQueueFull}
}

// add records that d was dropped for reason in e, made when nil.
func (e *DroppedError) add(d *Delivery, reason string) *DroppedError {
	if e == nil {
		e = &DroppedError{}
	}
	e.Dropped = append(e.Dropped, d)
	if reason == DropProjectQueueFull {
		if e.ProjectFull == nil {
			e.ProjectFull = map[string]bool{}
		}
		e.ProjectFull[d.ID] = true
	}
	return e
}

// FullError is the error of a Replay refused because the delivery's
// endpoint's queue, or its project's share of it, is full. It wraps
// ErrQueueFull, and ErrProjectQueueFull when Project.
type FullError struct {
	// Pending is how many undelivered deliveries there are (of the
	// project, when Project) and Max the bound they reach.
	Pending, Max int
	// Project: the project's share of a shared endpoint's queue is full.
	Project bool
}

func (e *FullError) Error() string {
	if e.Project {
		return fmt.Sprintf("webhook: the project has %d undelivered deliveries to the endpoint, its share (%d)", e.Pending, e.Max)
	}
	return fmt.Sprintf("webhook: the endpoint has %d undelivered deliveries, the most allowed (%d)", e.Pending, e.Max)
}

// Unwrap makes errors.Is(err, ErrQueueFull) hold, and
// errors.Is(err, ErrProjectQueueFull) when e.Project.
func (e *FullError) Unwrap() []error {
	if e.Project {
		return []error{ErrQueueFull, ErrProjectQueueFull}
	}
	return []error{ErrQueueFull}
}

// QueueStats is where an endpoint's queue stands.
type QueueStats struct {
	// Pending counts its undelivered deliveries: pending or retrying.
	Pending int
	// MaxPending is the queue's bound: at Pending ≥ MaxPending new
	// deliveries for the endpoint are dropped.
	MaxPending int
	// Dropped counts the deliveries dropped because the queue was full
	// (in Redis, since Retention before the latest drop; in the embedded
	// queue, since the process started), the latest at LastDropped.
	Dropped     int64
	LastDropped time.Time
	// MaxPendingPerProject bounds one project's undelivered deliveries
	// on an endpoint that receives several projects' events (the
	// operator's); DroppedProject counts those of Dropped that were
	// dropped for it.
	MaxPendingPerProject int
	DroppedProject       int64
}

// Full reports whether new deliveries for the endpoint are dropped.
func (s QueueStats) Full() bool { return s.Pending >= s.MaxPending }

// Delivery is one event's message to one endpoint, and its history.
type Delivery struct {
	ID         string `json:"id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EndpointID string `json:"endpoint_id"`
	ProjectID  int64  `json:"project_id"`
	// Shared marks a delivery to an endpoint that receives several
	// projects' events (the operator's): besides the endpoint's bound,
	// the undelivered deliveries of its project there are bounded, so
	// that one project cannot fill the queue that others share.
	Shared    bool            `json:"shared,omitempty"`
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
	State     State           `json:"state"`
	// Attempts counts the attempts since the delivery was queued or last
	// replayed.
	Attempts int `json:"attempts"`
	// NextAttempt is when the next attempt is due (StateRetrying).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Recent are the latest attempts, oldest first, at most MaxRecent.
	Recent []Attempt `json:"recent,omitempty"`

	// lease identifies the consumer's hold on the delivery in its queue.
	lease string
}

// Attempt is one try of a delivery.
type Attempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	// Status is the endpoint's HTTP status (0 when none came).
	Status int `json:"status,omitempty"`
	// Error says why the attempt failed, when it did.
	Error    string `json:"error,omitempty"`
	Consumer string `json:"consumer,omitempty"`

	// detail is Error as the operator's log gets it, when it says more.
	detail string
}

// record appends a to d's recent attempts, dropping the oldest beyond
// MaxRecent.
func (d *Delivery) record(a Attempt) {
	d.Attempts++
	d.Recent = append(d.Recent, a)
	if n := len(d.Recent) - MaxRecent; n > 0 {
		d.Recent = append([]Attempt(nil), d.Recent[n:]...)
	}
}

// Queue holds deliveries until they are delivered, dead or canceled.
// Implementations are safe for concurrent use.
type Queue interface {
	// Enqueue stores new deliveries (state pending), due now, except
	// those whose endpoint has MaxPending undelivered deliveries already,
	// and the Shared ones whose project has MaxPendingPerProject of them
	// on that endpoint: these are dropped, and the error is a
	// *DroppedError naming them.
	Enqueue(ctx context.Context, ds ...*Delivery) error
	// Lease waits up to wait for due deliveries and hands up to n of them
	// to consumer, each until the queue's visibility timeout: a delivery
	// not completed by then is handed to another consumer. It may return
	// none.
	Lease(ctx context.Context, consumer string, n int, wait time.Duration) ([]*Delivery, error)
	// Complete records the outcome of a leased delivery, as d now says:
	// StateDelivered, StateDead or StateCanceled end it, StateRetrying
	// queues it again at d.NextAttempt. It returns ErrLeaseLost when the
	// lease had expired and another consumer took the delivery over.
	Complete(ctx context.Context, d *Delivery) error
	// Get returns the delivery of id (wrapping ErrNotFound when there is
	// none, or it ended longer ago than the queue keeps deliveries).
	Get(ctx context.Context, id string) (*Delivery, error)
	// List returns an endpoint's latest deliveries, newest first.
	List(ctx context.Context, endpointID string, limit int) ([]*Delivery, error)
	// Replay queues a delivery that is not queued (delivered, dead,
	// canceled, or waiting for a retry) to be attempted now, with its
	// attempt count reset and its webhook-id kept. It returns ErrInFlight
	// for a pending one. A delivery that had ended counts against the
	// bounds again: when its endpoint's queue (or its project's share of
	// a shared endpoint's) is full, it is not queued and the error is a
	// *FullError.
	Replay(ctx context.Context, id string) (*Delivery, error)
	// Stats returns where an endpoint's queue stands.
	Stats(ctx context.Context, endpointID string) (QueueStats, error)
}

// newDelivery is the pending delivery of ev's body to e.
func newDelivery(ev *Event, body []byte, e *Endpoint, now time.Time) *Delivery {
	return &Delivery{
		ID: "dlv_" + randomID(24), EventID: ev.ID, EventType: ev.Type, EndpointID: e.ID,
		ProjectID: ev.ProjectID, Shared: e.Operator(), Payload: body, CreatedAt: now.UTC(), State: StatePending,
	}
}
