package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/freeport"
)

// setup is a registry with one endpoint of project 42 at url, signed with
// the receiver's secret, and a publisher onto q.
func setup(t *testing.T, q Queue, url, secret string) (*FileRegistry, *Endpoint, *Publisher) {
	t.Helper()
	reg, _ := OpenFileRegistry("")
	ep, err := NewEndpoint(42, url, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ep.Secret = secret
	if err := reg.Put(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(PublisherOptions{Endpoints: reg, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	return reg, ep, pub
}

// publishN publishes n token.created events of project 42 and returns
// their ids.
func publishN(t *testing.T, pub *Publisher, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		ev := TokenCreated(tok, Actor{Kind: auth.ActorSystem}, time.Now())
		if k, err := pub.Publish(context.Background(), ev); err != nil || k != 1 {
			t.Fatalf("Publish = %d, %v", k, err)
		}
		ids[i] = ev.ID
	}
	return ids
}

// reservePort returns a loopback address nothing listens on, held for
// the test (internal/freeport): no other listener or connection takes it,
// and a receiver may still listen on it later.
func reservePort(t *testing.T) string {
	t.Helper()
	p, err := freeport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Release() })
	return p.Addr()
}

// checkOnce fails unless the receiver accepted exactly ids, each once.
func checkOnce(t *testing.T, r *receiver, ids []string) {
	t.Helper()
	got, bad := r.counts()
	if bad != 0 {
		t.Errorf("%d messages failed signature verification", bad)
	}
	if len(got) != len(ids) {
		t.Errorf("received %d distinct events, want %d", len(got), len(ids))
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s received %d times, want once", id, got[id])
		}
	}
}

// waitStates reads attempts until n deliveries reached state.
func waitStates(t *testing.T, obs *attempts, state State, n int) {
	t.Helper()
	seen := map[string]bool{}
	obs.waitUntil(t, "deliveries "+string(state), func(a attemptNote) bool {
		if a.state == state {
			seen[a.delivery] = true
		}
		return len(seen) == n
	})
}

func queues(t *testing.T) map[string]func(t *testing.T) Queue {
	return map[string]func(t *testing.T) Queue{
		"file": func(t *testing.T) Queue { return fileQueue(t, "", FileQueueOptions{}) },
		"redis": func(t *testing.T) Queue {
			return redisQueue(t, startRedis(t).Client(t), newPrefix(), RedisQueueOptions{})
		},
	}
}

func TestReceiverDownGetsEveryEventOnceAfter(t *testing.T) {
	for name, open := range queues(t) {
		t.Run(name, func(t *testing.T) {
			q := open(t)
			addr := reservePort(t)
			recv := newReceiverHandler(t)
			_, _, pub := setup(t, q, "http://"+addr+"/hook", recv.secret)
			const n = 50
			ids := publishN(t, pub, n)
			obs := newAttempts()
			stop := runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: mustRegistry(t, pub), Observer: obs})

			// The receiver is down (nothing listens): every delivery fails.
			waitStates(t, obs, StateRetrying, n)
			recv.startOn(t, addr)
			recv.waitDistinct(t, n)
			waitStates(t, obs, StateDelivered, n)
			stop()
			checkOnce(t, recv, ids)
		})
	}
}

// mustRegistry is the registry behind a publisher made by setup.
func mustRegistry(t *testing.T, pub *Publisher) EndpointSource {
	t.Helper()
	return pub.opts.Endpoints.(EndpointSource)
}

func TestTwoReplicasDeliverEachOnce(t *testing.T) {
	srv := startRedis(t)
	prefix := newPrefix()
	q1 := redisQueue(t, srv.Client(t), prefix, RedisQueueOptions{})
	q2 := redisQueue(t, srv.Client(t), prefix, RedisQueueOptions{})
	recv := newReceiver(t)
	reg, _, pub := setup(t, q1, recv.srv.URL, recv.secret)
	obs1, obs2 := newAttempts(), newAttempts()
	stop1 := runDispatcher(t, DispatcherOptions{Queue: q1, Endpoints: reg, Observer: obs1, Consumer: "replica-1"})
	stop2 := runDispatcher(t, DispatcherOptions{Queue: q2, Endpoints: reg, Observer: obs2, Consumer: "replica-2"})
	const n = 300
	ids := publishN(t, pub, n)
	recv.waitDistinct(t, n)
	stop1()
	stop2()
	checkOnce(t, recv, ids)
	a1, a2 := len(obs1.ch), len(obs2.ch)
	if a1+a2 != n {
		t.Errorf("replicas made %d + %d attempts for %d events, want one each", a1, a2, n)
	}
	t.Logf("replica-1 delivered %d, replica-2 %d", a1, a2)
}

func TestStalledReplicaLosesNothing(t *testing.T) {
	c := startRedis(t).Client(t)
	q := redisQueue(t, c, newPrefix(), RedisQueueOptions{VisibilityTimeout: 300 * time.Millisecond})
	recv := newReceiver(t)
	reg, _, pub := setup(t, q, recv.srv.URL, recv.secret)
	ids := publishN(t, pub, 1)
	// A replica takes the delivery and dies before attempting it.
	stalled := leaseAll(t, q, "dead-replica", 1)[0]
	obs := newAttempts()
	stop := runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs})
	recv.waitDistinct(t, 1)
	waitStates(t, obs, StateDelivered, 1)
	stop()
	checkOnce(t, recv, ids)
	stalled.State = StateDelivered
	if err := q.Complete(context.Background(), stalled); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the stalled replica's late Complete: %v, want ErrLeaseLost", err)
	}
}

func TestDeadLetterThenReplay(t *testing.T) {
	for name, open := range queues(t) {
		t.Run(name, func(t *testing.T) {
			q := open(t)
			recv := newReceiver(t)
			recv.fail.Store(true)
			reg, ep, pub := setup(t, q, recv.srv.URL, recv.secret)
			ids := publishN(t, pub, 1)
			obs := newAttempts()
			runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 3})
			waitStates(t, obs, StateDead, 1)
			list, err := q.List(context.Background(), ep.ID, 10)
			if err != nil || len(list) != 1 {
				t.Fatalf("List = %d, %v", len(list), err)
			}
			d := list[0]
			if d.State != StateDead || d.Attempts != 3 || len(d.Recent) != 3 || d.Recent[2].Status != http.StatusServiceUnavailable {
				t.Fatalf("dead letter %+v", d)
			}
			for i := 1; i < 3; i++ {
				if !d.Recent[i].At.After(d.Recent[i-1].At) {
					t.Errorf("attempt %d not after attempt %d", i+1, i)
				}
			}
			recv.fail.Store(false)
			if _, err := q.Replay(context.Background(), d.ID); err != nil {
				t.Fatal(err)
			}
			recv.waitDistinct(t, 1)
			waitStates(t, obs, StateDelivered, 1)
			if got, _ := q.Get(context.Background(), d.ID); got.State != StateDelivered || got.Attempts != 1 {
				t.Errorf("after replay: %s with %d attempts", got.State, got.Attempts)
			}
			checkOnce(t, recv, ids)
		})
	}
}

func TestRetryStatusIsVisible(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	recv := newReceiver(t)
	recv.fail.Store(true)
	reg, _, pub := setup(t, q, recv.srv.URL, recv.secret)
	publishN(t, pub, 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs,
		Backoff: ExponentialBackoff{Initial: time.Hour, Max: time.Hour}})
	var id string
	obs.waitUntil(t, "a failed attempt", func(a attemptNote) bool { id = a.delivery; return true })
	d, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	wait := d.NextAttempt.Sub(d.Recent[0].At)
	if d.State != StateRetrying || wait < 30*time.Minute || wait > time.Hour || d.Recent[0].Error == "" {
		t.Errorf("status %+v: want retrying in 30-60 min with the error", d)
	}
}

func TestForgedSignatureIsRefused(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	recv := newReceiver(t)
	forger, _ := NewSecret()
	reg, _, pub := setup(t, q, recv.srv.URL, forger) // signs with a secret the receiver does not hold
	publishN(t, pub, 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 1})
	waitStates(t, obs, StateDead, 1)
	got, bad := recv.counts()
	if len(got) != 0 || bad != 1 {
		t.Errorf("receiver accepted %d, refused %d: want the forgery refused", len(got), bad)
	}
}

func TestDeletedEndpointCancels(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	recv := newReceiver(t)
	reg, ep, pub := setup(t, q, recv.srv.URL, recv.secret)
	publishN(t, pub, 1)
	if err := reg.Delete(context.Background(), ep.ID); err != nil {
		t.Fatal(err)
	}
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs})
	waitStates(t, obs, StateCanceled, 1)
	if got, _ := recv.counts(); len(got) != 0 {
		t.Error("a deleted endpoint received a message")
	}
}

func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, err := NewClient(ClientOptions{}).Get(srv.URL)
	if !errors.Is(err, ErrPrivateAddress) {
		t.Errorf("GET %s with the public-only client: %v, want ErrPrivateAddress", srv.URL, err)
	}
	for _, a := range []string{"127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "100.64.0.1", "::1",
		"fd00::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::a00:1",
		// IPv4 embedded otherwise: IPv4-compatible (deprecated) and
		// IPv4-translated (SIIT) addresses; and the discard-only,
		// site-local and IETF protocol assignment ranges.
		"::7f00:1", "::a9fe:a9fe", "::ffff:0:7f00:1", "::ffff:0:a00:1", "100::1", "fec0::1", "2001:10::1", "2001:2::1"} {
		if Public(netip.MustParseAddr(a)) {
			t.Errorf("Public(%s) = true", a)
		}
	}
	for _, a := range []string{"1.1.1.1", "140.82.112.3", "2606:4700::1111"} {
		if !Public(netip.MustParseAddr(a)) {
			t.Errorf("Public(%s) = false", a)
		}
	}
}

func TestRedirectIsAFailure(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	target := newReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	reg, _, pub := setup(t, q, redirect.URL, target.secret)
	publishN(t, pub, 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 1})
	waitStates(t, obs, StateDead, 1)
	if got, _ := target.counts(); len(got) != 0 {
		t.Error("a redirect was followed")
	}
}

// A project reads its deliveries' attempts: a failure tells it nothing of
// the gateway's own network — not the internal address its endpoint's
// host name resolved to, nor the DNS server asked. The operator's keep
// the detail.
func TestProjectAttemptErrorNamesNoInternalAddress(t *testing.T) {
	port := reservePort(t)
	_, p, _ := net.SplitHostPort(port)
	for _, c := range []struct {
		project int64
		private bool // the error may name the address
	}{{42, false}, {0, true}} {
		q := fileQueue(t, "", FileQueueOptions{})
		reg, _ := OpenFileRegistry("")
		ep, err := NewEndpoint(c.project, "http://localhost:"+p+"/hook", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Put(context.Background(), ep); err != nil {
			t.Fatal(err)
		}
		pub, _ := NewPublisher(PublisherOptions{Endpoints: reg, Queue: q})
		tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		if _, err := pub.Publish(context.Background(), TokenCreated(tok, Actor{Kind: auth.ActorSystem}, time.Now())); err != nil {
			t.Fatal(err)
		}
		obs := newAttempts()
		public := NewClient(ClientOptions{Timeout: 5 * time.Second})
		stop := runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 1,
			Client: public, OperatorClient: public})
		var got string
		obs.waitUntil(t, "the attempt", func(a attemptNote) bool { got = a.attempt.Error; return true })
		stop()
		names := strings.Contains(got, "127.0.0.1") || strings.Contains(got, "::1")
		if names != c.private || !strings.Contains(got, "public") {
			t.Errorf("project %d: attempt error %q; naming the address: %v, want %v", c.project, got, names, c.private)
		}
	}
	dns := &url.Error{Op: "Post", URL: "https://hooks.example/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "hooks.example", Server: "10.96.0.10:53", IsNotFound: true}}}
	if got := describePublic(dns); strings.Contains(got, "10.96") || !strings.Contains(got, "does not resolve") {
		t.Errorf("describePublic(DNS error) = %q", got)
	}
	if got := describe(dns); !strings.Contains(got, "10.96") {
		t.Errorf("describe(DNS error) = %q, want the detail for the log", got)
	}
}

// failingEndpoints is an EndpointSource whose store is down, with an
// error naming the store's address.
type failingEndpoints struct{}

func (failingEndpoints) Get(context.Context, string) (*Endpoint, error) {
	return nil, errors.New("dial tcp 10.0.7.9:6379: connect: connection refused")
}

// A store failure is the gateway's: the delivery's attempt, which the
// project reads, does not carry the store's error (the log does).
func TestStoreErrorIsNotInTheAttempt(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	_, _, pub := setup(t, q, "https://hooks.example/", newReceiver(t).secret)
	publishN(t, pub, 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: failingEndpoints{}, Observer: obs, MaxAttempts: 1})
	obs.waitUntil(t, "the attempt", func(a attemptNote) bool {
		if strings.Contains(a.attempt.Error, "10.0.7.9") || a.attempt.Error == "" {
			t.Errorf("attempt error %q", a.attempt.Error)
		}
		return true
	})
}
