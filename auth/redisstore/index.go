package redisstore

// The background indexes: what the once-a-minute work of every replica
// (the tswgate_tokens gauge, token.expire events, token.expiring warnings)
// reads, so that it costs O(changes), not O(tokens).
//
// Keys, per shard (see below):
//
//	Prefix+"idx:count"+tag  hash: "<role>:<status>" → live tokens so
//	                        counted
//	Prefix+"idx:exp"+tag    sorted set: ids of live tokens whose expiry
//	                        was not claimed yet, scored by expiry (Unix ms)
//	Prefix+"idx:warn"+tag   sorted set: ids of live tokens not yet warned
//	                        of their expiry, scored by expiry minus
//	                        Options.WarnBefore (Unix ms)
//	Prefix+"tok:"+id        the record gains "ix", the "<role>:<status>" it
//	                        is counted under (absent: not counted), and
//	                        "expiring_logged", the expiry (Unix ms) whose
//	                        warning was claimed
//
// Every script that writes a record ends with syncLua, which brings the
// record's entries in these keys in line with the record in the same
// script (or, for Update, the same MULTI/EXEC): the count moves from the
// record's "ix" to what it now is, and the sorted sets get or lose its id.
// So the counts are the sum of the records' "ix" fields, whatever order
// writers, claimants and the reconciliation run in.
//
// Shards: on one server or Sentinel there is one shard (tag ""). On Redis
// Cluster a script may only touch keys of one hash slot, so each slot has
// its own shard, whose tag ("{…}") puts its keys in the slot of the records
// it indexes; readers then read 16384 small keys, one pipeline per master.
// A Prefix with a hash tag puts every key in one slot: one shard again.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// DefaultWarnBefore is the default Options.WarnBefore: seven days, as
// webhook.ExpiringWithin.
const DefaultWarnBefore = 7 * 24 * time.Hour

// indexVersion names the layout of the indexes; its marker key tells that
// the records written before it have been reconciled.
const indexVersion = "v1"

// claimBatch bounds the ids read from an index at once; claimMax bounds
// the claims of one call (the rest are for the next call).
const (
	claimBatch = 500
	claimMax   = 10000
)

// reconcileLockTTL bounds how long a replica that died while reconciling
// keeps the others from taking over.
const reconcileLockTTL = 10 * time.Minute

// syncLua defines sync(rec, cnt, exp, warn, id, before): it moves the
// record's count from its "ix" to its current role and status (none for a
// tombstone or a missing record) and sets its entries of the sorted sets.
// Scripts using it take KEYS record, counts, exp, warn and ARGV id, warn
// lead (ms) first.
const syncLua = `
local function sync(rec, cnt, exp, warn, id, before)
	local f = redis.call('HMGET', rec, 'role', 'status', 'revoked', 'expires', 'expire_logged', 'expiring_logged', 'ix')
	local live = f[1] and f[2] and not f[3]
	local want = false
	if live then
		want = f[1] .. ':' .. f[2]
	end
	if want ~= f[7] then
		if f[7] then
			redis.call('HINCRBY', cnt, f[7], -1)
		end
		if want then
			redis.call('HINCRBY', cnt, want, 1)
			redis.call('HSET', rec, 'ix', want)
		else
			redis.call('HDEL', rec, 'ix')
		end
	end
	local e = tonumber(f[4])
	if live and e and f[5] ~= f[4] then
		redis.call('ZADD', exp, e, id)
	else
		redis.call('ZREM', exp, id)
	end
	if live and e and f[6] ~= f[4] then
		redis.call('ZADD', warn, e - tonumber(before), id)
	else
		redis.call('ZREM', warn, id)
	end
end
`

// syncScript runs sync on one record (Update's transaction, Reconcile).
var syncScript = redis.NewScript(syncLua + `
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return 1
`)

// claimDueScript claims the due expiry (ARGV[3] "expire") or expiry
// warning (ARGV[3] "expiring") of the record at ARGV[4] (Unix ms): it sets
// the record's <kind>_logged to its expiry and returns 1, once per expiry.
// A warning that comes due after the expiry is marked but not returned.
var claimDueScript = redis.NewScript(syncLua + `
local f = redis.call('HMGET', KEYS[1], 'expires', 'revoked', ARGV[3] .. '_logged', 'role')
local e = tonumber(f[1])
local now = tonumber(ARGV[4])
local won = 0
if f[4] and not f[2] and e and f[3] ~= f[1] then
	if ARGV[3] == 'expire' then
		if e <= now then
			won = 1
		end
	elseif e - tonumber(ARGV[2]) <= now then
		if e > now then
			won = 1
		end
		redis.call('HSET', KEYS[1], 'expiring_logged', f[1])
	end
	if won == 1 then
		redis.call('HSET', KEYS[1], ARGV[3] .. '_logged', f[1])
	end
end
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return won
`)

// unclaimScript withdraws the claim of ARGV[3] ("expire" or "expiring")
// for the expiry ARGV[4].
var unclaimScript = redis.NewScript(syncLua + `
if redis.call('HGET', KEYS[1], ARGV[3] .. '_logged') == ARGV[4] then
	redis.call('HDEL', KEYS[1], ARGV[3] .. '_logged')
end
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return 1
`)

// shard names the index keys of one shard.
type shard struct{ counts, exp, warn string }

func (s *Store) shardOf(tag string) shard {
	return shard{s.prefix + "idx:count" + tag, s.prefix + "idx:exp" + tag, s.prefix + "idx:warn" + tag}
}

// shards returns every shard of the store.
func (s *Store) shards() []shard {
	if !s.sharded {
		return []shard{s.shardOf("")}
	}
	tags := slotTags()
	out := make([]shard, len(tags))
	for i, tag := range tags {
		out[i] = s.shardOf("{" + tag + "}")
	}
	return out
}

// indexKeys returns the keys a script maintaining the record of id takes:
// the record, then its shard's counts, exp and warn.
func (s *Store) indexKeys(id string) []string {
	key := s.tokenKey(id)
	tag := ""
	if s.sharded {
		tag = "{" + slotTags()[keySlot(key)] + "}"
	}
	sh := s.shardOf(tag)
	return []string{key, sh.counts, sh.exp, sh.warn}
}

// indexArgs returns the first arguments of every index script, then more.
func (s *Store) indexArgs(id string, more ...any) []any {
	return append([]any{id, s.warnBefore.Milliseconds()}, more...)
}

// CountTokens counts the live tokens (tombstones excluded) by role and
// status, for the tswgate_tokens gauge, from the counts kept on every
// change: one HGETALL per shard, whatever the number of tokens.
func (s *Store) CountTokens(ctx context.Context) (map[auth.Role]map[auth.Status]int, error) {
	s.ensureIndexed(ctx)
	shards := s.shards()
	pctx, cancel := context.WithTimeout(ctx, s.timeout*time.Duration(1+len(shards)/1000))
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(shards))
	if _, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, sh := range shards {
			cmds[i] = p.HGetAll(pctx, sh.counts)
		}
		return nil
	}); err != nil {
		return nil, s.unavailable("count tokens", err)
	}
	out := make(map[auth.Role]map[auth.Status]int)
	for _, cmd := range cmds {
		for field, v := range cmd.Val() {
			roleName, statusName, _ := strings.Cut(field, ":")
			role, err1 := auth.ParseRole(roleName)
			status, err2 := auth.ParseStatus(statusName)
			n, err3 := strconv.Atoi(v)
			if err1 != nil || err2 != nil || err3 != nil || n == 0 {
				continue
			}
			if out[role] == nil {
				out[role] = make(map[auth.Status]int)
			}
			out[role][status] += n
		}
	}
	return out, nil
}

// ClaimExpired returns the live tokens whose expiry has passed at now and
// whose expiry no replica claimed before: each (token, expiry) is returned
// by exactly one call cluster-wide (an atomic script on the record). It
// reads the expiry index up to now, in batches, so it costs one read per
// shard when nothing expired; at most claimMax tokens are claimed per
// call, the rest by the next.
func (s *Store) ClaimExpired(ctx context.Context, now time.Time) ([]*auth.Token, error) {
	return s.claimDue(ctx, "expire", now)
}

// UnclaimExpired withdraws a claim of ClaimExpired (its event could not be
// recorded), so that a later call returns the token again.
func (s *Store) UnclaimExpired(ctx context.Context, t *auth.Token) error {
	return s.unclaim(ctx, "expire", t)
}

// ClaimExpiring returns the live tokens that expire within WarnBefore
// after now, have not expired, and whose coming expiry no replica claimed
// before: each (token, expiry) once, cluster-wide, like ClaimExpired.
func (s *Store) ClaimExpiring(ctx context.Context, now time.Time) ([]*auth.Token, error) {
	return s.claimDue(ctx, "expiring", now)
}

// UnclaimExpiring withdraws a claim of ClaimExpiring (its event could not
// be published), so that a later call returns the token again.
func (s *Store) UnclaimExpiring(ctx context.Context, t *auth.Token) error {
	return s.unclaim(ctx, "expiring", t)
}

// WarnBefore is how long before its expiry ClaimExpiring returns a token.
func (s *Store) WarnBefore() time.Duration { return s.warnBefore }

func (s *Store) unclaim(ctx context.Context, kind string, t *auth.Token) error {
	uctx, cancel := s.bound(ctx)
	defer cancel()
	err := unclaimScript.Run(uctx, s.client, s.indexKeys(t.ID), s.indexArgs(t.ID, kind, t.ExpiresAt.UnixMilli())...).Err()
	if err != nil {
		return s.unavailable(fmt.Sprintf("unclaim %s %s", kind, t.ID), err)
	}
	return nil
}

// claimDue claims the due entries of the kind's index, shard by shard.
func (s *Store) claimDue(ctx context.Context, kind string, now time.Time) ([]*auth.Token, error) {
	s.ensureIndexed(ctx)
	nowMS := now.UnixMilli()
	var claimed []*auth.Token
	keys, err := s.dueShards(ctx, kind, nowMS)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		for len(claimed) < claimMax {
			toks, full, err := s.claimBatch(ctx, kind, key, nowMS)
			claimed = append(claimed, toks...)
			if err != nil {
				return claimed, err
			}
			if !full {
				break
			}
		}
	}
	return claimed, nil
}

// dueShards returns the index keys of kind with an entry due at nowMS: one
// pipelined ZRANGEBYSCORE … LIMIT 0 1 per shard.
func (s *Store) dueShards(ctx context.Context, kind string, nowMS int64) ([]string, error) {
	shards := s.shards()
	pctx, cancel := context.WithTimeout(ctx, s.timeout*time.Duration(1+len(shards)/1000))
	defer cancel()
	keys := make([]string, len(shards))
	cmds := make([]*redis.StringSliceCmd, len(shards))
	upTo := strconv.FormatInt(nowMS, 10)
	if _, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, sh := range shards {
			keys[i] = sh.exp
			if kind == "expiring" {
				keys[i] = sh.warn
			}
			cmds[i] = p.ZRangeByScore(pctx, keys[i], &redis.ZRangeBy{Min: "-inf", Max: upTo, Count: 1})
		}
		return nil
	}); err != nil {
		return nil, s.unavailable("claim "+kind+": read the index", err)
	}
	var due []string
	for i, cmd := range cmds {
		if len(cmd.Val()) > 0 {
			due = append(due, keys[i])
		}
	}
	return due, nil
}

// claimBatch claims up to claimBatch due entries of the index key; full
// tells that there may be more.
func (s *Store) claimBatch(ctx context.Context, kind, key string, nowMS int64) (_ []*auth.Token, full bool, _ error) {
	rctx, cancel := s.bound(ctx)
	ids, err := s.client.ZRangeByScore(rctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(nowMS, 10), Count: claimBatch,
	}).Result()
	cancel()
	if err != nil {
		return nil, false, s.unavailable("claim "+kind+": read the index", err)
	}
	if len(ids) == 0 {
		return nil, false, nil
	}
	pctx, cancel := s.bound(ctx)
	defer cancel()
	wins := make([]*redis.Cmd, len(ids))
	gets := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			keys := s.indexKeys(id)
			wins[i] = claimDueScript.Eval(pctx, p, keys, s.indexArgs(id, kind, nowMS)...)
			gets[i] = p.HGetAll(pctx, keys[0])
		}
		return nil
	}); err != nil {
		return nil, false, s.unavailable("claim "+kind, err)
	}
	var claimed []*auth.Token
	for i, id := range ids {
		if n, _ := wins[i].Int(); n != 1 {
			continue
		}
		t, err := decode(id, gets[i].Val())
		if err != nil {
			s.log.Warn("redisstore: claim "+kind+": unreadable record", "id", id, "err", err)
			continue
		}
		claimed = append(claimed, t)
	}
	return claimed, len(ids) == claimBatch, nil
}

// Reconcile brings the indexes in line with every record, walking them all
// with SCAN (on a Cluster, every master): O(tokens). It is idempotent and
// safe while other replicas write, each record being reconciled by one
// script. When the walk completes it sets the marker key that tells every
// replica the records are indexed. Replicas run it once by themselves
// (see ensureIndexed); run it again after records were written by a
// version of tswgate that did not keep the indexes. It returns how many
// records it walked.
func (s *Store) Reconcile(ctx context.Context) (int, error) {
	var mu sync.Mutex
	n := 0
	err := s.scanTokens(ctx, func(ctx context.Context, c redis.Cmdable, keys []string) error {
		pctx, cancel := s.bound(ctx)
		defer cancel()
		if _, err := c.Pipelined(pctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				id := k[len(s.prefix)+len("tok:"):]
				syncScript.Eval(pctx, p, s.indexKeys(id), s.indexArgs(id)...)
			}
			return nil
		}); err != nil {
			return s.unavailable("reconcile the indexes", err)
		}
		mu.Lock()
		n += len(keys)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return n, err
	}
	mctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.client.Set(mctx, s.doneKey(), s.now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return n, s.unavailable("mark the indexes reconciled", err)
	}
	s.indexed.Store(true)
	return n, nil
}

// doneKey marks that the records were reconciled with the index layout.
func (s *Store) doneKey() string { return s.prefix + "idx:" + indexVersion }

func (s *Store) lockKey() string { return s.prefix + "idx:lock" }

// ensureIndexed makes sure that the records written before the indexes
// existed are in them: unless the marker key says so, one replica (the
// holder of a SET NX lock) runs Reconcile in the background, then sets the
// marker. Until then, counts and claims miss the records not reconciled
// yet. Once the marker is seen, it costs nothing.
func (s *Store) ensureIndexed(ctx context.Context) {
	if s.indexed.Load() {
		return
	}
	gctx, cancel := s.bound(ctx)
	n, err := s.client.Exists(gctx, s.doneKey()).Result()
	cancel()
	if err != nil || n == 1 {
		s.indexed.Store(err == nil)
		return
	}
	if !s.reconciling.CompareAndSwap(false, true) {
		return
	}
	s.bg.Go(func() {
		defer s.reconciling.Store(false)
		if err := s.reconcileOnce(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("redisstore: reconciling the indexes failed; retrying at the next count", "err", err)
		}
	})
}

// reconcileOnce runs Reconcile under the lock, if no other replica holds
// it, and sets the marker.
func (s *Store) reconcileOnce(ctx context.Context) error {
	owner := strconv.FormatInt(s.now().UnixNano(), 36) + ":" + strconv.FormatUint(rand.Uint64(), 36)
	lctx, cancel := s.bound(ctx)
	ok, err := s.client.SetNX(lctx, s.lockKey(), owner, reconcileLockTTL).Result()
	cancel()
	if err != nil {
		return s.unavailable("lock the reconciliation", err)
	}
	if !ok {
		return nil // another replica reconciles
	}
	start := s.now()
	n, err := s.Reconcile(ctx)
	uctx, cancel := s.bound(context.WithoutCancel(ctx))
	if uerr := unlockScript.Run(uctx, s.client, []string{s.lockKey()}, owner).Err(); uerr != nil && !errors.Is(uerr, redis.Nil) {
		s.log.Warn("redisstore: releasing the reconciliation lock", "err", uerr)
	}
	cancel()
	if err != nil {
		return err
	}
	s.log.Info("redisstore: indexes reconciled", "records", n, "took", s.now().Sub(start).Round(time.Millisecond).String())
	return nil
}

// unlockScript deletes KEYS[1] if it still holds ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Import stores records in bulk, as Create does (indexed, tombstones kept
// for the retention time), in pipelines of importBatch records, but
// announces nothing: use it to load a new store (a migration, a
// benchmark), not to add tokens that replicas may have looked up already.
// A record whose id exists is left as it is. It returns how many records
// it stored.
func (s *Store) Import(ctx context.Context, toks []*auth.Token) (int, error) {
	stored := 0
	for start := 0; start < len(toks); start += importBatch {
		batch := toks[start:min(start+importBatch, len(toks))]
		for _, t := range batch {
			if err := t.Validate(); err != nil {
				return stored, fmt.Errorf("redisstore: import %s: invalid record: %s", t.ID, oneLine(err))
			}
		}
		created := make([]*redis.Cmd, len(batch))
		pctx, cancel := s.bound(ctx)
		_, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
			for i, t := range batch {
				created[i] = createScript.Eval(pctx, p, s.indexKeys(t.ID), s.createArgs(t)...)
				if !t.Revoked() {
					p.ZAdd(pctx, s.projectKey(t.ProjectID), redis.Z{Score: float64(t.CreatedAt.UnixMilli()), Member: t.ID})
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			return stored, s.unavailable(fmt.Sprintf("import %d records", len(batch)), err)
		}
		for _, c := range created {
			if n, _ := c.Int(); n == 1 {
				stored++
			}
		}
	}
	return stored, nil
}

// importBatch is how many records Import sends in one pipeline.
const importBatch = 1000
