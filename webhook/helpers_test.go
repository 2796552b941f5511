package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/internal/redistest"
)

// waitTimeout bounds every wait for a signal; it only decides how long a
// broken test hangs.
const waitTimeout = 30 * time.Second

var prefixes atomic.Int64

// newPrefix gives each test its own keys on a shared server.
func newPrefix() string {
	return fmt.Sprintf("whtest%d:%d:", time.Now().UnixNano(), prefixes.Add(1))
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// redisQueue returns a queue on srv with its own prefix.
func redisQueue(t *testing.T, c redis.UniversalClient, prefix string, opts RedisQueueOptions) *RedisQueue {
	t.Helper()
	opts.Client, opts.Prefix = c, prefix
	q, err := NewRedisQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func fileQueue(t *testing.T, path string, opts FileQueueOptions) *FileQueue {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "webhooks.queue")
	}
	opts.Path = path
	q, err := OpenFileQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// receiver is a real HTTP endpoint that verifies every message and
// counts the ones it accepted by webhook-id.
type receiver struct {
	secret string
	srv    *httptest.Server
	// fail makes it answer 503 (after verifying).
	fail atomic.Bool

	mu       sync.Mutex
	accepted map[string]int
	badSig   int
	bodies   map[string][]byte
	got      chan string // ids accepted, in order
}

func newReceiverHandler(t *testing.T) *receiver {
	t.Helper()
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{secret: secret, accepted: map[string]int{}, bodies: map[string][]byte{}, got: make(chan string, 10000)}
}

// newReceiver starts a receiver on a loopback port.
func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := newReceiverHandler(t)
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// startOn starts the receiver on addr (a port it did not listen on
// until now: the receiver was down).
func (r *receiver) startOn(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	r.srv = httptest.NewUnstartedServer(r)
	r.srv.Listener = ln
	r.srv.Start()
	t.Cleanup(r.srv.Close)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := Verify(r.secret, req.Header, body, time.Now(), 0); err != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	id := req.Header.Get(HeaderID)
	r.mu.Lock()
	r.accepted[id]++
	r.bodies[id] = body
	r.mu.Unlock()
	r.got <- id
	w.WriteHeader(http.StatusNoContent)
}

// counts returns a copy of the accepted counts and the bad signatures.
func (r *receiver) counts() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := make(map[string]int, len(r.accepted))
	for k, v := range r.accepted {
		c[k] = v
	}
	return c, r.badSig
}

// waitDistinct waits until the receiver accepted n distinct ids.
func (r *receiver) waitDistinct(t *testing.T, n int) {
	t.Helper()
	seen := map[string]bool{}
	timeout := time.After(waitTimeout)
	for len(seen) < n {
		select {
		case id := <-r.got:
			seen[id] = true
		case <-timeout:
			t.Fatalf("the receiver accepted %d distinct messages, want %d", len(seen), n)
		}
	}
}

// attempts is an Observer that passes every attempt on a channel.
type attempts struct {
	ch        chan attemptNote
	published atomic.Int64
	dropped   atomic.Int64

	mu      sync.Mutex
	reasons map[string]int64 // dropped, by reason
}

type attemptNote struct {
	delivery string
	event    string
	state    State
	attempt  Attempt
}

func newAttempts() *attempts { return &attempts{ch: make(chan attemptNote, 100000)} }

func (o *attempts) Published(_ string, n int) { o.published.Add(int64(n)) }

func (o *attempts) Dropped(reason string, n int) {
	o.dropped.Add(int64(n))
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.reasons == nil {
		o.reasons = map[string]int64{}
	}
	o.reasons[reason] += int64(n)
}

// droppedBy is how many deliveries were dropped for reason.
func (o *attempts) droppedBy(reason string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reasons[reason]
}

func (o *attempts) Attempted(d *Delivery, a Attempt) {
	o.ch <- attemptNote{delivery: d.ID, event: d.EventID, state: d.State, attempt: a}
}

// waitUntil reads attempts until done says so.
func (o *attempts) waitUntil(t *testing.T, what string, done func(attemptNote) bool) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case n := <-o.ch:
			if done(n) {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testBackoff retries quickly, so a receiver down "for a while" is down
// for a fraction of a second.
var testBackoff = ExponentialBackoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// runDispatcher runs a dispatcher until the returned stop is called (or
// the test ends); stop waits for Run to return.
func runDispatcher(t *testing.T, opts DispatcherOptions) (stop func()) {
	t.Helper()
	if opts.Client == nil {
		opts.Client = NewClient(ClientOptions{AllowPrivate: true, Timeout: 5 * time.Second})
	}
	if opts.Backoff == nil {
		opts.Backoff = testBackoff
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	d, err := NewDispatcher(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// startRedis starts a throwaway server for one test.
func startRedis(t *testing.T) *redistest.Server {
	t.Helper()
	return redistest.Start(t)
}
