package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// FileQueueOptions configure a FileQueue. Only Path is required.
type FileQueueOptions struct {
	// Path is the queue's journal file (created when missing).
	Path string
	// VisibilityTimeout and Retention are as for RedisQueueOptions.
	VisibilityTimeout time.Duration
	Retention         time.Duration
	// MaxPending bounds an endpoint's undelivered deliveries;
	// DefaultMaxPending when zero.
	MaxPending int
	// MaxPendingPerProject bounds one project's undelivered deliveries
	// on an endpoint that receives several projects' events (Shared);
	// DefaultMaxPendingPerProject when zero.
	MaxPendingPerProject int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// FileQueue is the embedded Queue of a single gateway process: the
// deliveries live in memory and every change is appended to a journal
// file (one JSON record per line, synced before the change is made), which
// is compacted when it holds twice as many lines as live records. A
// process that stops loses nothing: on opening, the journal's last record
// of each delivery stands, and a delivery that was being attempted is due
// again.
type FileQueue struct {
	path       string
	visibility time.Duration
	retention  time.Duration
	maxPending int
	maxShare   int
	now        func() time.Time
	log        *slog.Logger

	mu      sync.Mutex
	f       *os.File
	lines   int
	byID    map[string]*Delivery
	active  map[string]struct{} // not ended
	pending map[string]int      // by endpoint: how many are not ended
	shares  map[string]int      // by shareKey: how many Shared are not ended
	drops   map[string]dropCount
	leases  map[string]lease
	wake    chan struct{} // closed when a delivery may have become due
	seq     uint64
}

// dropCount counts an endpoint's dropped deliveries.
type dropCount struct {
	n, project int64 // project: for the project's share
	last       time.Time
}

// shareKey names a project's share of an endpoint's queue.
func shareKey(d *Delivery) string { return d.EndpointID + " " + projectKey(d.ProjectID) }

type lease struct {
	token   string
	expires time.Time
}

var _ Queue = (*FileQueue)(nil)

// OpenFileQueue loads (or creates) the queue journaled at opts.Path.
func OpenFileQueue(opts FileQueueOptions) (*FileQueue, error) {
	if opts.Path == "" {
		return nil, errors.New("webhook: FileQueueOptions.Path is empty")
	}
	q := &FileQueue{
		path:       opts.Path,
		visibility: orDefault(opts.VisibilityTimeout, DefaultVisibilityTimeout),
		retention:  orDefault(opts.Retention, DefaultRetention),
		maxPending: orDefault(opts.MaxPending, DefaultMaxPending),
		maxShare:   orDefault(opts.MaxPendingPerProject, DefaultMaxPendingPerProject),
		now:        opts.Now, log: opts.Logger,
		byID: map[string]*Delivery{}, active: map[string]struct{}{}, pending: map[string]int{}, shares: map[string]int{},
		drops: map[string]dropCount{}, leases: map[string]lease{},
		wake: make(chan struct{}),
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if err := q.load(); err != nil {
		return nil, err
	}
	if err := q.compact(); err != nil {
		return nil, err
	}
	return q, nil
}

// load replays the journal; a torn last line (a crash mid-write) is
// skipped.
func (q *FileQueue) load() error {
	data, err := os.ReadFile(q.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook: reading the queue journal: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		d := new(Delivery)
		if err := json.Unmarshal(sc.Bytes(), d); err != nil {
			q.log.Warn("webhook: skipping an unreadable queue journal line", "path", q.path, "line", n, "err", err)
			continue
		}
		q.put(d)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("webhook: reading the queue journal %s: %w", q.path, err)
	}
	return nil
}

// put makes d the current record of its id, keeping the count of each
// endpoint's deliveries not ended (and of each project's share of a
// shared endpoint); q.mu is held.
func (q *FileQueue) put(d *Delivery) {
	if old, ok := q.byID[d.ID]; ok && !old.State.Terminal() {
		decrement(q.pending, old.EndpointID)
		if old.Shared {
			decrement(q.shares, shareKey(old))
		}
	}
	q.byID[d.ID] = d
	if d.State.Terminal() {
		delete(q.active, d.ID)
	} else {
		q.active[d.ID] = struct{}{}
		q.pending[d.EndpointID]++
		if d.Shared {
			q.shares[shareKey(d)]++
		}
	}
}

func decrement(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// ended is when d ended (its last attempt, else its creation).
func ended(d *Delivery) time.Time {
	if n := len(d.Recent); n > 0 {
		return d.Recent[n-1].At
	}
	return d.CreatedAt
}

// compact drops the deliveries ended longer than Retention ago and
// rewrites the journal with one line per delivery; q.mu is held (or the
// queue is not shared yet).
func (q *FileQueue) compact() error {
	cutoff := q.now().Add(-q.retention)
	var buf bytes.Buffer
	for id, d := range q.byID {
		if d.State.Terminal() && ended(d).Before(cutoff) {
			delete(q.byID, id)
			continue
		}
		if err := appendRecord(&buf, d); err != nil {
			return err
		}
	}
	if q.f != nil {
		_ = q.f.Close()
		q.f = nil
	}
	if err := writeFileAtomic(q.path, buf.Bytes()); err != nil {
		return err
	}
	f, err := os.OpenFile(q.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("webhook: opening the queue journal: %w", err)
	}
	q.f, q.lines = f, len(q.byID)
	return nil
}

func appendRecord(buf *bytes.Buffer, d *Delivery) error {
	rec, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("webhook: encoding delivery %s: %w", d.ID, err)
	}
	buf.Write(rec)
	buf.WriteByte('\n')
	return nil
}

// write journals ds and then makes them current; q.mu is held.
func (q *FileQueue) write(ds ...*Delivery) error {
	if q.f == nil {
		return errors.New("webhook: the queue is closed")
	}
	var buf bytes.Buffer
	for _, d := range ds {
		if err := appendRecord(&buf, d); err != nil {
			return err
		}
	}
	if _, err := q.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("webhook: writing the queue journal: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("webhook: syncing the queue journal: %w", err)
	}
	for _, d := range ds {
		q.put(d)
	}
	q.lines += len(ds)
	if q.lines > 2*len(q.byID)+100 {
		if err := q.compact(); err != nil {
			q.log.Error("webhook: compacting the queue journal failed", "err", err)
		}
	}
	return nil
}

// signal wakes the Lease calls that wait; q.mu is held.
func (q *FileQueue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Enqueue journals the deliveries, due now, but those of an endpoint
// whose queue is full.
func (q *FileQueue) Enqueue(_ context.Context, ds ...*Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	cs, drops := q.admit(ds)
	if len(cs) > 0 {
		if err := q.write(cs...); err != nil {
			return err
		}
		q.signal()
	}
	if drops != nil {
		return drops
	}
	return nil
}

// admit splits ds into copies to queue and those dropped (counted) as
// their endpoint's queue, or their project's share of it, is full; q.mu
// is held.
func (q *FileQueue) admit(ds []*Delivery) (keep []*Delivery, drops *DroppedError) {
	adding := map[string]int{}
	now := q.now().UTC()
	for _, d := range ds {
		share := shareKey(d)
		if reason := q.full(d, adding[d.EndpointID], adding[share]); reason != "" {
			c := q.drops[d.EndpointID]
			c.n, c.last = c.n+1, now
			if reason == DropProjectQueueFull {
				c.project++
			}
			q.drops[d.EndpointID] = c
			drops = drops.add(d, reason)
			continue
		}
		adding[d.EndpointID]++
		if d.Shared {
			adding[share]++
		}
		d.State = StatePending
		keep = append(keep, clone(d))
	}
	return keep, drops
}

// full is why d, one more beside adding of its endpoint and addingShare
// of its project's share, would exceed a bound ("": it would not); q.mu
// is held.
func (q *FileQueue) full(d *Delivery, adding, addingShare int) string {
	if q.pending[d.EndpointID]+adding >= q.maxPending {
		return DropQueueFull
	}
	if d.Shared && q.shares[shareKey(d)]+addingShare >= q.maxShare {
		return DropProjectQueueFull
	}
	return ""
}

// Stats returns where an endpoint's queue stands.
func (q *FileQueue) Stats(_ context.Context, endpointID string) (QueueStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.drops[endpointID]
	return QueueStats{Pending: q.pending[endpointID], MaxPending: q.maxPending, Dropped: c.n, LastDropped: c.last,
		MaxPendingPerProject: q.maxShare, DroppedProject: c.project}, nil
}

// Lease hands out due deliveries, waiting up to wait for one.
func (q *FileQueue) Lease(ctx context.Context, consumer string, n int, wait time.Duration) ([]*Delivery, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		out, next := q.take(n)
		wake := q.wake
		q.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		if done, err := q.await(ctx, deadline.C, wake, next); done {
			return nil, err
		}
	}
}

// await waits for ctx, the deadline, a wake-up or the next due time, and
// reports whether Lease is done waiting.
func (q *FileQueue) await(ctx context.Context, deadline <-chan time.Time, wake <-chan struct{}, next time.Time) (bool, error) {
	var due <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(max(next.Sub(q.now()), time.Millisecond))
		defer t.Stop()
		due = t.C
	}
	select {
	case <-ctx.Done():
		return true, ctx.Err()
	case <-deadline:
		return true, nil
	case <-wake:
	case <-due:
	}
	return false, nil
}

// take leases up to n due deliveries, oldest due first, and returns them
// with when the next one falls due (zero: none waits); q.mu is held.
func (q *FileQueue) take(n int) ([]*Delivery, time.Time) {
	now := q.now()
	var due []*Delivery
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for id := range q.active {
		d := q.byID[id]
		at := d.NextAttempt
		if l, held := q.leases[id]; held {
			at = l.expires
		}
		if at.After(now) {
			later(at)
			continue
		}
		due = append(due, d)
	}
	slices.SortFunc(due, func(a, b *Delivery) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	if len(due) > n {
		due = due[:n]
	}
	out := make([]*Delivery, len(due))
	for i, d := range due {
		q.seq++
		l := lease{token: fmt.Sprintf("%d", q.seq), expires: now.Add(q.visibility)}
		q.leases[d.ID] = l
		out[i] = clone(d)
		out[i].State, out[i].lease = StatePending, l.token
	}
	return out, next
}

// Complete journals d's outcome if its lease is still held.
func (q *FileQueue) Complete(_ context.Context, d *Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l, held := q.leases[d.ID]; !held || l.token != d.lease {
		return fmt.Errorf("webhook: delivery %s: %w", d.ID, ErrLeaseLost)
	}
	if err := q.write(clone(d)); err != nil {
		return err
	}
	delete(q.leases, d.ID)
	if d.State == StateRetrying {
		q.signal()
	}
	return nil
}

// Get returns a copy of the delivery of id.
func (q *FileQueue) Get(_ context.Context, id string) (*Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.byID[id]
	if !ok {
		return nil, notFound("delivery", id)
	}
	return q.view(d), nil
}

// view is the copy of d that readers see: a retry that fell due is
// pending; q.mu is held.
func (q *FileQueue) view(d *Delivery) *Delivery {
	c := clone(d)
	if c.State == StateRetrying && !c.NextAttempt.After(q.now()) {
		c.State = StatePending
	}
	return c
}

// List returns copies of an endpoint's latest deliveries, newest first.
func (q *FileQueue) List(_ context.Context, endpointID string, limit int) ([]*Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []*Delivery{}
	for _, d := range q.byID {
		if d.EndpointID == endpointID {
			out = append(out, q.view(d))
		}
	}
	slices.SortFunc(out, func(a, b *Delivery) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Replay queues the delivery of id again, due now.
func (q *FileQueue) Replay(_ context.Context, id string) (*Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.byID[id]
	if !ok {
		return nil, notFound("delivery", id)
	}
	if q.view(d).State == StatePending {
		return nil, fmt.Errorf("webhook: replaying delivery %s: %w", id, ErrInFlight)
	}
	if err := q.roomFor(d); err != nil {
		return nil, fmt.Errorf("webhook: replaying delivery %s: %w", id, err)
	}
	c := clone(d)
	c.State, c.Attempts, c.NextAttempt = StatePending, 0, time.Time{}
	if err := q.write(c); err != nil {
		return nil, err
	}
	q.signal()
	return clone(c), nil
}

// roomFor returns a *FullError when d, queued again, would exceed a bound;
// one not ended is counted already. q.mu is held.
func (q *FileQueue) roomFor(d *Delivery) error {
	if !d.State.Terminal() {
		return nil
	}
	switch q.full(d, 0, 0) {
	case DropQueueFull:
		return &FullError{Pending: q.pending[d.EndpointID], Max: q.maxPending}
	case DropProjectQueueFull:
		return &FullError{Pending: q.shares[shareKey(d)], Max: q.maxShare, Project: true}
	}
	return nil
}

// Close closes the journal. Deliveries leased and not completed are due
// again when the queue is next opened.
func (q *FileQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	return err
}

// clone copies d deeply enough that neither copy's changes reach the
// other.
func clone(d *Delivery) *Delivery {
	c := *d
	c.Recent = slices.Clone(d.Recent)
	return &c
}
