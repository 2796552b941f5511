package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// getterFunc adapts a function to Getter. The validator's tests control
// store timing and failures with it; the stores themselves are tested
// against the contract suite in storetest.
type getterFunc func(ctx context.Context, id string) (*Token, error)

func (f getterFunc) Get(ctx context.Context, id string) (*Token, error) { return f(ctx, id) }

// countingGetter serves records from a map and counts reads.
type countingGetter struct {
	mu    sync.Mutex
	toks  map[string]*Token
	reads atomic.Int64
	fail  atomic.Bool
}

func (g *countingGetter) Get(ctx context.Context, id string) (*Token, error) {
	g.reads.Add(1)
	if g.fail.Load() {
		return nil, fmt.Errorf("%w: test outage", ErrUnavailable)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.toks[id]; ok {
		return t, nil
	}
	return nil, ErrNotFound
}

func (g *countingGetter) set(t *Token) {
	g.mu.Lock()
	g.toks[t.ID] = t
	g.mu.Unlock()
}

func newTestValidator(t *testing.T, opts ValidatorOptions) *Validator {
	t.Helper()
	v, err := NewValidator(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func testToken(t testing.TB, h *Hasher, project int64, role Role) (*Token, string) {
	t.Helper()
	id, cred := mustCredential(t)
	tok := &Token{ID: id, ProjectID: project, Name: "test", Role: role, Status: StatusActive,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	tok.SecretHash, tok.PepperID = h.Hash(cred)
	return tok, cred
}

func TestValidatorCachesRecordsAndUnknownIDs(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	store := &countingGetter{toks: map[string]*Token{tok.ID: tok}}
	v := newTestValidator(t, ValidatorOptions{Store: store})
	now := time.Now()

	if got, res, err := v.Lookup(context.Background(), tok.ID, now); err != nil || got != tok || res != CacheMiss {
		t.Fatalf("first lookup = %v, %v, %v", got, res, err)
	}
	v.Wait()
	if got, res, err := v.Lookup(context.Background(), tok.ID, now); err != nil || got != tok || res != CacheHit {
		t.Fatalf("second lookup = %v, %v, %v", got, res, err)
	}
	unknown, _ := mustCredential(t)
	if _, _, err := v.Lookup(context.Background(), unknown, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: err = %v", err)
	}
	v.Wait()
	if _, res, err := v.Lookup(context.Background(), unknown, now); !errors.Is(err, ErrNotFound) || res != CacheNegativeHit {
		t.Fatalf("unknown id again: %v, %v", res, err)
	}
	if n := store.reads.Load(); n != 2 {
		t.Fatalf("store reads = %d, want 2", n)
	}
	// Past the TTL the record is read again.
	if _, res, _ := v.Lookup(context.Background(), tok.ID, now.Add(11*time.Second)); res != CacheMiss {
		t.Fatalf("lookup after TTL: %v, want miss", res)
	}
}

func TestValidatorOneStoreReadForConcurrentMisses(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	release := make(chan struct{})
	firstRead := make(chan struct{})
	var reads atomic.Int64
	store := getterFunc(func(ctx context.Context, id string) (*Token, error) {
		if reads.Add(1) == 1 {
			close(firstRead)
		}
		<-release
		return tok, nil
	})
	v := newTestValidator(t, ValidatorOptions{Store: store, StoreTimeout: time.Minute})
	const n = 50
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		started.Add(1)
		done.Go(func() {
			started.Done()
			got, _, err := v.Lookup(context.Background(), tok.ID, time.Now())
			if err == nil && got != tok {
				err = errors.New("wrong record")
			}
			errs <- err
		})
	}
	started.Wait()
	<-firstRead // the shared read is in progress and blocked until release
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Goroutines that arrived after the flight ended may have read again
	// (ristretto's Set is asynchronous), but never one read per caller.
	if r := reads.Load(); r >= n/2 {
		t.Fatalf("%d store reads for %d concurrent lookups", r, n)
	}
}

// TestValidatorNeverCachesAReadThatRacedAnInvalidation is the revocation race:
// a lookup reads the record, the token is revoked and invalidated, and only
// then does the lookup try to cache what it read.
func TestValidatorNeverCachesAReadThatRacedAnInvalidation(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	revoked := *tok
	revoked.RevokedAt = time.Now()

	inRead := make(chan struct{})
	release := make(chan struct{})
	var current atomic.Pointer[Token]
	current.Store(tok)
	var blockOnce sync.Once
	store := getterFunc(func(ctx context.Context, id string) (*Token, error) {
		t := current.Load()
		blockOnce.Do(func() {
			close(inRead)
			<-release
		})
		return t, nil
	})
	v := newTestValidator(t, ValidatorOptions{Store: store, StoreTimeout: time.Minute})

	result := make(chan *Token)
	go func() {
		got, _, _ := v.Lookup(context.Background(), tok.ID, time.Now())
		result <- got
	}()
	<-inRead // the lookup has read the live record
	current.Store(&revoked)
	v.HandleEvent(Event{Kind: EventChanged, ID: tok.ID})
	close(release)
	if got := <-result; got != tok {
		t.Fatalf("the in-flight lookup returned %v", got)
	}
	v.Wait()
	got, _, err := v.Lookup(context.Background(), tok.ID, time.Now())
	if err != nil || !got.Revoked() {
		t.Fatalf("after the revocation the validator returns %+v, %v: the stale read was cached", got, err)
	}
}

func TestValidatorResyncDropsEverything(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	store := &countingGetter{toks: map[string]*Token{tok.ID: tok}}
	v := newTestValidator(t, ValidatorOptions{Store: store})
	_, _, _ = v.Lookup(context.Background(), tok.ID, time.Now())
	v.Wait()
	inactive := *tok
	inactive.Status = StatusInactive
	store.set(&inactive)
	v.HandleEvent(Event{Kind: EventResync})
	got, res, err := v.Lookup(context.Background(), tok.ID, time.Now())
	if err != nil || res != CacheMiss || got.Status != StatusInactive {
		t.Fatalf("after resync: %+v, %v, %v", got, res, err)
	}
}

func TestValidatorStoreOutage(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	other, _ := testToken(t, h, 42, RoleOwner)
	store := &countingGetter{toks: map[string]*Token{tok.ID: tok, other.ID: other}}
	v := newTestValidator(t, ValidatorOptions{Store: store, TTL: 10 * time.Second, StaleIfError: time.Minute})
	now := time.Now()
	_, _, _ = v.Lookup(context.Background(), tok.ID, now)
	v.Wait()
	store.fail.Store(true)

	// Past the TTL but within the stale window, a verified record is served.
	got, res, err := v.Lookup(context.Background(), tok.ID, now.Add(30*time.Second))
	if err != nil || got != tok || res != CacheStale {
		t.Fatalf("within stale window: %v, %v, %v", got, res, err)
	}
	// Beyond it, and for a token never seen, the outage is reported as such.
	if _, _, err := v.Lookup(context.Background(), tok.ID, now.Add(2*time.Minute)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("beyond stale window: err = %v", err)
	}
	if _, _, err := v.Lookup(context.Background(), other.ID, now); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unseen token: err = %v, want ErrUnavailable", err)
	}
}

func TestValidatorStoreTimeoutIsUnavailable(t *testing.T) {
	store := getterFunc(func(ctx context.Context, id string) (*Token, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	v := newTestValidator(t, ValidatorOptions{Store: store, StoreTimeout: 5 * time.Millisecond})
	id, _ := mustCredential(t)
	if _, _, err := v.Lookup(context.Background(), id, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// A record invalidated while the store is unreachable is not served from
// the stale window: the announcement came from a replica that could reach
// the store, and it means the record changed.
func TestValidatorDoesNotServeInvalidatedRecordsStale(t *testing.T) {
	h, _ := NewHasher(testPepper)
	tok, _ := testToken(t, h, 42, RoleOwner)
	inRead := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int64
	store := getterFunc(func(ctx context.Context, id string) (*Token, error) {
		if calls.Add(1) == 1 {
			return tok, nil
		}
		close(inRead)
		<-release
		return nil, fmt.Errorf("%w: partitioned", ErrUnavailable)
	})
	v := newTestValidator(t, ValidatorOptions{Store: store, TTL: time.Second, StaleIfError: time.Hour, StoreTimeout: time.Minute})
	now := time.Now()
	if _, _, err := v.Lookup(context.Background(), tok.ID, now); err != nil {
		t.Fatal(err)
	}
	v.Wait()
	result := make(chan error)
	go func() {
		_, _, err := v.Lookup(context.Background(), tok.ID, now.Add(2*time.Second))
		result <- err
	}()
	<-inRead
	v.HandleEvent(Event{Kind: EventChanged, ID: tok.ID}) // revoked elsewhere
	close(release)
	if err := <-result; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v: an invalidated record was served stale", err)
	}
}
