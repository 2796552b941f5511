package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of RedisQueueOptions and FileQueueOptions.
const (
	DefaultVisibilityTimeout = 2 * time.Minute
	DefaultRetention         = 7 * 24 * time.Hour
	// maxListed bounds the deliveries an endpoint's list keeps.
	maxListed = 1000
	// promoteBatch bounds the retries moved back onto the stream per Lease.
	promoteBatch = 100
)

// consumerGroup is the stream's consumer group: every replica's
// dispatcher reads through it, so each entry goes to one of them.
const consumerGroup = "dispatchers"

// RedisQueueOptions configure a RedisQueue. Only Client is required.
type RedisQueueOptions struct {
	// Client reaches Redis; create it with ContextTimeoutEnabled (see
	// redisstore.Options.Client).
	Client redis.UniversalClient
	// Prefix starts every key; DefaultPrefix when empty.
	Prefix string
	// VisibilityTimeout is how long a lease lasts: a delivery leased and
	// not completed for that long (its replica died, or hangs) is handed
	// to another consumer. It must exceed the Dispatcher's attempt
	// timeout. DefaultVisibilityTimeout when zero.
	VisibilityTimeout time.Duration
	// Retention is how long a delivered, dead or canceled delivery stays
	// readable (and replayable); DefaultRetention when zero.
	Retention time.Duration
	// MaxPending bounds an endpoint's undelivered deliveries, across
	// replicas; DefaultMaxPending when zero.
	MaxPending int
	// MaxPendingPerProject bounds one project's undelivered deliveries
	// on an endpoint that receives several projects' events (Shared),
	// across replicas; DefaultMaxPendingPerProject when zero.
	MaxPendingPerProject int
	// Timeout bounds each Redis call; 2 s when zero.
	Timeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// RedisQueue is the Queue every replica shares, in Redis:
//
//   - <prefix>webhook:{q}:stream, a stream whose entries name a due
//     delivery, read through the consumer group "dispatchers" (XREADGROUP),
//     so that each entry goes to one consumer; an entry is acknowledged and
//     deleted when its attempt is recorded, and one left pending longer
//     than the visibility timeout is claimed by another consumer
//     (XAUTOCLAIM), so a replica that dies mid-delivery loses nothing;
//   - <prefix>webhook:{q}:retry, a sorted set of the deliveries waiting for
//     a retry, scored by when it is due; Lease moves the due ones back onto
//     the stream (a script: each moves once);
//   - <prefix>webhook:{q}:d:<id>, a hash per delivery: "state" and "rec"
//     (its JSON), expiring Retention after it ended;
//   - <prefix>webhook:{q}:ep:<endpoint>, a sorted set of an endpoint's
//     latest deliveries by creation time, for List;
//   - <prefix>webhook:{q}:ep:<endpoint>:pending, a sorted set of an
//     endpoint's deliveries not ended, by when they were queued, whose
//     size Enqueue bounds (members older than Retention, whose delivery
//     was lost, are trimmed);
//   - <prefix>webhook:{q}:ep:<endpoint>:pending:<project>, the same for
//     one project's Shared deliveries to the endpoint: its size bounds the
//     project's share;
//   - <prefix>webhook:{q}:ep:<endpoint>:dropped, a hash counting the
//     deliveries dropped as the queue was full ("n"), those of them
//     dropped for a project's share ("np"), and when the latest was
//     ("last", Unix ms), expiring Retention after it.
//
// Every key holds the hash tag {q}, so that the scripts, which touch
// several, work on Redis Cluster (the queue lives on one shard).
type RedisQueue struct {
	c          redis.UniversalClient
	base       string
	stream     string
	retry      string
	visibility time.Duration
	retention  time.Duration
	maxPending int
	maxShare   int
	timeout    time.Duration
	now        func() time.Time
	log        *slog.Logger
}

var _ Queue = (*RedisQueue)(nil)

// NewRedisQueue returns a queue on opts.Client.
func NewRedisQueue(opts RedisQueueOptions) (*RedisQueue, error) {
	if opts.Client == nil {
		return nil, errors.New("webhook: RedisQueueOptions.Client is nil")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	q := &RedisQueue{
		c: opts.Client, base: prefix + "webhook:{q}:",
		visibility: orDefault(opts.VisibilityTimeout, DefaultVisibilityTimeout),
		retention:  orDefault(opts.Retention, DefaultRetention),
		maxPending: orDefault(opts.MaxPending, DefaultMaxPending),
		maxShare:   orDefault(opts.MaxPendingPerProject, DefaultMaxPendingPerProject),
		timeout:    orDefault(opts.Timeout, defaultTimeout),
		now:        opts.Now, log: opts.Logger,
	}
	q.stream, q.retry = q.base+"stream", q.base+"retry"
	if q.now == nil {
		q.now = time.Now
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	return q, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (q *RedisQueue) key(id string) string { return q.base + "d:" + id }

func (q *RedisQueue) epKey(endpoint string) string { return q.base + "ep:" + endpoint }

func (q *RedisQueue) pendingKey(endpoint string) string { return q.epKey(endpoint) + ":pending" }

func (q *RedisQueue) droppedKey(endpoint string) string { return q.epKey(endpoint) + ":dropped" }

// shareKey is the key of the pending set of d's project's share of its
// endpoint.
func (q *RedisQueue) shareKey(d *Delivery) string {
	return q.pendingKey(d.EndpointID) + ":" + projectKey(d.ProjectID)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (q *RedisQueue) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, q.timeout)
}

// enqueueScript stores each delivery and puts it on the stream, unless
// its endpoint has ARGV[1] deliveries not ended, or it is shared and its
// project has ARGV[6] of them there: then it counts it dropped. It
// returns the ids of those dropped, each followed by the reason. KEYS: the
// stream, then per delivery its hash, its endpoint's list, pending set,
// dropped count and its project's pending set. ARGV: the bound, now and
// the oldest pending score kept (Unix ms), the retention (ms), the list's
// length, the project's share, then per delivery its id, record, creation
// time (Unix ms) and whether it is shared ("1").
var enqueueScript = redis.NewScript(`
local max, now, oldest, ttl, listed, share = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local dropped = {}
for i = 0, (#KEYS - 1) / 5 - 1 do
  local dk, lk, pk, xk, sk = KEYS[2+5*i], KEYS[3+5*i], KEYS[4+5*i], KEYS[5+5*i], KEYS[6+5*i]
  local id, rec, created, shared = ARGV[7+4*i], ARGV[8+4*i], ARGV[9+4*i], ARGV[10+4*i] == '1'
  redis.call('ZREMRANGEBYSCORE', pk, '-inf', '(' .. oldest)
  local reason = false
  if redis.call('ZCARD', pk) >= max then
    reason = 'queue_full'
  elseif shared then
    redis.call('ZREMRANGEBYSCORE', sk, '-inf', '(' .. oldest)
    if redis.call('ZCARD', sk) >= share then reason = 'project_queue_full' end
  end
  if reason then
    redis.call('HINCRBY', xk, 'n', 1)
    if reason == 'project_queue_full' then redis.call('HINCRBY', xk, 'np', 1) end
    redis.call('HSET', xk, 'last', now)
    redis.call('PEXPIRE', xk, ttl)
    dropped[#dropped+1] = id
    dropped[#dropped+1] = reason
  else
    redis.call('HSET', dk, 'state', 'pending', 'rec', rec)
    redis.call('XADD', KEYS[1], '*', 'd', id)
    redis.call('ZADD', lk, created, id)
    redis.call('ZREMRANGEBYRANK', lk, 0, -listed-1)
    redis.call('ZADD', pk, now, id)
    if shared then redis.call('ZADD', sk, now, id) end
  end
end
return dropped
`)

// Enqueue stores the deliveries and puts them on the stream, in one
// script, but those of an endpoint whose queue (or whose project's share
// of it) is full.
func (q *RedisQueue) Enqueue(ctx context.Context, ds ...*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	now := q.now()
	keys := []string{q.stream}
	args := []any{q.maxPending, now.UnixMilli(), now.Add(-q.retention).UnixMilli(), q.retention.Milliseconds(), maxListed, q.maxShare}
	byID := make(map[string]*Delivery, len(ds))
	for _, d := range ds {
		d.State = StatePending
		rec, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("webhook: encoding delivery %s: %w", d.ID, err)
		}
		keys = append(keys, q.key(d.ID), q.epKey(d.EndpointID), q.pendingKey(d.EndpointID), q.droppedKey(d.EndpointID), q.shareKey(d))
		args = append(args, d.ID, rec, d.CreatedAt.UnixMilli(), flag(d.Shared))
		byID[d.ID] = d
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	res, err := enqueueScript.Run(ctx, q.c, keys, args...).StringSlice()
	if err != nil {
		return fmt.Errorf("webhook: enqueueing %d deliveries: %w", len(ds), err)
	}
	var drops *DroppedError
	for i := 0; i+1 < len(res); i += 2 {
		drops = drops.add(byID[res[i]], res[i+1])
	}
	if drops != nil {
		return drops
	}
	return nil
}

// Stats returns where an endpoint's queue stands.
func (q *RedisQueue) Stats(ctx context.Context, endpointID string) (QueueStats, error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	oldest := strconv.FormatInt(q.now().Add(-q.retention).UnixMilli(), 10)
	var n *redis.IntCmd
	var h *redis.MapStringStringCmd
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		n = p.ZCount(ctx, q.pendingKey(endpointID), oldest, "+inf")
		h = p.HGetAll(ctx, q.droppedKey(endpointID))
		return nil
	})
	if err != nil {
		return QueueStats{}, fmt.Errorf("webhook: reading the queue of %s: %w", endpointID, err)
	}
	s := QueueStats{Pending: int(n.Val()), MaxPending: q.maxPending, MaxPendingPerProject: q.maxShare}
	s.Dropped, _ = strconv.ParseInt(h.Val()["n"], 10, 64)
	s.DroppedProject, _ = strconv.ParseInt(h.Val()["np"], 10, 64)
	if ms, err := strconv.ParseInt(h.Val()["last"], 10, 64); err == nil {
		s.LastDropped = time.UnixMilli(ms).UTC()
	}
	return s, nil
}

// promoteScript moves the due retries back onto the stream and returns
// how many it moved and the score of the next one (-1: none).
var promoteScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  if redis.call('EXISTS', ARGV[3] .. id) == 1 then
    redis.call('HSET', ARGV[3] .. id, 'state', 'pending')
    redis.call('XADD', KEYS[2], '*', 'd', id)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, tonumber(nxt[2])}
`)

// Lease moves due retries onto the stream, claims entries other
// consumers left pending past the visibility timeout, then reads new
// ones, waiting up to wait (or until the next retry is due) when there
// are none.
func (q *RedisQueue) Lease(ctx context.Context, consumer string, n int, wait time.Duration) ([]*Delivery, error) {
	next, err := q.promote(ctx)
	if err != nil {
		return nil, err
	}
	msgs, err := q.claim(ctx, consumer, n)
	if err != nil {
		return nil, err
	}
	if len(msgs) < n {
		block := time.Duration(-1) // no wait when some are in hand
		if len(msgs) == 0 {
			block = q.blockFor(wait, next)
		}
		more, err := q.read(ctx, consumer, n-len(msgs), block)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, more...)
	}
	return q.load(ctx, msgs)
}

// blockFor is how long to wait for new entries: wait, or less when a
// retry falls due sooner; at least a millisecond (0 would block forever).
func (q *RedisQueue) blockFor(wait time.Duration, next time.Time) time.Duration {
	if !next.IsZero() {
		wait = min(wait, next.Sub(q.now()))
	}
	return max(wait, time.Millisecond)
}

func (q *RedisQueue) promote(ctx context.Context) (next time.Time, err error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	res, err := promoteScript.Run(ctx, q.c, []string{q.retry, q.stream},
		q.now().UnixMilli(), promoteBatch, q.base+"d:").Int64Slice()
	if err != nil {
		return time.Time{}, fmt.Errorf("webhook: moving due retries: %w", err)
	}
	if len(res) == 2 && res[1] >= 0 {
		next = time.UnixMilli(res[1])
	}
	return next, nil
}

func (q *RedisQueue) claim(ctx context.Context, consumer string, n int) ([]redis.XMessage, error) {
	var msgs []redis.XMessage
	err := q.withGroup(ctx, func(ctx context.Context) error {
		var err error
		msgs, _, err = q.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.stream, Group: consumerGroup, Consumer: consumer,
			MinIdle: q.visibility, Start: "0-0", Count: int64(n),
		}).Result()
		return err
	}, q.timeout)
	if err != nil {
		return nil, fmt.Errorf("webhook: claiming stalled deliveries: %w", err)
	}
	return msgs, nil
}

func (q *RedisQueue) read(ctx context.Context, consumer string, n int, block time.Duration) ([]redis.XMessage, error) {
	var msgs []redis.XMessage
	err := q.withGroup(ctx, func(ctx context.Context) error {
		streams, err := q.c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: consumerGroup, Consumer: consumer, Streams: []string{q.stream, ">"},
			Count: int64(n), Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		return err
	}, q.timeout+max(block, 0))
	if err != nil {
		return nil, fmt.Errorf("webhook: reading the queue: %w", err)
	}
	return msgs, nil
}

// withGroup runs fn within timeout, creating the consumer group first
// when fn finds none (a fresh Redis, or one restarted empty).
func (q *RedisQueue) withGroup(ctx context.Context, fn func(context.Context) error, timeout time.Duration) error {
	for try := 0; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := fn(cctx)
		cancel()
		if err == nil || try > 0 || !strings.HasPrefix(err.Error(), "NOGROUP") {
			return err
		}
		cctx, cancel = q.bound(ctx)
		err = q.c.XGroupCreateMkStream(cctx, q.stream, consumerGroup, "0").Err()
		cancel()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("creating the consumer group: %w", err)
		}
	}
}

// load reads the deliveries the entries name; an entry whose delivery is
// gone or already ended is acknowledged and skipped.
func (q *RedisQueue) load(ctx context.Context, msgs []redis.XMessage) ([]*Delivery, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(msgs))
	pend := make([]*redis.XPendingExtCmd, len(msgs))
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			id, _ := m.Values["d"].(string)
			cmds[i] = p.HGetAll(ctx, q.key(id))
			pend[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: q.stream, Group: consumerGroup, Start: m.ID, End: m.ID, Count: 1,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: reading leased deliveries: %w", err)
	}
	var out []*Delivery
	for i, m := range msgs {
		d, err := decodeDelivery(cmds[i].Val())
		if err != nil || d.State.Terminal() {
			q.log.Warn("webhook: dropping a queue entry without a live delivery", "entry", m.ID, "err", err)
			q.drop(ctx, m.ID)
			continue
		}
		p := pend[i].Val()
		if len(p) != 1 {
			continue // acknowledged meanwhile
		}
		// The lease is this hand-over of the entry: its consumer and
		// how many times the entry was handed out.
		d.lease = m.ID + " " + p[0].Consumer + " " + strconv.FormatInt(p[0].RetryCount, 10)
		out = append(out, d)
	}
	return out, nil
}

func (q *RedisQueue) drop(ctx context.Context, entry string) {
	_, _ = q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, q.stream, consumerGroup, entry)
		p.XDel(ctx, q.stream, entry)
		return nil
	})
}

func decodeDelivery(h map[string]string) (*Delivery, error) {
	rec, ok := h["rec"]
	if !ok {
		return nil, ErrNotFound
	}
	d := new(Delivery)
	if err := json.Unmarshal([]byte(rec), d); err != nil {
		return nil, fmt.Errorf("decoding a delivery: %w", err)
	}
	d.State = State(h["state"])
	return d, nil
}

// completeScript records an attempt's outcome if the caller still holds
// the lease — the entry is pending with the same consumer and hand-over
// count (XPENDING) — and acknowledges it: 1, else 0. A delivery that
// ends leaves its endpoint's pending set (KEYS[4]) and its project's
// share of it (KEYS[5]).
var completeScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[8] or p[1][4] ~= tonumber(ARGV[9]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], 'state', ARGV[3], 'rec', ARGV[4])
if ARGV[3] == 'retrying' then
  redis.call('PERSIST', KEYS[3])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
else
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
  redis.call('ZREM', KEYS[4], ARGV[6])
  redis.call('ZREM', KEYS[5], ARGV[6])
end
return 1
`)

// Complete records d's outcome, atomically with acknowledging its entry.
func (q *RedisQueue) Complete(ctx context.Context, d *Delivery) error {
	rec, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("webhook: encoding delivery %s: %w", d.ID, err)
	}
	entry, holder, _ := strings.Cut(d.lease, " ")
	consumer, count, _ := strings.Cut(holder, " ")
	ctx, cancel := q.bound(ctx)
	defer cancel()
	ok, err := completeScript.Run(ctx, q.c, []string{q.stream, q.retry, q.key(d.ID), q.pendingKey(d.EndpointID), q.shareKey(d)},
		consumerGroup, entry, string(d.State), rec, d.NextAttempt.UnixMilli(), d.ID,
		q.retention.Milliseconds(), consumer, count).Int()
	if err != nil {
		return fmt.Errorf("webhook: recording delivery %s: %w", d.ID, err)
	}
	if ok == 0 {
		return fmt.Errorf("webhook: delivery %s: %w", d.ID, ErrLeaseLost)
	}
	return nil
}

// Get returns the delivery of id.
func (q *RedisQueue) Get(ctx context.Context, id string) (*Delivery, error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	h, err := q.c.HGetAll(ctx, q.key(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("webhook: reading delivery %s: %w", id, err)
	}
	d, err := decodeDelivery(h)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound("delivery", id)
	}
	return d, err
}

// List returns an endpoint's latest deliveries, newest first.
func (q *RedisQueue) List(ctx context.Context, endpointID string, limit int) ([]*Delivery, error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	ids, err := q.c.ZRevRange(ctx, q.epKey(endpointID), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("webhook: listing the deliveries of %s: %w", endpointID, err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, q.key(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: reading the deliveries of %s: %w", endpointID, err)
	}
	out := []*Delivery{}
	for _, c := range cmds {
		if d, err := decodeDelivery(c.Val()); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// replayScript queues a delivery again if it is not pending and its
// record is still the one read (ARGV[3]): 1; 0 when pending, -1 when
// gone, -2 when changed meanwhile. One that had ended (not in its
// endpoint's pending set) counts against the bounds again: {-3, pending}
// when its endpoint has ARGV[6] undelivered, {-4, pending} when it is
// shared (ARGV[8]) and its project has ARGV[7] there. KEYS: its hash, the
// retry set, the stream, its endpoint's pending set and its project's.
// ARGV: id, new record, old record, now, the oldest pending score kept,
// the bound, the project's share, shared.
var replayScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
if st == 'pending' then return 0 end
if redis.call('HGET', KEYS[1], 'rec') ~= ARGV[3] then return -2 end
local shared = ARGV[8] == '1'
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[5])
  local n = redis.call('ZCARD', KEYS[4])
  if n >= tonumber(ARGV[6]) then return {-3, n} end
  if shared then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[5])
    n = redis.call('ZCARD', KEYS[5])
    if n >= tonumber(ARGV[7]) then return {-4, n} end
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'pending', 'rec', ARGV[2])
redis.call('PERSIST', KEYS[1])
redis.call('XADD', KEYS[3], '*', 'd', ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
if shared then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1]) end
return 1
`)

// Replay queues the delivery of id again, due now.
func (q *RedisQueue) Replay(ctx context.Context, id string) (*Delivery, error) {
	for range 5 {
		d, old, err := q.getRaw(ctx, id)
		if err != nil {
			return nil, err
		}
		d.State, d.Attempts, d.NextAttempt = StatePending, 0, time.Time{}
		res, err := q.replay(ctx, d, old)
		switch {
		case err != nil:
			return nil, fmt.Errorf("webhook: replaying delivery %s: %w", id, err)
		case res == 1:
			return d, nil
		case res == 0:
			return nil, fmt.Errorf("webhook: replaying delivery %s: %w", id, ErrInFlight)
		case res == -1:
			return nil, notFound("delivery", id)
		}
	}
	return nil, fmt.Errorf("webhook: replaying delivery %s: it kept changing", id)
}

// replay runs replayScript for d, whose stored record is old, and returns
// its answer, or a *FullError when a bound refused it.
func (q *RedisQueue) replay(ctx context.Context, d *Delivery, old string) (int64, error) {
	rec, err := json.Marshal(d)
	if err != nil {
		return 0, fmt.Errorf("encoding: %w", err)
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	now := q.now()
	v, err := replayScript.Run(ctx, q.c, []string{q.key(d.ID), q.retry, q.stream, q.pendingKey(d.EndpointID), q.shareKey(d)},
		d.ID, rec, old, now.UnixMilli(), now.Add(-q.retention).UnixMilli(), q.maxPending, q.maxShare, flag(d.Shared)).Result()
	if err != nil {
		return 0, err
	}
	switch v := v.(type) {
	case int64:
		return v, nil
	case []any:
		if len(v) == 2 {
			code, _ := v[0].(int64)
			n, _ := v[1].(int64)
			if code == -4 {
				return 0, &FullError{Pending: int(n), Max: q.maxShare, Project: true}
			}
			return 0, &FullError{Pending: int(n), Max: q.maxPending}
		}
	}
	return 0, fmt.Errorf("unexpected answer %v", v)
}

// getRaw returns the delivery of id and its record as stored.
func (q *RedisQueue) getRaw(ctx context.Context, id string) (*Delivery, string, error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	h, err := q.c.HGetAll(ctx, q.key(id)).Result()
	if err != nil {
		return nil, "", fmt.Errorf("webhook: reading delivery %s: %w", id, err)
	}
	d, err := decodeDelivery(h)
	if errors.Is(err, ErrNotFound) {
		return nil, "", notFound("delivery", id)
	}
	return d, h["rec"], err
}

// Pending returns how many entries the stream holds (queued or in flight)
// and how many deliveries wait for a retry, for metrics.
func (q *RedisQueue) Pending(ctx context.Context) (queued, retrying int64, err error) {
	ctx, cancel := q.bound(ctx)
	defer cancel()
	if queued, err = q.c.XLen(ctx, q.stream).Result(); err != nil {
		return 0, 0, fmt.Errorf("webhook: counting queued deliveries: %w", err)
	}
	if retrying, err = q.c.ZCard(ctx, q.retry).Result(); err != nil {
		return 0, 0, fmt.Errorf("webhook: counting retries: %w", err)
	}
	return queued, retrying, nil
}
