package webhook

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TokenLookup returns a token's record; auth.Store (Get) is one.
type TokenLookup interface {
	Get(ctx context.Context, id string) (*auth.Token, error)
}

// EventPublisher publishes an event; *Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, ev Event) (int, error)
}

// Defaults of RateLimitWatchOptions.
const (
	DefaultRateLimitThreshold = 100
	DefaultRateLimitWindow    = time.Minute
	DefaultRateLimitDebounce  = 15 * time.Minute
)

// RateLimitWatchOptions configure a RateLimitWatch. Tokens and Publisher
// are required.
type RateLimitWatchOptions struct {
	Tokens    TokenLookup
	Publisher EventPublisher
	// Threshold is the number of rate_limited refusals of a token within
	// Window, on this replica, that raises a token.rate_limited event.
	Threshold int
	Window    time.Duration
	// Debounce is the least time between two events of one token, across
	// replicas (through the Publisher's Once).
	Debounce time.Duration
	// Logger receives a line per event that could not be published.
	Logger *slog.Logger
}

// RateLimitWatch raises token.rate_limited when a token is refused
// rate_limited Threshold times within a Window, at most once per Debounce.
// Record is its hot path, shaped as proxy.UsageRecorder: it takes a
// sharded lock and allocates only for a token's first refusal of a
// window. Run publishes the events.
type RateLimitWatch struct {
	opts   RateLimitWatchOptions
	seed   maphash.Seed
	shards [16]rlShard
	notes  chan rlNote
}

type rlShard struct {
	mu     sync.Mutex
	tokens map[string]*rlCount
}

type rlCount struct {
	since     time.Time // start of the window
	n         int
	quietTill time.Time // no event before
}

type rlNote struct {
	id    string
	n     int
	since time.Time
	at    time.Time
}

// NewRateLimitWatch returns a RateLimitWatch.
func NewRateLimitWatch(opts RateLimitWatchOptions) (*RateLimitWatch, error) {
	if opts.Tokens == nil || opts.Publisher == nil {
		return nil, errors.New("webhook: RateLimitWatchOptions.Tokens and Publisher are required")
	}
	opts.Threshold = orDefault(opts.Threshold, DefaultRateLimitThreshold)
	opts.Window = orDefault(opts.Window, DefaultRateLimitWindow)
	opts.Debounce = orDefault(opts.Debounce, DefaultRateLimitDebounce)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &RateLimitWatch{opts: opts, seed: maphash.MakeSeed(), notes: make(chan rlNote, 256)}
	for i := range w.shards {
		w.shards[i].tokens = map[string]*rlCount{}
	}
	return w, nil
}

// Record counts a request of tokenID answered code at at; only
// auth.CodeRateLimited counts.
func (w *RateLimitWatch) Record(tokenID string, code auth.Code, at time.Time) {
	if code != auth.CodeRateLimited || tokenID == "" {
		return
	}
	sh := &w.shards[maphash.String(w.seed, tokenID)%uint64(len(w.shards))]
	sh.mu.Lock()
	c := sh.tokens[tokenID]
	if c == nil {
		c = &rlCount{since: at}
		sh.tokens[strings.Clone(tokenID)] = c
	}
	if at.Sub(c.since) >= w.opts.Window {
		c.since, c.n = at, 0
	}
	c.n++
	var note *rlNote
	if c.n >= w.opts.Threshold && !at.Before(c.quietTill) {
		c.quietTill = at.Add(w.opts.Debounce)
		note = &rlNote{id: tokenID, n: c.n, since: c.since, at: at}
	}
	sh.mu.Unlock()
	if note != nil {
		select {
		case w.notes <- *note:
		default: // Run is behind: this one is dropped, a later one will come
		}
	}
}

// Run publishes the events Record raises, and drops idle counts, until
// ctx is done.
func (w *RateLimitWatch) Run(ctx context.Context) {
	sweep := time.NewTicker(w.opts.Window)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			w.sweep(now)
		case n := <-w.notes:
			w.publish(ctx, n)
		}
	}
}

func (w *RateLimitWatch) publish(ctx context.Context, n rlNote) {
	tok, err := w.opts.Tokens.Get(ctx, n.id)
	if err == nil {
		ev := TokenRateLimited(tok, n.n, n.since, w.opts.Window, w.opts.Debounce, n.at)
		_, err = w.opts.Publisher.Publish(ctx, ev)
	}
	if err != nil {
		w.opts.Logger.Warn("webhook: a token.rate_limited event was not published", "token_id", n.id, "err", err)
	}
}

// sweep drops the counts whose window and quiet time are over.
func (w *RateLimitWatch) sweep(now time.Time) {
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		for id, c := range sh.tokens {
			if now.Sub(c.since) >= w.opts.Window && !now.Before(c.quietTill) {
				delete(sh.tokens, id)
			}
		}
		sh.mu.Unlock()
	}
}
