// Package redisstore is the auth.Store shared by every replica of tswgate:
// token records live in Redis (standalone, Sentinel or Cluster) and changes
// are announced on a Pub/Sub channel.
//
// # Data model
//
// Each token is one hash at Prefix+"tok:"+id with the fields
//
//	project  decimal project id
//	name     display name
//	role     "owner" or "accounting"
//	status   "active" or "inactive"
//	created  creation time, Unix milliseconds
//	expires  expiry time, Unix milliseconds (absent: never expires)
//	revoked  revocation time, Unix milliseconds (absent: live)
//	rate     per-token rate limit, requests per second (absent: the role's)
//	burst    burst of that rate limit (absent: ceil(rate))
//	shadow   "1" when that limit is in shadow mode (absent: enforced)
//	rotated_to  id of the successor of a token rotated with a grace period
//	         (absent: not rotated so; records written before it load without)
//	replaced "1" when a rotation without grace period replaced the token
//	         (absent: not so)
//	scopes   the token's scopes list, permission names joined by ","
//	         (absent: none, the role decides)
//	allowed_ips  the client address ranges the token may be used from,
//	         CIDR ranges joined by "," (absent: any address)
//	lineage  id of the root of the token's rate-limit lineage (absent: the
//	         token is a root; records written before it load without)
//	lineage_rate, lineage_burst, lineage_shadow  the lineage's limit, as
//	         rate, burst and shadow (absent: none)
//	lineage_via  the ancestors between the root and the token
//	         (auth.Lineage.Via), root's child first, joined by ",", each
//	         "id/rate/burst/shadow" (shadow 1 or 0); absent: none
//	lineage_successor  "1" when the nearest ancestor is the first token of
//	         the token's own rotations (auth.Lineage.Successor)
//	hash     HMAC-SHA256 of the credential, 64 hex digits (absent on tombstones)
//	pepper   id of the pepper hash was made with (absent on tombstones)
//
// and each project has an index, the sorted set Prefix+"proj:"+projectID,
// whose members are the ids of its live tokens scored by creation time in
// Unix milliseconds, so that it sorts as List must (oldest first, then id).
//
// No script or transaction touches keys of two hash slots, so the store
// works on Redis Cluster. Create and Revoke are Lua scripts on the
// record's key and the background indexes of its slot (index.go); Update
// is an optimistic transaction (WATCH, read, MULTI/EXEC) on it.
// CreateWithin (limit.go) adds the project's index to Create's script
// when it shares the record's slot, and reserves the index entry in a
// script of its own before the record when it does not. The record
// is the truth; the project index is maintained after it and may briefly
// lag: List skips (and removes) entries without a live record.
//
// Every change is published on Options.Channel as "<id> <unix nanoseconds>",
// the id of the changed record and the publication time; every change of
// a project policy on Options.Channel+":policies" as "<project id> <unix
// nanoseconds>".
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// Defaults of Options.
const (
	DefaultPrefix           = "tswgate:"
	DefaultRevokedRetention = 30 * 24 * time.Hour
	DefaultTimeout          = 100 * time.Millisecond
)

// ErrClosed is returned by Watch once the Store is closed.
var ErrClosed = errors.New("redisstore: store closed")

// Options configure a Store. Only Client is required.
type Options struct {
	// Client reaches Redis. It is owned by the caller, who closes it after
	// the Store. It must be created with ContextTimeoutEnabled set (for a
	// redis.Client, redis.ClusterClient or redis.Ring New checks it):
	// without it go-redis ignores context deadlines on the socket and
	// Timeout bounds nothing.
	Client redis.UniversalClient
	// Prefix starts every key; DefaultPrefix when empty. Replicas sharing
	// a store must use the same prefix.
	Prefix string
	// RevokedRetention is how long a tombstone is kept after revocation;
	// DefaultRevokedRetention when zero.
	RevokedRetention time.Duration
	// Timeout bounds each Redis call; DefaultTimeout when zero.
	Timeout time.Duration
	// Channel is the Pub/Sub channel changes are announced on;
	// Prefix+"events" when empty.
	Channel string
	// Logger receives the store's operational messages; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// AuditMaxEvents caps each project's audit stream (about: see
	// activity.go); DefaultAuditMaxEvents when zero.
	AuditMaxEvents int
	// WarnBefore is how long before its expiry a token is returned by
	// ClaimExpiring (see index.go); DefaultWarnBefore when zero. Replicas
	// sharing a store must use the same value.
	WarnBefore time.Duration
}

// Store is an auth.Store in Redis. It is safe for concurrent use.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	channel   string
	retention time.Duration
	timeout   time.Duration
	log       *slog.Logger
	now       func() time.Time
	auditMax  int

	// warnBefore is Options.WarnBefore; sharded tells that the indexes
	// have one shard per Cluster hash slot (see index.go).
	warnBefore time.Duration
	sharded    bool
	// indexed is set once the indexes are known to be reconciled;
	// reconciling while this replica reconciles them, in bg.
	indexed, reconciling atomic.Bool
	bg                   sync.WaitGroup

	// pingInterval is how long Watch waits for a message before it checks
	// the subscription with a PING, and then for the PING's reply.
	pingInterval time.Duration
	// checkInterval is how often Watch checks that its subscription is on
	// the server the client reaches (see Watch); zero: never.
	checkInterval time.Duration

	// ctx is canceled by Close, which stops every Watch.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ auth.Store = (*Store)(nil)

// New returns a Store that keeps its records through opts.Client.
func New(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: Options.Client is nil")
	}
	if enabled, known := contextTimeoutEnabled(opts.Client); known && !enabled {
		return nil, errors.New("redisstore: the Redis client must be created with ContextTimeoutEnabled: true " +
			"(redis.ParseURL does not set it), or per-call timeouts have no effect")
	}
	s := &Store{
		client:       opts.Client,
		prefix:       orDefault(opts.Prefix, DefaultPrefix),
		retention:    orDefault(opts.RevokedRetention, DefaultRevokedRetention),
		timeout:      orDefault(opts.Timeout, DefaultTimeout),
		log:          opts.Logger,
		now:          opts.Now,
		auditMax:     opts.AuditMaxEvents,
		warnBefore:   orDefault(opts.WarnBefore, DefaultWarnBefore),
		pingInterval: 15 * time.Second,
	}
	if s.retention < 0 || s.timeout < 0 || s.warnBefore < 0 {
		return nil, errors.New("redisstore: RevokedRetention, Timeout and WarnBefore must not be negative")
	}
	if _, ok := opts.Client.(*redis.ClusterClient); ok && !hasHashTag(s.prefix) {
		s.sharded = true
	}
	s.channel = orDefault(opts.Channel, s.prefix+"events")
	if _, ok := opts.Client.(*redis.Client); ok {
		// A single server or Sentinel: a failover can leave the
		// subscription behind (see Watch). Cluster clients need no check.
		s.checkInterval = time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// contextTimeoutEnabled reports whether c honors context deadlines, when
// its type tells.
func contextTimeoutEnabled(c redis.UniversalClient) (enabled, known bool) {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}

func (s *Store) tokenKey(id string) string { return s.prefix + "tok:" + id }

func (s *Store) projectKey(project int64) string {
	return s.prefix + "proj:" + strconv.FormatInt(project, 10)
}

// bound limits one Redis call to the store's timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// unavailable wraps a Redis or network error so that it matches both
// auth.ErrUnavailable and the cause.
func (s *Store) unavailable(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("redisstore: %s: %w: no answer in time (per-call timeout %s): %w", op, auth.ErrUnavailable, s.timeout, err)
	}
	return fmt.Errorf("redisstore: %s: %w: %w", op, auth.ErrUnavailable, err)
}

func notFound(id string) error {
	return fmt.Errorf("redisstore: token %s: %w", id, auth.ErrNotFound)
}

// Get returns the record of id, which may be a tombstone.
func (s *Store) Get(ctx context.Context, id string) (*auth.Token, error) {
	if !auth.ValidID(id) {
		return nil, notFound(id) // no such record can have been created
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	fields, err := s.client.HGetAll(ctx, s.tokenKey(id)).Result()
	if err != nil {
		return nil, s.unavailable("get "+id, err)
	}
	if len(fields) == 0 {
		return nil, notFound(id)
	}
	return decode(id, fields)
}

// createScript stores a record unless its key exists, and indexes it.
// KEYS and ARGV start as syncLua's; then ARGV[3] is a TTL in milliseconds
// ("0": none), then field/value pairs.
var createScript = redis.NewScript(syncLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then
	return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] ~= '0' then
	redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return 1
`)

// Create stores a new record, indexes it and announces it (a replica may
// hold a negative cache entry for the id). A failure to announce is only
// logged: the record is stored.
//
// If the record is stored but indexing it fails, Create returns an error
// matching auth.ErrUnavailable and the token exists without being listed.
// Create may also store a tombstone (a record with RevokedAt set), for
// imports; it is kept for the retention time from its revocation.
func (s *Store) Create(ctx context.Context, t *auth.Token) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("redisstore: create %s: invalid record: %s", t.ID, oneLine(err))
	}
	cctx, cancel := s.bound(ctx)
	created, err := createScript.Run(cctx, s.client, s.indexKeys(t.ID), s.createArgs(t)...).Int()
	cancel()
	if err != nil {
		return s.unavailable("create "+t.ID, err)
	}
	if created == 0 {
		return fmt.Errorf("redisstore: create %s: %w", t.ID, auth.ErrExists)
	}

	if !t.Revoked() {
		cctx, cancel := s.bound(ctx)
		err := s.client.ZAdd(cctx, s.projectKey(t.ProjectID),
			redis.Z{Score: float64(t.CreatedAt.UnixMilli()), Member: t.ID}).Err()
		cancel()
		if err != nil {
			return s.unavailable(fmt.Sprintf("create %s: record stored but not indexed in project %d", t.ID, t.ProjectID), err)
		}
	}

	if err := s.publish(ctx, t.ID); err != nil {
		s.log.Warn("redisstore: token created but not announced", "id", t.ID, "err", err)
	}
	return nil
}

// createArgs returns createScript's arguments for t.
func (s *Store) createArgs(t *auth.Token) []any {
	ttl := "0"
	if t.Revoked() {
		left := max(t.RevokedAt.Add(s.retention).Sub(s.now()), time.Millisecond)
		ttl = strconv.FormatInt(left.Milliseconds(), 10)
	}
	return s.indexArgs(t.ID, append([]any{ttl}, encode(t)...)...)
}

// CountProject returns the number of entries of the project's index: its
// live tokens (an entry whose record vanished counts until a List drops it).
func (s *Store) CountProject(ctx context.Context, projectID int64) (int, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := s.client.ZCard(cctx, s.projectKey(projectID)).Result()
	if err != nil {
		return 0, s.unavailable(fmt.Sprintf("count project %d", projectID), err)
	}
	return int(n), nil
}

// List returns the project's live tokens, oldest first, ties broken by id,
// as an empty non-nil slice when there are none. Index entries without a
// live record are skipped and removed.
func (s *Store) List(ctx context.Context, projectID int64) ([]*auth.Token, error) {
	key := s.projectKey(projectID)
	lctx, cancel := s.bound(ctx)
	ids, err := s.client.ZRange(lctx, key, 0, -1).Result()
	cancel()
	if err != nil {
		return nil, s.unavailable(fmt.Sprintf("list project %d", projectID), err)
	}
	tokens := make([]*auth.Token, 0, len(ids))
	if len(ids) == 0 {
		return tokens, nil
	}

	lctx, cancel = s.bound(ctx)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.client.Pipelined(lctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(lctx, s.tokenKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, s.unavailable(fmt.Sprintf("list project %d", projectID), err)
	}

	var stale []any
	for i, cmd := range cmds {
		fields := cmd.Val()
		if len(fields) == 0 {
			stale = append(stale, ids[i])
			continue
		}
		t, err := decode(ids[i], fields)
		if err != nil {
			return nil, fmt.Errorf("redisstore: list project %d: %w", projectID, err)
		}
		if t.Revoked() || t.ProjectID != projectID {
			stale = append(stale, ids[i])
			continue
		}
		tokens = append(tokens, t)
	}
	slices.SortFunc(tokens, func(a, b *auth.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	if len(stale) > 0 {
		// Best effort: a later List retries.
		rctx, cancel := s.bound(ctx)
		err := s.client.ZRem(rctx, key, stale...).Err()
		cancel()
		if err != nil {
			s.log.Warn("redisstore: removing stale index entries", "project", projectID, "count", len(stale), "err", err)
		} else {
			s.log.Info("redisstore: removed stale index entries", "project", projectID, "count", len(stale))
		}
	}
	return tokens, nil
}

// revokeScript turns KEYS[1] into a tombstone revoked at ARGV[3] (Unix
// milliseconds) that expires after ARGV[4] milliseconds, unless it is one
// already, and takes it out of the indexes (KEYS and the first ARGV as
// syncLua's). It returns the record's fields, or nil when there is no
// record.
var revokeScript = redis.NewScript(syncLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then
	return false
end
if redis.call('HEXISTS', KEYS[1], 'revoked') == 0 then
	redis.call('HSET', KEYS[1], 'revoked', ARGV[3])
	redis.call('HDEL', KEYS[1], 'hash', 'pepper')
	redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`)

// Revoke turns the record of id into a tombstone revoked at at (now when at
// is zero), removes it from its project's index and announces the change.
// Revoking a tombstone returns it unchanged, but removes and announces it
// again, so retrying a Revoke that failed half-way completes it. An error
// matching auth.ErrUnavailable after the record changed (failed removal or
// announcement) means: retry.
func (s *Store) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	if !auth.ValidID(id) {
		return nil, notFound(id)
	}
	if at.IsZero() {
		at = s.now()
	}
	rctx, cancel := s.bound(ctx)
	reply, err := revokeScript.Run(rctx, s.client, s.indexKeys(id),
		s.indexArgs(id, at.UnixMilli(), s.retention.Milliseconds())...).StringSlice()
	cancel()
	if errors.Is(err, redis.Nil) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, s.unavailable("revoke "+id, err)
	}
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("redisstore: revoke %s: odd number of fields in reply", id)
	}
	fields := make(map[string]string, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		fields[reply[i]] = reply[i+1]
	}
	t, err := decode(id, fields)
	if err != nil {
		return nil, fmt.Errorf("redisstore: revoke %s: %w", id, err)
	}

	rctx, cancel = s.bound(ctx)
	err = s.client.ZRem(rctx, s.projectKey(t.ProjectID), id).Err()
	cancel()
	if err != nil {
		return nil, s.unavailable(fmt.Sprintf("revoke %s: revoked but not removed from the index of project %d", id, t.ProjectID), err)
	}
	if err := s.publish(ctx, id); err != nil {
		return nil, fmt.Errorf("redisstore: revoke %s: revoked but not announced: %w", id, err)
	}
	return t, nil
}

// Bounds of Update's retries when another writer changes the record between
// its read and its write: at most updateAttempts tries, each retry after a
// random pause below updateBackoff doubled per failed try (so at most 64
// times updateBackoff), which spreads out writers contending for one token:
// under a second in all, even for dozens of writers at once.
const (
	updateAttempts = 20
	updateBackoff  = time.Millisecond
	updateMaxShift = 6
)

// optionalFields are the fields a live record may lack; Update deletes
// those its new record does not set.
var optionalFields = []string{"expires", "rate", "burst", "shadow", "rotated_to", "replaced", "scopes", "allowed_ips",
	"lineage", "lineage_rate", "lineage_burst", "lineage_shadow", "lineage_via", "lineage_successor"}

// Update changes the live record of id (see auth.Store.Update) in an
// optimistic transaction on its key: WATCH the key, read the record, call
// fn on it, then write it in MULTI/EXEC, which fails if anything changed the
// key meanwhile; it then tries again from the read (fn is called again), up
// to updateAttempts times. The change is then announced. An error matching
// auth.ErrUnavailable after the record changed (failed announcement) means:
// retry.
func (s *Store) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	if !auth.ValidID(id) {
		return nil, notFound(id)
	}
	keys := s.indexKeys(id)
	var updated *auth.Token
	for attempt := 1; ; attempt++ {
		var final error // an outcome about the record, not a Redis failure
		uctx, cancel := s.bound(ctx)
		err := s.client.Watch(uctx, func(tx *redis.Tx) error {
			var err error
			updated, final, err = s.updateTx(uctx, tx, keys, id, fn)
			if final != nil {
				return final
			}
			return err
		}, keys[0])
		cancel()
		switch {
		case final != nil:
			return nil, final
		case err == nil:
		case errors.Is(err, redis.TxFailedErr) && attempt < updateAttempts:
			pause := time.Duration(rand.Int64N(int64(updateBackoff) << min(attempt, updateMaxShift)))
			if err := sleep(ctx, pause); err != nil {
				return nil, s.unavailable("update "+id, err)
			}
			continue
		case errors.Is(err, redis.TxFailedErr):
			return nil, fmt.Errorf("redisstore: update %s: %w: the record kept changing during %d attempts: %w",
				id, auth.ErrUnavailable, attempt, err)
		default:
			return nil, s.unavailable("update "+id, err)
		}
		break
	}
	if err := s.publish(ctx, id); err != nil {
		return nil, fmt.Errorf("redisstore: update %s: updated but not announced: %w", id, err)
	}
	return updated, nil
}

// updateTx is one attempt of Update inside WATCH: it reads the record,
// applies fn, and writes the record and its indexes in one MULTI/EXEC.
// final is an outcome about the record (not found, revoked, refused by
// fn, an invalid change); err a Redis failure (redis.TxFailedErr when the
// record changed meanwhile).
func (s *Store) updateTx(ctx context.Context, tx *redis.Tx, keys []string, id string, fn func(*auth.Token) error) (updated *auth.Token, final, err error) {
	key := keys[0]
	fields, err := tx.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, nil, err
	}
	if len(fields) == 0 {
		return nil, notFound(id), nil
	}
	old, err := decode(id, fields)
	if err != nil {
		return nil, fmt.Errorf("redisstore: update %s: %w", id, err), nil
	}
	if old.Revoked() {
		return nil, fmt.Errorf("redisstore: update %s: %w", id, auth.ErrRevoked), nil
	}
	t := *old
	if err := fn(&t); err != nil {
		return nil, fmt.Errorf("redisstore: update %s: %w", id, err), nil
	}
	if err := auth.ValidateUpdate(old, &t); err != nil {
		return nil, fmt.Errorf("redisstore: update %s: invalid change: %s", id, oneLine(err)), nil
	}
	set := encode(&t)
	fields = fieldMap(set)
	var unset []string
	for _, f := range optionalFields {
		if _, ok := fields[f]; !ok {
			unset = append(unset, f)
		}
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, set...)
		if len(unset) > 0 {
			p.HDel(ctx, key, unset...)
		}
		syncScript.Eval(ctx, p, keys, s.indexArgs(id)...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// What is stored, at the store's millisecond precision.
	updated, err = decode(id, fields)
	return updated, nil, err
}

// sleep pauses for d, or until ctx is done (returning its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fieldMap turns field/value pairs from encode into a map for decode.
func fieldMap(pairs []any) map[string]string {
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(string)
	}
	return m
}

// publish announces a change of id to every watcher.
func (s *Store) publish(ctx context.Context, id string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	msg := id + " " + strconv.FormatInt(s.now().UnixNano(), 10)
	if err := s.client.Publish(ctx, s.channel, msg).Err(); err != nil {
		return s.unavailable("publish "+id, err)
	}
	return nil
}

// Ping checks that Redis answers, within the store's timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.unavailable("ping", err)
	}
	return nil
}

// Close stops every Watch. It does not close the client, which the caller
// owns; Get, Create, List, Revoke and Update keep working as long as it is
// open.
func (s *Store) Close() error {
	s.cancel()
	s.bg.Wait()
	return nil
}

// encode returns the hash fields of t as field/value pairs.
func encode(t *auth.Token) []any {
	f := []any{
		"project", strconv.FormatInt(t.ProjectID, 10),
		"name", t.Name,
		"role", t.Role.String(),
		"status", t.Status.String(),
		"created", strconv.FormatInt(t.CreatedAt.UnixMilli(), 10),
	}
	if !t.ExpiresAt.IsZero() {
		f = append(f, "expires", strconv.FormatInt(t.ExpiresAt.UnixMilli(), 10))
	}
	if t.RateLimit != 0 {
		f = append(f, "rate", strconv.FormatFloat(t.RateLimit, 'g', -1, 64))
	}
	if t.RateBurst != 0 {
		f = append(f, "burst", strconv.Itoa(t.RateBurst))
	}
	if t.RateShadow {
		f = append(f, "shadow", "1")
	}
	if t.RotatedTo != "" {
		f = append(f, "rotated_to", t.RotatedTo)
	}
	if t.Replaced {
		f = append(f, "replaced", "1")
	}
	if t.Scopes != 0 {
		f = append(f, "scopes", t.Scopes.String())
	}
	if len(t.AllowedIPs) > 0 {
		f = append(f, "allowed_ips", strings.Join(auth.FormatPrefixes(t.AllowedIPs), ","))
	}
	f = appendLineage(f, t.Lineage)
	if t.Revoked() {
		f = append(f, "revoked", strconv.FormatInt(t.RevokedAt.UnixMilli(), 10))
	} else {
		f = append(f, "hash", fmt.Sprintf("%x", t.SecretHash[:]), "pepper", t.PepperID)
	}
	return f
}

// decode parses the hash fields of the record of id.
func decode(id string, f map[string]string) (*auth.Token, error) {
	var errs []error
	t := &auth.Token{ID: id, Name: f["name"], PepperID: f["pepper"], RotatedTo: f["rotated_to"], Replaced: f["replaced"] == "1"}
	var err error
	if t.ProjectID, err = strconv.ParseInt(f["project"], 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("project: %w", err))
	}
	if t.Role, err = auth.ParseRole(f["role"]); err != nil {
		errs = append(errs, err)
	}
	if t.Status, err = auth.ParseStatus(f["status"]); err != nil {
		errs = append(errs, err)
	}
	for _, tf := range []struct {
		name     string
		dst      *time.Time
		required bool
	}{
		{"created", &t.CreatedAt, true},
		{"expires", &t.ExpiresAt, false},
		{"revoked", &t.RevokedAt, false},
	} {
		v, ok := f[tf.name]
		if !ok {
			if tf.required {
				errs = append(errs, fmt.Errorf("%s: missing", tf.name))
			}
			continue
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not Unix milliseconds", tf.name))
			continue
		}
		*tf.dst = time.UnixMilli(ms).UTC()
	}
	if err := decodeLimits(f, t); err != nil {
		errs = append(errs, err)
	}
	if v, ok := f["scopes"]; ok {
		if t.Scopes, err = auth.ParsePermSet([]string{v}); err != nil || t.Scopes == 0 {
			errs = append(errs, errors.New("scopes: not a list of permission names"))
		}
	}
	if v, ok := f["allowed_ips"]; ok {
		if t.AllowedIPs, err = auth.ParsePrefixes([]string{v}); err != nil || len(t.AllowedIPs) == 0 {
			errs = append(errs, errors.New("allowed_ips: not a list of CIDR ranges"))
		}
	}
	if h, ok := f["hash"]; ok {
		if t.SecretHash, err = auth.ParseHash(h); err != nil {
			errs = append(errs, err)
		}
	} else if !t.Revoked() {
		errs = append(errs, errors.New("secret hash: missing"))
	}
	if len(errs) == 0 {
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("redisstore: record %s is corrupt: %s", id, oneLine(errors.Join(errs...)))
	}
	return t, nil
}

// decodeLimits parses the rate-limit fields of a record into t: its own
// limit (rate, burst, shadow) and its lineage's.
func decodeLimits(f map[string]string, t *auth.Token) error {
	var errs [2]error
	t.RateLimit, t.RateBurst, t.RateShadow, errs[0] = decodeRate(f, "")
	t.Lineage, errs[1] = decodeLineage(f)
	return errors.Join(errs[:]...)
}

// decodeRate parses a limit's fields, named prefix+"rate", "burst" and
// "shadow" (each absent: zero).
func decodeRate(f map[string]string, prefix string) (rate float64, burst int, shadow bool, err error) {
	var errs []error
	if v, ok := f[prefix+"rate"]; ok {
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			errs = append(errs, errors.New(prefix+"rate: not a number"))
		}
	}
	if v, ok := f[prefix+"burst"]; ok {
		if burst, err = strconv.Atoi(v); err != nil {
			errs = append(errs, errors.New(prefix+"burst: not an integer"))
		}
	}
	if v, ok := f[prefix+"shadow"]; ok {
		if v != "1" {
			errs = append(errs, errors.New(prefix+"shadow: not 1"))
		}
		shadow = true
	}
	return rate, burst, shadow, errors.Join(errs...)
}

// appendLineage appends the fields of a token's lineage to f.
func appendLineage(f []any, l auth.Lineage) []any {
	if l.Root != "" {
		f = append(f, "lineage", l.Root)
	}
	if l.Rate != 0 {
		f = append(f, "lineage_rate", strconv.FormatFloat(l.Rate, 'g', -1, 64))
	}
	if l.Burst != 0 {
		f = append(f, "lineage_burst", strconv.Itoa(l.Burst))
	}
	if l.Shadow {
		f = append(f, "lineage_shadow", "1")
	}
	if d := l.Depth(); d > 1 {
		links := make([]string, 0, d-1)
		for i := 1; i < d; i++ {
			a := l.Ancestor(i)
			shadow := "0"
			if a.Shadow {
				shadow = "1"
			}
			links = append(links, a.ID+"/"+strconv.FormatFloat(a.Rate, 'g', -1, 64)+"/"+strconv.Itoa(a.Burst)+"/"+shadow)
		}
		f = append(f, "lineage_via", strings.Join(links, ","))
	}
	if l.Successor {
		f = append(f, "lineage_successor", "1")
	}
	return f
}

// decodeLineage parses the lineage fields of a record (none: the zero
// Lineage, a root).
func decodeLineage(f map[string]string) (auth.Lineage, error) {
	l := auth.Lineage{Root: f["lineage"]}
	var err error
	l.Rate, l.Burst, l.Shadow, err = decodeRate(f, "lineage_")
	if v, ok := f["lineage_via"]; ok {
		err = errors.Join(err, decodeVia(v, &l))
	}
	if v, ok := f["lineage_successor"]; ok {
		if v != "1" {
			err = errors.Join(err, errors.New("lineage_successor: not 1"))
		}
		l.Successor = true
	}
	return l, err
}

// decodeVia parses the lineage_via field v into l.Via.
func decodeVia(v string, l *auth.Lineage) error {
	links := strings.Split(v, ",")
	if len(links) > len(l.Via) {
		return fmt.Errorf("lineage_via: more than %d ancestors", len(l.Via))
	}
	for i, s := range links {
		p := strings.Split(s, "/")
		if len(p) != 4 || p[0] == "" || (p[3] != "0" && p[3] != "1") {
			return errors.New("lineage_via: not id/rate/burst/shadow")
		}
		rate, err1 := strconv.ParseFloat(p[1], 64)
		burst, err2 := strconv.Atoi(p[2])
		if err1 != nil || err2 != nil {
			return errors.New("lineage_via: bad rate or burst")
		}
		l.Via[i] = auth.LineageLink{ID: p[0], Rate: rate, Burst: burst, Shadow: p[3] == "1"}
	}
	return nil
}

// oneLine renders a joined error on one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// globEscape quotes the glob characters of a key prefix for SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
