package redisstore

// Token activity in Redis: paged lists, usage counts, expiry claims and the
// audit trail. Every script and command touches one key, so all of it works
// on Redis Cluster; batches go out as one pipeline (on a Cluster, one per
// node, in parallel).
//
// Keys and fields, beyond the token records and project indexes:
//
//	Prefix+"use:"+id          hash: "<Unix minute>:<code>" → requests of the token
//	                          in that minute with that outcome ("ok" for allowed),
//	                          and "pruned", the minute up to which old fields were
//	                          dropped; expires 25h after its last write
//	Prefix+"tok:"+id          the record gains "last_used" (Unix ms, only ever
//	                          raised) and "expire_logged" (the expiry, Unix ms,
//	                          whose token.expire event was claimed)
//	Prefix+"audit:"+project   stream of the project's audit events, capped at
//	                          about Options.AuditMaxEvents (XADD MAXLEN ~); each
//	                          entry has one field, "e", the event as JSON

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// DefaultAuditMaxEvents is the default cap of each project's audit stream.
const DefaultAuditMaxEvents = 10000

// usageTTL is how long a token's usage hash outlives its last write: a
// little over the usage window.
const usageTTL = auth.UsageWindow + time.Hour

func (s *Store) usageKey(id string) string { return s.prefix + "use:" + id }

func (s *Store) auditKey(project int64) string {
	return s.prefix + "audit:" + strconv.FormatInt(project, 10)
}

// ListPage returns one page of the project's live tokens matching q, in
// List order, starting after q.After. The index sorts as List does (by
// creation time, then by id, since members of equal score sort by member),
// so a page reads the index from the cursor's score on, in batches (growing
// while filters leave the page unfilled), and the records of each batch in
// one pipeline, until the page is full.
func (s *Store) ListPage(ctx context.Context, q auth.ListQuery) (auth.ListPage, error) {
	if q.Limit <= 0 {
		return auth.ListPage{}, errors.New("redisstore: list page: the limit must be above zero")
	}
	key := s.projectKey(q.ProjectID)
	from := "-inf"
	if !q.After.IsZero() {
		from = strconv.FormatInt(q.After.CreatedAt.UnixMilli(), 10)
	}
	// Batches grow while filters leave pages unfilled, up to maxBatch.
	const maxBatch = 1000
	batch := int64(max(q.Limit+1, 16))
	page := auth.ListPage{Tokens: make([]*auth.Token, 0, q.Limit)}
	var stale []any
	for offset := int64(0); ; offset, batch = offset+batch, min(2*batch, maxBatch) {
		lctx, cancel := s.bound(ctx)
		ids, err := s.client.ZRangeByScore(lctx, key, &redis.ZRangeBy{Min: from, Max: "+inf", Offset: offset, Count: batch}).Result()
		cancel()
		if err != nil {
			return auth.ListPage{}, s.unavailable(fmt.Sprintf("list project %d", q.ProjectID), err)
		}
		toks, gone, err := s.getMany(ctx, ids)
		if err != nil {
			return auth.ListPage{}, fmt.Errorf("redisstore: list project %d: %w", q.ProjectID, err)
		}
		stale = append(stale, gone...)
		for _, t := range toks {
			if t == nil || q.After.Passed(t) {
				continue
			}
			if t.Revoked() || t.ProjectID != q.ProjectID {
				stale = append(stale, t.ID)
				continue
			}
			if !q.Matches(t) {
				continue
			}
			if len(page.Tokens) == q.Limit {
				page.Next = auth.CursorAfter(page.Tokens[len(page.Tokens)-1])
				s.dropStale(ctx, key, q.ProjectID, stale)
				return page, nil
			}
			page.Tokens = append(page.Tokens, t)
		}
		if int64(len(ids)) < batch {
			s.dropStale(ctx, key, q.ProjectID, stale)
			return page, nil
		}
	}
}

// getMany reads the records of ids in one pipeline, in order; a missing
// record is nil in toks and its id is in gone.
func (s *Store) getMany(ctx context.Context, ids []string) (toks []*auth.Token, gone []any, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	pctx, cancel := s.bound(ctx)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(pctx, s.tokenKey(id))
		}
		return nil
	}); err != nil {
		return nil, nil, s.unavailable("read records", err)
	}
	toks = make([]*auth.Token, len(ids))
	for i, cmd := range cmds {
		if len(cmd.Val()) == 0 {
			gone = append(gone, ids[i])
			continue
		}
		if toks[i], err = decode(ids[i], cmd.Val()); err != nil {
			return nil, nil, err
		}
	}
	return toks, gone, nil
}

// dropStale removes index entries without a live record; best effort.
func (s *Store) dropStale(ctx context.Context, key string, project int64, stale []any) {
	if len(stale) == 0 {
		return
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.client.ZRem(rctx, key, stale...).Err(); err != nil {
		s.log.Warn("redisstore: removing stale index entries", "project", project, "count", len(stale), "err", err)
	}
}

// addUsageScript adds counts to a usage hash. KEYS[1] is the hash; ARGV[1]
// its TTL in milliseconds, ARGV[2] the newest minute outside the window,
// ARGV[3] the recorder (empty when unknown), ARGV[4] its batch, ARGV[5] the
// batch's newest minute, then field/increment pairs. A recorder's batches
// are applied in order and each once: the field r:<recorder> keeps the last
// batch applied ("batch:minute"), and a batch not newer is skipped (a
// retry of a flush Redis partly applied). At most once an hour it drops the
// fields of minutes outside the window, and the r: fields of recorders
// silent since.
var addUsageScript = redis.NewScript(`
local oldest = tonumber(ARGV[2])
local applied = 1
if ARGV[3] ~= '' then
	local f = 'r:' .. ARGV[3]
	local cur = redis.call('HGET', KEYS[1], f)
	local last = cur and tonumber(string.match(cur, '^(%d+):'))
	if last and last >= tonumber(ARGV[4]) then
		applied = 0
	else
		redis.call('HSET', KEYS[1], f, ARGV[4] .. ':' .. ARGV[5])
	end
end
if applied == 1 then
	for i = 6, #ARGV, 2 do
		redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1])
	end
end
local pruned = tonumber(redis.call('HGET', KEYS[1], 'pruned') or '0')
if pruned < oldest - 60 then
	local all = redis.call('HGETALL', KEYS[1])
	for i = 1, #all, 2 do
		local f = all[i]
		local m = tonumber(string.match(f, '^(%d+):'))
		if not m and string.sub(f, 1, 2) == 'r:' then
			m = tonumber(string.match(all[i+1], ':(%d+)$'))
		end
		if m and m <= oldest then
			redis.call('HDEL', KEYS[1], f)
		end
	end
	redis.call('HSET', KEYS[1], 'pruned', oldest)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return applied
`)

// lastUsedScript raises KEYS[1]'s last_used to ARGV[1] (Unix ms), if the
// record exists: a record is never created by it.
var lastUsedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'last_used') or '0')
if tonumber(ARGV[1]) > cur then
	redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
end
return 1
`)

// AddUsage adds flushed usage counts in one pipeline: per token, one
// script on its usage hash and one raising last_used on its record.
func (s *Store) AddUsage(ctx context.Context, recs []auth.UsageRecord) error {
	// One script call per token and batch, in the order the batches come
	// (a recorder sends older ones first), so that each is applied once.
	type group struct {
		token, recorder string
		batch           uint64
		minute          int64
		fields          map[string]int64
	}
	type groupKey struct {
		token, recorder string
		batch           uint64
	}
	groups := map[groupKey]*group{}
	var order []*group
	last := map[string]int64{}
	var tokens []string
	for _, r := range recs {
		gk := groupKey{r.TokenID, r.Recorder, r.Batch}
		g := groups[gk]
		if g == nil {
			g = &group{token: r.TokenID, recorder: r.Recorder, batch: r.Batch, fields: map[string]int64{}}
			groups[gk] = g
			order = append(order, g)
		}
		m := auth.UnixMinute(r.Minute)
		g.minute = max(g.minute, m)
		prefix := strconv.FormatInt(m, 10) + ":"
		for c, n := range r.Counts {
			g.fields[prefix+c.String()] += n
		}
		if _, ok := last[r.TokenID]; !ok {
			tokens = append(tokens, r.TokenID)
		}
		last[r.TokenID] = max(last[r.TokenID], r.LastUsed.UnixMilli())
	}
	if len(order) == 0 {
		return nil
	}
	oldest := strconv.FormatInt(auth.UnixMinute(s.now().Add(-auth.UsageWindow)), 10)
	ttl := strconv.FormatInt(usageTTL.Milliseconds(), 10)
	pctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for _, g := range order {
			args := make([]any, 0, 5+2*len(g.fields))
			args = append(args, ttl, oldest, g.recorder, g.batch, g.minute)
			for f, n := range g.fields {
				args = append(args, f, n)
			}
			addUsageScript.Eval(pctx, p, []string{s.usageKey(g.token)}, args...)
		}
		for _, id := range tokens {
			lastUsedScript.Eval(pctx, p, []string{s.tokenKey(id)}, last[id])
		}
		return nil
	})
	if err != nil {
		return s.unavailable(fmt.Sprintf("add usage of %d tokens", len(tokens)), err)
	}
	return nil
}

// readUsageScript sums a usage hash's counts of the minutes after ARGV[1],
// by code: a flat array of code, count pairs.
var readUsageScript = redis.NewScript(`
local sums = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
	local m, code = string.match(all[i], '^(%d+):(.+)$')
	if m and tonumber(m) > tonumber(ARGV[1]) then
		sums[code] = (sums[code] or 0) + tonumber(all[i+1])
	end
end
local out = {}
for code, n in pairs(sums) do
	out[#out+1] = code
	out[#out+1] = tostring(n)
end
return out
`)

// UsageOf returns the usage of each of ids over the window before now, in
// one pipeline (sums are made in Redis); ids never used are left out.
func (s *Store) UsageOf(ctx context.Context, ids []string, now time.Time) (map[string]auth.TokenUsage, error) {
	out := make(map[string]auth.TokenUsage, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	oldest := strconv.FormatInt(auth.UnixMinute(now.Add(-auth.UsageWindow)), 10)
	pctx, cancel := s.bound(ctx)
	defer cancel()
	sums := make([]*redis.Cmd, len(ids))
	lasts := make([]*redis.StringCmd, len(ids))
	_, err := s.client.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			sums[i] = readUsageScript.Eval(pctx, p, []string{s.usageKey(id)}, oldest)
			lasts[i] = p.HGet(pctx, s.tokenKey(id), "last_used")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.unavailable(fmt.Sprintf("read usage of %d tokens", len(ids)), err)
	}
	for i, id := range ids {
		var tu auth.TokenUsage
		if ms, err := strconv.ParseInt(lasts[i].Val(), 10, 64); err == nil {
			tu.LastUsed = time.UnixMilli(ms).UTC()
		}
		pairs, err := sums[i].StringSlice()
		if err != nil {
			return nil, s.unavailable("read usage of "+id, err)
		}
		for j := 0; j+1 < len(pairs); j += 2 {
			c, ok := auth.ParseCode(pairs[j])
			n, err := strconv.ParseInt(pairs[j+1], 10, 64)
			if !ok || err != nil {
				continue
			}
			if tu.Counts == nil {
				tu.Counts = map[auth.Code]int64{}
			}
			tu.Counts[c] += n
		}
		if !tu.LastUsed.IsZero() || len(tu.Counts) > 0 {
			out[id] = tu
		}
	}
	return out, nil
}

// scanTokens calls fn with each SCAN batch of token record keys, on every
// master of a Cluster.
func (s *Store) scanTokens(ctx context.Context, fn func(ctx context.Context, c redis.Cmdable, keys []string) error) error {
	walk := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			sctx, cancel := s.bound(ctx)
			keys, next, err := c.Scan(sctx, cursor, globEscape(s.prefix)+"tok:*", 1000).Result()
			cancel()
			if err != nil {
				return s.unavailable("scan records", err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, c, keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return walk(ctx, node) })
	}
	return walk(ctx, s.client)
}

// AppendAudit appends ev to its project's audit stream, setting its ID.
func (s *Store) AppendAudit(ctx context.Context, ev *auth.AuditEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("redisstore: encoding an audit event: %w", err)
	}
	limit := int64(orDefault(s.auditMax, DefaultAuditMaxEvents))
	actx, cancel := s.bound(ctx)
	defer cancel()
	id, err := s.client.XAdd(actx, &redis.XAddArgs{
		Stream: s.auditKey(ev.ProjectID),
		MaxLen: limit,
		Approx: true,
		Values: []any{"e", string(data)},
	}).Result()
	if err != nil {
		return s.unavailable("append audit event", err)
	}
	ev.ID = id
	return nil
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// ReadAudit returns a page of the project's audit trail, newest first
// (XREVRANGE from just before q.Before).
func (s *Store) ReadAudit(ctx context.Context, q auth.AuditQuery) (auth.AuditPage, error) {
	if q.Limit <= 0 {
		return auth.AuditPage{}, errors.New("redisstore: read audit: the limit must be above zero")
	}
	end := "+"
	if q.Before != "" {
		if !streamID.MatchString(q.Before) {
			return auth.AuditPage{}, fmt.Errorf("redisstore: read audit: cursor %q: %w", q.Before, auth.ErrBadCursor)
		}
		end = "(" + q.Before
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	msgs, err := s.client.XRevRangeN(rctx, s.auditKey(q.ProjectID), end, "-", int64(q.Limit)+1).Result()
	if err != nil {
		return auth.AuditPage{}, s.unavailable(fmt.Sprintf("read the audit trail of project %d", q.ProjectID), err)
	}
	page := auth.AuditPage{Events: make([]auth.AuditEvent, 0, min(len(msgs), q.Limit))}
	for _, m := range msgs {
		if len(page.Events) == q.Limit {
			page.Next = page.Events[len(page.Events)-1].ID
			break
		}
		raw, _ := m.Values["e"].(string)
		var ev auth.AuditEvent
		if err := json.Unmarshal([]byte(raw), &ev); err != nil {
			s.log.Warn("redisstore: unreadable audit event", "project", q.ProjectID, "id", m.ID, "err", err)
			continue
		}
		ev.ID = m.ID
		page.Events = append(page.Events, ev)
	}
	return page, nil
}
