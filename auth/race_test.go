package auth_test

// The revocation race, against a real Redis: tokens are looked up
// continuously while they are revoked one by one, and no lookup that starts
// once a revocation has taken effect on this replica may return the live
// record.
//
// (An external test package: redisstore imports auth.)

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// raceWait bounds every wait of the race test for an outcome; it only
// decides how long a broken test hangs.
const raceWait = 30 * time.Second

// TestRevocationRace checks the Validator's guarantee with the real
// redisstore, for both ways a revocation reaches a replica:
//
//   - revoked by this replica (even tokens): Store.Revoke then
//     Validator.Invalidate, as the token API does; the revocation has taken
//     effect once both returned;
//   - revoked by another replica (odd tokens): another Store on the same
//     Redis revokes, and this replica learns of it only from the
//     announcement its Watch delivers to HandleEvent; the revocation has
//     taken effect once Revoke returned and HandleEvent applied its
//     announcement.
//
// The guarantee: no Lookup that starts after the revocation took effect
// returns the live record, whether it is answered from the cache, by its
// own store read, or by joining a store read already in flight. Lookups
// that overlap the revocation may return either.
//
// Each lookup reads the token's cutoff (the instant its revocation took
// effect, 0 before) before it starts; a lookup that saw a cutoff and still
// got the live record is a violation. So the check has no timing margin
// and cannot be flaky: it fails only if the guarantee was broken.
func TestRevocationRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		// readDelay, when set, delays the delivery of store reads by a
		// random time up to it: a read can execute in Redis before a
		// revocation and reach the cache after it.
		readDelay time.Duration
	}{
		// Entries stay cached: the hit path against Invalidate's Del.
		{name: "warm", ttl: time.Hour},
		// Entries expire every few ms, so store reads keep happening while
		// tokens are revoked: the seq check and shared reads.
		{name: "churning", ttl: 3 * time.Millisecond},
		// As above, with reads that arrive late (a slow network or a
		// descheduled goroutine), widening every window.
		{name: "slow-reads", ttl: 20 * time.Millisecond, readDelay: 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runRevocationRace(t, tc.ttl, tc.readDelay)
		})
	}
}

// raceToken is one token of the race test and what happened to it.
type raceToken struct {
	id  string
	own bool // revoked by the replica under test, which then calls Invalidate

	revoked   atomic.Bool  // Revoke (and, if own, Invalidate) returned
	announced atomic.Bool  // the replica applied an announcement of the revocation
	cutoff    atomic.Int64 // ns since the test's base + 1 when the revocation took effect; 0 before
	live      atomic.Int64 // lookups that returned the live record
	after     atomic.Int64 // lookups that started after cutoff
}

// raceRun is the shared state of one race run.
type raceRun struct {
	base    time.Time
	toks    []*raceToken
	cut     atomic.Int64
	allCut  chan struct{}
	mu      sync.Mutex
	badLogs []string
	bad     atomic.Int64
	errs    atomic.Int64
	results [4]atomic.Int64 // by auth.CacheResult
}

// setCutoff records that rt's revocation took effect now, once.
func (r *raceRun) setCutoff(rt *raceToken) {
	if rt.cutoff.CompareAndSwap(0, int64(time.Since(r.base))+1) {
		if r.cut.Add(1) == int64(len(r.toks)) {
			close(r.allCut)
		}
	}
}

// delayedGetter delivers most store reads' results after a random delay
// of up to max (a quarter at once).
type delayedGetter struct {
	auth.Getter
	max time.Duration
}

func (g delayedGetter) Get(ctx context.Context, id string) (*auth.Token, error) {
	tok, err := g.Getter.Get(ctx, id)
	if d := rand.N(g.max); d > g.max/4 {
		time.Sleep(d) // the injected fault: a late reply
	}
	return tok, err
}

// MustNewRaceStore returns a redisstore on its own client of srv.
func MustNewRaceStore(t *testing.T, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, PoolSize: 32})
	t.Cleanup(func() { _ = c.Close() })
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, Timeout: raceWait})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func runRevocationRace(t *testing.T, ttl, readDelay time.Duration) {
	const (
		tokens  = 200
		lookers = 8
		// tailLookups is how many lookups run once every revocation took
		// effect: 20 per token on average.
		tailLookups = 20 * tokens
	)
	srv := redistest.Start(t)
	prefix := fmt.Sprintf("race%d:", time.Now().UnixNano())
	local := MustNewRaceStore(t, srv, prefix) // the replica under test
	other := MustNewRaceStore(t, srv, prefix) // another replica
	ctx := context.Background()

	r := &raceRun{base: time.Now(), allCut: make(chan struct{})}
	byID := make(map[string]*raceToken, tokens)
	for i := range tokens {
		tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		if err := other.Create(ctx, tok); err != nil {
			t.Fatalf("Create: %v", err)
		}
		rt := &raceToken{id: tok.ID, own: i%2 == 0}
		r.toks = append(r.toks, rt)
		byID[tok.ID] = rt
	}

	var getter auth.Getter = local
	if readDelay > 0 {
		getter = delayedGetter{local, readDelay}
	}
	v, err := auth.NewValidator(auth.ValidatorOptions{Store: getter, TTL: ttl, NegativeTTL: ttl, StoreTimeout: raceWait})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	// The replica's watcher, subscribed after the tokens were created: the
	// only announcements it hears are the revocations'.
	wctx, stopWatch := context.WithCancel(ctx)
	subscribed := make(chan struct{})
	var subOnce sync.Once
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = local.Watch(wctx, func(ev auth.Event) {
			v.HandleEvent(ev)
			switch ev.Kind {
			case auth.EventResync:
				subOnce.Do(func() { close(subscribed) })
			case auth.EventChanged:
				rt := byID[ev.ID]
				if rt == nil {
					return
				}
				rt.announced.Store(true)
				if rt.revoked.Load() {
					r.setCutoff(rt)
				}
			}
		})
	}()
	defer func() { stopWatch(); <-watchDone }()
	MustReceive(t, subscribed, "the replica subscribing to announcements")

	// Warm the cache with every live record.
	for _, rt := range r.toks {
		if tok, _, err := v.Lookup(ctx, rt.id, time.Now()); err != nil || tok.Revoked() {
			t.Fatalf("warm-up lookup of %s: %+v, %v", rt.id, tok, err)
		}
	}
	v.Wait()

	// Lookers: most lookups go to the token being revoked and its
	// neighbours, the rest anywhere.
	var current atomic.Int64
	var stop atomic.Bool
	var tail atomic.Int64
	tailDone := make(chan struct{})
	var tailOnce sync.Once
	var wg sync.WaitGroup
	defer func() { stop.Store(true); wg.Wait() }()
	for range lookers {
		wg.Go(func() {
			for !stop.Load() {
				i := rand.N(tokens)
				if cur := int(current.Load()); cur >= 0 && rand.N(4) != 0 {
					i = min(max(cur-1+rand.N(3), 0), tokens-1)
				}
				rt := r.toks[i]
				cutoff := rt.cutoff.Load() // before the lookup starts
				start := time.Now()
				tok, res, err := v.Lookup(ctx, rt.id, start)
				if err != nil {
					if r.errs.Add(1) == 1 {
						t.Errorf("lookup of %s: %v", rt.id, err)
					}
					continue
				}
				r.results[res].Add(1)
				if !tok.Revoked() {
					rt.live.Add(1)
					if cutoff != 0 {
						r.violation(rt, res, start, cutoff)
					}
				}
				if cutoff != 0 {
					rt.after.Add(1)
				}
				select {
				case <-r.allCut:
					if tail.Add(1) == tailLookups {
						tailOnce.Do(func() { close(tailDone) })
					}
				default:
				}
			}
		})
	}

	// Revoke every token, one by one.
	for i, rt := range r.toks {
		current.Store(int64(i))
		if rt.own {
			if _, err := local.Revoke(ctx, rt.id, time.Time{}); err != nil {
				t.Fatalf("Revoke %s: %v", rt.id, err)
			}
			v.Invalidate(rt.id)
			rt.revoked.Store(true)
			r.setCutoff(rt)
			continue
		}
		if _, err := other.Revoke(ctx, rt.id, time.Time{}); err != nil {
			t.Fatalf("Revoke %s: %v", rt.id, err)
		}
		rt.revoked.Store(true)
		if rt.announced.Load() {
			r.setCutoff(rt)
		}
	}
	MustReceive(t, r.allCut, "every revocation taking effect (the announcements being applied)")
	current.Store(-1) // from now on, lookups go anywhere
	MustReceive(t, tailDone, "lookups after every revocation took effect")
	stop.Store(true)
	wg.Wait()

	var live, after int64
	for _, rt := range r.toks {
		live += rt.live.Load()
		after += rt.after.Load()
		// Each token, cached live by the warm-up, was looked up after its
		// revocation took effect.
		if rt.after.Load() == 0 {
			t.Errorf("token %s (own %v) was not looked up after its revocation took effect", rt.id, rt.own)
		}
	}
	t.Logf("ttl %v, read delay up to %v: %d lookups returned the live record, %d started after the revocation took effect; "+
		"cache hit %d, miss %d",
		ttl, readDelay, live, after, r.results[auth.CacheHit].Load(), r.results[auth.CacheMiss].Load())
	if n := r.bad.Load(); n > 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Errorf("%d lookups that started after the revocation took effect returned the live record; first ones:\n%s",
			n, strings.Join(r.badLogs, "\n"))
	}
	if n := r.errs.Load(); n > 0 {
		t.Errorf("%d lookups failed", n)
	}
}

// violation records a lookup that started after rt's cutoff and returned
// the live record.
func (r *raceRun) violation(rt *raceToken, res auth.CacheResult, start time.Time, cutoff int64) {
	r.bad.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.badLogs) < 10 {
		path := "announcement (revoked by another replica)"
		if rt.own {
			path = "Revoke+Invalidate on this replica"
		}
		r.badLogs = append(r.badLogs, fmt.Sprintf("  %s via %s: lookup started %v after the cutoff, answered by cache %s",
			rt.id, path, start.Sub(r.base)-time.Duration(cutoff-1), res))
	}
}

// pausingGetter holds each read's result until the test releases it: the
// read has executed in Redis, its reply is late.
type pausingGetter struct {
	auth.Getter
	read    chan struct{} // a read executed
	release chan struct{} // deliver it
}

func (g pausingGetter) Get(ctx context.Context, id string) (*auth.Token, error) {
	tok, err := g.Getter.Get(ctx, id)
	g.read <- struct{}{}
	<-g.release
	return tok, err
}

// TestRevocationRaceLateCacheWrite pins one interleaving of the race down:
// a lookup reads the live record from Redis, the token is revoked, the
// lookup caches what it read (no invalidation has happened yet, so it may),
// and only then does this replica invalidate — the announcement arriving
// right behind the cache write. Once Invalidate has returned, no lookup may
// return the live record, even though the cache write was still in the
// cache's write buffer when the entry was dropped.
func TestRevocationRaceLateCacheWrite(t *testing.T) {
	const rounds = 300
	srv := redistest.Start(t)
	s := MustNewRaceStore(t, srv, fmt.Sprintf("late%d:", time.Now().UnixNano()))
	g := pausingGetter{Getter: s, read: make(chan struct{}), release: make(chan struct{})}
	v, err := auth.NewValidator(auth.ValidatorOptions{Store: g, TTL: time.Hour, StoreTimeout: raceWait})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()
	bad := 0
	for range rounds {
		tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		first := make(chan *auth.Token, 1)
		go func() {
			got, _, _ := v.Lookup(ctx, tok.ID, time.Now())
			first <- got
		}()
		MustReceive(t, g.read, "the lookup reading the record")
		if _, err := s.Revoke(ctx, tok.ID, time.Time{}); err != nil {
			t.Fatal(err)
		}
		g.release <- struct{}{}
		if got := <-first; got == nil || got.Revoked() {
			t.Fatalf("the first lookup returned %+v, want the live record it read", got)
		}
		v.Invalidate(tok.ID) // the revocation takes effect on this replica
		// Lookups from now on must not see the live record; a miss reads
		// the tombstone (released at once).
		for range 20 {
			done := make(chan *auth.Token, 1)
			go func() {
				got, _, err := v.Lookup(ctx, tok.ID, time.Now())
				if err != nil {
					t.Errorf("lookup after the revocation: %v", err)
				}
				done <- got
			}()
			var got *auth.Token
			select {
			case got = <-done:
			case <-g.read:
				g.release <- struct{}{}
				got = <-done
			}
			if got != nil && !got.Revoked() {
				bad++
				break
			}
		}
	}
	if bad > 0 {
		t.Errorf("in %d of %d rounds a lookup that started after Invalidate returned got the live record", bad, rounds)
	}
}

// MustReceive waits for a value on ch (or its closing), or fails the test.
func MustReceive(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(raceWait):
		t.Fatalf("%s: not within %s", what, raceWait)
	}
}
