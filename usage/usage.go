// Package usage counts each token's requests in memory, per minute and
// outcome, and flushes the counts to the token store in batches, so that
// the store is written once per flush rather than once per request.
//
// Record is called on the request path: it takes a shard lock, finds the
// token's bucket for the current minute and adds one; in the steady state
// it allocates nothing. Flush (every Options.Interval from Run, and on
// Close) hands every bucket to the Sink in one call and starts afresh;
// counts a failed flush could not write are kept for the next one.
package usage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Sink stores flushed usage; the token stores implement it.
type Sink interface {
	// AddUsage adds the records' counts to what is stored (one write for
	// the whole batch) and raises each token's last-used time to the
	// record's when that is later.
	AddUsage(ctx context.Context, recs []auth.UsageRecord) error
}

// Options configure a Recorder.
type Options struct {
	// Sink receives the flushed counts. Required.
	Sink Sink
	// Interval is how often Run flushes; DefaultInterval when zero.
	Interval time.Duration
	// Timeout bounds one flush; 5s when zero.
	Timeout time.Duration
	// Logger receives failed flushes; nil discards them.
	Logger *slog.Logger
	// MaxPending bounds the records kept after failed flushes (the oldest
	// are dropped beyond it); DefaultMaxPending when zero.
	MaxPending int
}

// Defaults of Options.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxPending = 200_000
)

const (
	numShards = 64
	// maxCodes bounds the codes counted (auth.Code values); codes beyond
	// it are not counted.
	maxCodes = 32
)

// Recorder aggregates request outcomes per token and minute. It is safe
// for concurrent use.
type Recorder struct {
	sink       Sink
	interval   time.Duration
	timeout    time.Duration
	log        *slog.Logger
	maxPending int
	seed       maphash.Seed
	shards     [numShards]shard

	flushMu sync.Mutex // serializes flushes; guards pending and batch
	pending []auth.UsageRecord
	// id names this recorder in its records (auth.UsageRecord.Recorder);
	// batch numbers its flushes.
	id    string
	batch uint64
}

type shard struct {
	mu   sync.Mutex
	m    map[key]*bucket
	free []*bucket // buckets of the last flush, reused
	_    [64]byte  // keep shards' locks on separate cache lines
}

type key struct {
	id     string
	minute int64
}

type bucket struct {
	counts [maxCodes]int64
	last   int64 // Unix nanoseconds of the latest request
}

// New returns a Recorder.
func New(opts Options) (*Recorder, error) {
	if opts.Sink == nil {
		return nil, errors.New("usage: Options.Sink is required")
	}
	r := &Recorder{
		sink:       opts.Sink,
		interval:   opts.Interval,
		timeout:    opts.Timeout,
		log:        opts.Logger,
		maxPending: opts.MaxPending,
		seed:       maphash.MakeSeed(),
		id:         rand.Text(),
	}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	if r.maxPending <= 0 {
		r.maxPending = DefaultMaxPending
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for i := range r.shards {
		r.shards[i].m = make(map[key]*bucket)
	}
	return r, nil
}

// Record counts one answered request of tokenID with outcome code at at.
// tokenID must be the id of a stored record (never a client-supplied
// string that no record has: that would let anyone grow the map).
func (r *Recorder) Record(tokenID string, code auth.Code, at time.Time) {
	if tokenID == "" || int(code) >= maxCodes {
		return
	}
	k := key{id: tokenID, minute: auth.UnixMinute(at)}
	s := &r.shards[maphash.String(r.seed, tokenID)%numShards]
	ns := at.UnixNano()
	s.mu.Lock()
	b := s.m[k]
	if b == nil {
		if n := len(s.free); n > 0 {
			b = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			b = new(bucket)
		}
		s.m[k] = b
	}
	b.counts[code]++
	if ns > b.last {
		b.last = ns
	}
	s.mu.Unlock()
}

// take moves every bucket out of the shards into records.
func (r *Recorder) take() []auth.UsageRecord {
	var out []auth.UsageRecord
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, b := range s.m {
			rec := auth.UsageRecord{
				TokenID:  k.id,
				Minute:   time.Unix(k.minute*60, 0).UTC(),
				Counts:   make(map[auth.Code]int64, 2),
				LastUsed: time.Unix(0, b.last).UTC(),
			}
			for c, n := range b.counts {
				if n != 0 {
					rec.Counts[auth.Code(c)] = n
				}
			}
			out = append(out, rec)
			*b = bucket{}
			s.free = append(s.free, b)
		}
		clear(s.m)
		s.mu.Unlock()
	}
	return out
}

// Flush writes everything counted so far (and what earlier failed flushes
// kept) to the sink in one call. On failure the counts are kept for the
// next flush, except records older than auth.UsageWindow and the oldest
// beyond Options.MaxPending.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	fresh := r.take()
	r.batch++
	for i := range fresh {
		fresh[i].Recorder, fresh[i].Batch = r.id, r.batch
	}
	recs := append(r.pending, fresh...)
	r.pending = nil
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.sink.AddUsage(ctx, recs)
	if err == nil {
		return nil
	}
	cutoff := time.Now().Add(-auth.UsageWindow)
	kept := recs[:0]
	for _, rec := range recs {
		if rec.Minute.After(cutoff) {
			kept = append(kept, rec)
		}
	}
	if len(kept) > r.maxPending {
		kept = kept[len(kept)-r.maxPending:]
	}
	r.pending = kept
	return fmt.Errorf("usage: flushing %d records (kept for the next flush): %w", len(recs), err)
}

// Run flushes every interval until ctx is done, then once more (bounded by
// the flush timeout) so that nothing counted is lost on shutdown.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("usage: final flush failed; these counts are lost", slog.String("err", err.Error()))
			}
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("usage: flush failed; retrying at the next one", slog.String("err", err.Error()))
			}
		}
	}
}
