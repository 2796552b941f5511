package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// Getter is the part of a Store the Validator reads through.
type Getter interface {
	Get(ctx context.Context, id string) (*Token, error)
}

// ValidatorOptions configure a Validator. Zero fields take the defaults
// given in each comment.
type ValidatorOptions struct {
	// Store is where records are read on a cache miss. Required.
	Store Getter
	// TTL bounds how long a record is served from the cache without being
	// read again: the bound on staleness even if every change announcement
	// were lost. Default 10s.
	TTL time.Duration
	// NegativeTTL is how long an unknown id is remembered. Default 2s.
	NegativeTTL time.Duration
	// StaleIfError is how long past TTL a record may still be served while
	// the store cannot be reached. Zero disables it.
	StaleIfError time.Duration
	// RememberFor is how long a record stays in the cache after it was
	// read, past TTL, for Peek alone (never served by Lookup), unless the
	// cache needs the room or a change drops it. Default 1h; it is at
	// least TTL + StaleIfError.
	RememberFor time.Duration
	// MaxEntries bounds the cache. Default 100 000.
	MaxEntries int64
	// StoreTimeout bounds each store read. Default 100ms.
	StoreTimeout time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Observer is told of cache and store outcomes; nil ignores them.
	Observer Observer
}

// Observer receives the Validator's events, for metrics. Implementations
// must be cheap and safe for concurrent use.
type Observer interface {
	// CacheResult is called once per lookup.
	CacheResult(r CacheResult)
	// StoreRead is called after each store read, with its duration and
	// error (nil, ErrNotFound-wrapping or another).
	StoreRead(d time.Duration, err error)
	// Invalidated is called for each change announcement applied; lag is
	// the time since it was published, or zero when unknown.
	Invalidated(kind EventKind, lag time.Duration)
}

// EvictionObserver is an optional interface of an Observer: CacheEvicted is
// called for each record the cache drops on its own, to make room or
// because its TTL passed (not for invalidations).
type EvictionObserver interface {
	CacheEvicted()
}

// CacheResult says how a lookup was answered.
type CacheResult uint8

// Cache results.
const (
	CacheHit CacheResult = iota
	CacheNegativeHit
	CacheMiss
	// CacheStale: the record was past its TTL and the store could not be
	// read, so the stale record was served (within StaleIfError).
	CacheStale
)

// String returns a metric label for r.
func (r CacheResult) String() string {
	return [...]string{"hit", "negative_hit", "miss", "stale"}[r]
}

// Validator looks tokens up through a local cache in front of a store.
//
// The cache (ristretto) holds every record read, tombstones and inactive
// tokens included, so refusals keep working during a store outage. Unknown
// ids are cached for NegativeTTL. Concurrent misses on one id share a single
// store read. Change announcements (HandleEvent) drop entries; a record read
// from the store before an announcement is never cached after it.
//
// A Validator is safe for concurrent use.
type Validator struct {
	store    Getter
	cache    *ristretto.Cache[string, *entry]
	flight   singleflight.Group
	ttl      time.Duration
	negTTL   time.Duration
	stale    time.Duration
	remember time.Duration
	timeout  time.Duration
	log      *slog.Logger
	observer Observer

	// gen is the cache generation; entries of older generations are
	// ignored. InvalidateAll bumps it, since ristretto's Clear is not safe
	// to call while the cache is in use.
	gen atomic.Uint64
	// seq counts invalidations. A loader that read the store caches its
	// result only if seq did not move meanwhile; mu orders that check and
	// the Set against an invalidation's bump and Del.
	seq atomic.Uint64
	mu  sync.RWMutex
}

type entry struct {
	tok     *Token // nil: the id is unknown
	fetched time.Time
	gen     uint64
}

// NewValidator returns a Validator. Close it to stop the cache's goroutines.
func NewValidator(opts ValidatorOptions) (*Validator, error) {
	if opts.Store == nil {
		return nil, errors.New("auth: ValidatorOptions.Store is required")
	}
	v := &Validator{
		store:    opts.Store,
		ttl:      orDefault(opts.TTL, 10*time.Second),
		negTTL:   orDefault(opts.NegativeTTL, 2*time.Second),
		stale:    max(opts.StaleIfError, 0),
		remember: orDefault(opts.RememberFor, time.Hour),
		timeout:  orDefault(opts.StoreTimeout, 100*time.Millisecond),
		log:      opts.Logger,
		observer: opts.Observer,
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.observer == nil {
		v.observer = nopObserver{}
	}
	v.remember = max(v.remember, v.ttl+v.stale)
	maxEntries := opts.MaxEntries
	if maxEntries <= 0 {
		maxEntries = 100_000
	}
	cfg := &ristretto.Config[string, *entry]{
		NumCounters:        maxEntries * 10,
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
	}
	if eo, ok := v.observer.(EvictionObserver); ok {
		cfg.OnEvict = func(*ristretto.Item[*entry]) { eo.CacheEvicted() }
	}
	cache, err := ristretto.NewCache(cfg)
	if err != nil {
		return nil, fmt.Errorf("auth: token cache: %w", err)
	}
	v.cache = cache
	return v, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close releases the cache.
func (v *Validator) Close() { v.cache.Close() }

// Lookup returns the record of id as of at most TTL ago. It returns
// ErrNotFound for an unknown id and an error wrapping ErrUnavailable when the
// store cannot answer and no usable cached record exists.
func (v *Validator) Lookup(ctx context.Context, id string, now time.Time) (*Token, CacheResult, error) {
	// Invalidations made before this lookup started must be seen by it,
	// including when it joins a store read already in flight (see load).
	seq := v.seq.Load()
	e, ok := v.cache.Get(id)
	if ok && e.gen == v.gen.Load() {
		age := now.Sub(e.fetched)
		if e.tok == nil {
			if age < v.negTTL {
				v.observer.CacheResult(CacheNegativeHit)
				return nil, CacheNegativeHit, ErrNotFound
			}
		} else if age < v.ttl {
			v.observer.CacheResult(CacheHit)
			return e.tok, CacheHit, nil
		}
	} else {
		e = nil
	}
	tok, err := v.load(ctx, id, seq)
	if err != nil && errors.Is(err, ErrUnavailable) && e != nil && e.tok != nil &&
		now.Sub(e.fetched) < v.ttl+v.stale && v.stillCached(id, e) {
		v.observer.CacheResult(CacheStale)
		return e.tok, CacheStale, nil
	}
	v.observer.CacheResult(CacheMiss)
	return tok, CacheMiss, err
}

// Peek returns the cached record of id, however old, without reading the
// store: nil when none is cached (or only the id's absence is). The record
// may be stale, even of a cache generation a resync dropped; a change
// announced for id removes it. It is a hint — that a credential matched a
// token not long ago — never an answer: decide with Lookup.
func (v *Validator) Peek(id string) *Token {
	if e, ok := v.cache.Get(id); ok {
		return e.tok
	}
	return nil
}

// stillCached reports whether e is still the cached entry of id, i.e. no
// announcement dropped it while the store was being tried: a record that
// was invalidated must not be served stale.
func (v *Validator) stillCached(id string, e *entry) bool {
	cur, ok := v.cache.Get(id)
	return ok && cur == e && cur.gen == v.gen.Load()
}

// load reads id from the store, once for all concurrent callers, and caches
// the outcome unless an invalidation happened meanwhile.
//
// A lookup that started at invalidation count after does not take the
// outcome of a shared read that began before it: that read may predate a
// change whose invalidation the lookup started after. It reads again, once:
// the new read begins after the lookup started.
func (v *Validator) load(ctx context.Context, id string, after uint64) (*Token, error) {
	tok, seq, err := v.sharedLoad(ctx, id)
	if seq < after && (err == nil || errors.Is(err, ErrNotFound)) {
		v.flight.Forget(id)
		tok, _, err = v.sharedLoad(ctx, id)
	}
	return tok, err
}

// sharedRead is the outcome of a store read shared by concurrent lookups.
type sharedRead struct {
	tok *Token
	seq uint64 // the invalidation count when the read began
}

// sharedLoad reads id from the store, once for all concurrent callers; seq
// is the invalidation count when the read began.
func (v *Validator) sharedLoad(ctx context.Context, id string) (_ *Token, seq uint64, _ error) {
	ch := v.flight.DoChan(id, func() (any, error) {
		// The read is shared, so one caller's cancellation must not fail
		// the others: bound it by the store timeout alone.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.timeout)
		defer cancel()
		seq := v.seq.Load()
		gen := v.gen.Load()
		start := time.Now()
		tok, err := v.store.Get(rctx, id)
		v.observer.StoreRead(time.Since(start), err)
		switch {
		case err == nil:
			v.put(id, &entry{tok: tok, fetched: start, gen: gen}, seq, v.remember)
		case errors.Is(err, ErrNotFound):
			v.put(id, &entry{fetched: start, gen: gen}, seq, v.negTTL)
		case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable):
			err = fmt.Errorf("%w: read timed out after %v: %w", ErrUnavailable, v.timeout, err)
		}
		return sharedRead{tok: tok, seq: seq}, err
	})
	select {
	case r := <-ch:
		read := r.Val.(sharedRead)
		if r.Err != nil {
			return nil, read.seq, r.Err
		}
		return read.tok, read.seq, nil
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func (v *Validator) put(id string, e *entry, seq uint64, ttl time.Duration) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.seq.Load() != seq {
		return // an invalidation raced with the read: do not cache it
	}
	v.cache.SetWithTTL(id, e, 1, ttl)
}

// Invalidate drops the cached record of id, and makes any store read in
// flight not cache its result. No lookup that starts after it returns is
// answered with the dropped record.
func (v *Validator) Invalidate(id string) {
	v.mu.Lock()
	v.seq.Add(1)
	v.cache.Del(id)
	v.mu.Unlock()
	// The cache applies writes asynchronously, in order: a write made just
	// before the Del may still be queued, and would show the dropped record
	// again until the Del queued behind it is applied. Wait for both.
	v.cache.Wait()
}

// InvalidateAll drops every cached record.
func (v *Validator) InvalidateAll() {
	v.mu.Lock()
	v.seq.Add(1)
	v.gen.Add(1)
	v.mu.Unlock()
}

// HandleEvent applies a store announcement (see Store.Watch).
func (v *Validator) HandleEvent(ev Event) {
	switch ev.Kind {
	case EventChanged:
		v.Invalidate(ev.ID)
		var lag time.Duration
		if !ev.At.IsZero() {
			lag = max(time.Since(ev.At), 0)
		}
		v.observer.Invalidated(ev.Kind, lag)
	case EventResync:
		v.InvalidateAll()
		v.observer.Invalidated(ev.Kind, 0)
	case EventDisconnected:
		v.log.Warn("token change announcements interrupted; cached tokens expire within the cache TTL",
			slog.Any("err", ev.Err))
		v.observer.Invalidated(ev.Kind, 0)
	}
}

// Wait blocks until cache writes made so far are visible; for tests.
func (v *Validator) Wait() { v.cache.Wait() }

type nopObserver struct{}

func (nopObserver) CacheResult(CacheResult)              {}
func (nopObserver) StoreRead(time.Duration, error)       {}
func (nopObserver) Invalidated(EventKind, time.Duration) {}
