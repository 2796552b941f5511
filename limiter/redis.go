package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript leases from one token bucket, kept in the hash KEYS[1] as n
// (requests held; negative in debt) and t (when, in microseconds of the
// server's clock). The server's clock is the one clock every replica
// shares. ARGV: rate per second, burst, want, debt (how far below zero the
// bucket may go). It grants want unless that passes the debt bound (then
// what fits, possibly nothing) and returns {granted, held before, held
// after, wait in µs until a lease fits when nothing was granted}, the
// held values as strings (Lua numbers become integers on the way out). A
// bucket left alone long enough to be full again expires, which is the
// same as full; the expiry is capped (1e15 ms) so that a tiny rate's
// refill time still makes a valid PEXPIRE, since a failed call would make
// the replica decide alone for every token.
var takeScript = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local debt = tonumber(ARGV[4])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local held = burst
local v = redis.call('HMGET', KEYS[1], 'n', 't')
if v[1] and v[2] then
  local elapsed = now - tonumber(v[2])
  if elapsed < 0 then elapsed = 0 end
  held = math.min(burst, tonumber(v[1]) + elapsed * rate / 1000000)
end
local before = held
local granted = math.min(want, math.floor(held + debt))
if granted < 0 then granted = 0 end
held = held - granted
redis.call('HSET', KEYS[1], 'n', string.format('%.17g', held), 't', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - held) / rate * 1000) + 1000, 1e15))
local wait = 0
if granted == 0 then
  wait = math.min(math.ceil((want - debt - held) / rate * 1000000), 9e15)
end
return {granted, string.format('%.17g', before), string.format('%.17g', held), wait}
`)

// heartbeatScript records a replica as alive in the sorted set KEYS[1]
// (member ARGV[1], scored by the server's clock in ms), forgets replicas
// silent for ARGV[2] ms, and returns how many are alive.
var heartbeatScript = redis.NewScript(`
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
`)

// RedisBudget is a Budget in Redis (standalone, Sentinel or Cluster): one
// small hash per limited token, at Prefix+"rl:"+id+":"+rate+":"+burst,
// changed by one single-key script per lease. It also keeps the count of live replicas
// (Heartbeat), for the share each replica holds a token to while Redis is
// unreachable.
type RedisBudget struct {
	rdb      redis.UniversalClient
	prefix   string
	replicas string
	id       string
	live     atomic.Int64
}

// NewRedisBudget returns a RedisBudget whose keys start with prefix (the
// store's, e.g. "tswgate:").
func NewRedisBudget(rdb redis.UniversalClient, prefix string) (*RedisBudget, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("limiter: replica id: %w", err)
	}
	b := &RedisBudget{rdb: rdb, prefix: prefix, replicas: prefix + "rl:replicas", id: hex.EncodeToString(id[:])}
	b.live.Store(1)
	return b, nil
}

// Take implements Budget.
func (b *RedisBudget) Take(ctx context.Context, id string, lim Limit, want, debt int) (Lease, error) {
	// The key names the limit too: a token whose limit changes starts a new
	// (full) bucket, as with Local; the old one expires once it would be full.
	key := b.prefix + "rl:" + id + ":" + strconv.FormatFloat(lim.Rate, 'g', -1, 64) + ":" + strconv.Itoa(lim.Burst)
	res, err := takeScript.Run(ctx, b.rdb, []string{key},
		strconv.FormatFloat(lim.Rate, 'g', -1, 64), lim.Burst, want, debt).Slice()
	if err != nil {
		return Lease{}, fmt.Errorf("lease rate-limit budget: %w", err)
	}
	if len(res) != 4 {
		return Lease{}, fmt.Errorf("lease rate-limit budget: %d values in the reply, want 4", len(res))
	}
	granted, ok1 := res[0].(int64)
	beforeS, ok2 := res[1].(string)
	afterS, ok3 := res[2].(string)
	wait, ok4 := res[3].(int64)
	before, err1 := strconv.ParseFloat(beforeS, 64)
	after, err2 := strconv.ParseFloat(afterS, 64)
	if !ok1 || !ok2 || !ok3 || !ok4 || err1 != nil || err2 != nil {
		return Lease{}, fmt.Errorf("lease rate-limit budget: unexpected reply %v", res)
	}
	// Wait is at most 9e15 µs (the script caps it), which fits a Duration
	// only up to about 9.2e12 µs: cap it here too.
	w := time.Duration(math.MaxInt64)
	if wait < math.MaxInt64/int64(time.Microsecond) {
		w = time.Duration(wait) * time.Microsecond
	}
	return Lease{Granted: int(granted), Held: before, Left: after, Wait: w}, nil
}

// ID is this replica's id in the live-replica set.
func (b *RedisBudget) ID() string { return b.id }

// Live returns the number of live replicas at the last successful
// heartbeat (1 before the first).
func (b *RedisBudget) Live() int { return int(b.live.Load()) }

// Heartbeat records this replica as alive for ttl and updates Live.
func (b *RedisBudget) Heartbeat(ctx context.Context, ttl time.Duration) (int, error) {
	n, err := heartbeatScript.Run(ctx, b.rdb, []string{b.replicas}, b.id, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("replica heartbeat: %w", err)
	}
	b.live.Store(max(n, 1))
	return int(n), nil
}

// RunHeartbeat sends a heartbeat every ttl/3 until ctx is done, then
// removes this replica from the set (best effort, bounded by timeout).
func (b *RedisBudget) RunHeartbeat(ctx context.Context, ttl, timeout time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	beat := func() {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := b.Heartbeat(hctx, ttl); err != nil && !errors.Is(err, context.Canceled) {
			log.Debug("replica heartbeat failed; keeping the last count", slog.String("err", err.Error()),
				slog.Int("replicas", b.Live()))
		}
	}
	beat()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			_ = b.rdb.ZRem(lctx, b.replicas, b.id).Err()
			cancel()
			return
		case <-t.C:
			beat()
		}
	}
}
