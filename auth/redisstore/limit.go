package redisstore

// Creates within a project's token limit (auth.ActivityStore.CreateWithin).

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// createWithinScript is createScript with the project's index as KEYS[5]:
// it stores and indexes the record only while the index has fewer than
// ARGV[4] entries. ARGV[3] is as createScript's (always "0": a live
// record), ARGV[5] the record's index score (its creation, Unix ms), then
// field/value pairs. It returns {1, n} when stored, {0, n} when the id is
// taken, {2, n} at the limit, n being the entries counted.
var createWithinScript = redis.NewScript(syncLua + `
local n = redis.call('ZCARD', KEYS[5])
if redis.call('EXISTS', KEYS[1]) == 1 then
	return {0, n}
end
if n >= tonumber(ARGV[4]) then
	return {2, n}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
sync(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
return {1, n}
`)

// reserveScript adds ARGV[1] to the project index KEYS[1] with score
// ARGV[3] while it has fewer than ARGV[2] entries. It returns -1 when
// added, -2 when the id is in the index already, else the entries
// counted (at the limit).
var reserveScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
	return -2
end
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then
	return n
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return -1
`)

// CreateWithin is Create while t's project has fewer than limit live
// tokens, counted as CountProject counts them (the entries of the
// project's index).
//
// When the record and the project's index share a hash slot — one server,
// Sentinel, or a Cluster whose prefix has a hash tag — one script counts,
// stores and indexes. On a Cluster without such a prefix they cannot, and
// the create reserves the id's place in the project's index first (one
// script counting and adding), then stores the record, and takes the
// reservation back if the id was taken. A listing that runs between the
// two steps finds no record for the reservation and drops it as stale, so
// creates at that very moment may pass the limit by as many as such
// listings dropped; nothing else can.
func (s *Store) CreateWithin(ctx context.Context, t *auth.Token, limit int) error {
	if limit <= 0 || t.Revoked() {
		return s.Create(ctx, t)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("redisstore: create %s: invalid record: %s", t.ID, oneLine(err))
	}
	if s.sharded {
		return s.createReserved(ctx, t, limit)
	}
	score := strconv.FormatInt(t.CreatedAt.UnixMilli(), 10)
	keys := append(s.indexKeys(t.ID), s.projectKey(t.ProjectID))
	args := s.indexArgs(t.ID, append([]any{"0", limit, score}, encode(t)...)...)
	cctx, cancel := s.bound(ctx)
	reply, err := createWithinScript.Run(cctx, s.client, keys, args...).Int64Slice()
	cancel()
	if err != nil {
		return s.unavailable("create "+t.ID, err)
	}
	if len(reply) != 2 {
		return fmt.Errorf("redisstore: create %s: unexpected reply %v", t.ID, reply)
	}
	switch reply[0] {
	case 0:
		return fmt.Errorf("redisstore: create %s: %w", t.ID, auth.ErrExists)
	case 2:
		return s.limitError(t, int(reply[1]), limit)
	}
	s.announceCreate(ctx, t.ID)
	return nil
}

// createReserved is CreateWithin on a sharded Cluster: reserve the
// index entry, then store the record (see CreateWithin).
func (s *Store) createReserved(ctx context.Context, t *auth.Token, limit int) error {
	key := s.projectKey(t.ProjectID)
	cctx, cancel := s.bound(ctx)
	n, err := reserveScript.Run(cctx, s.client, []string{key}, t.ID, limit, t.CreatedAt.UnixMilli()).Int64()
	cancel()
	switch {
	case err != nil:
		return s.unavailable(fmt.Sprintf("create %s: reserving its place in project %d", t.ID, t.ProjectID), err)
	case n == -2:
		return fmt.Errorf("redisstore: create %s: %w", t.ID, auth.ErrExists)
	case n >= 0:
		return s.limitError(t, int(n), limit)
	}
	cctx, cancel = s.bound(ctx)
	created, err := createScript.Run(cctx, s.client, s.indexKeys(t.ID), s.createArgs(t)...).Int()
	cancel()
	if err != nil {
		// Stored or not, the reservation stays: counted until a listing
		// finds no record for it.
		return s.unavailable("create "+t.ID, err)
	}
	if created == 0 {
		rctx, cancel := s.bound(ctx)
		err := s.client.ZRem(rctx, key, t.ID).Err()
		cancel()
		if err != nil {
			s.log.Warn("redisstore: taking back the index entry of a taken id", "id", t.ID, "project", t.ProjectID, "err", err)
		}
		return fmt.Errorf("redisstore: create %s: %w", t.ID, auth.ErrExists)
	}
	s.announceCreate(ctx, t.ID)
	return nil
}

// limitError is the refusal of a create at the limit, live tokens counted.
func (s *Store) limitError(t *auth.Token, live, limit int) error {
	return fmt.Errorf("redisstore: create %s: %w", t.ID, &auth.TokenLimitError{ProjectID: t.ProjectID, Live: live, Limit: limit})
}

// announceCreate announces a stored record; a failure is only logged, as
// Create's.
func (s *Store) announceCreate(ctx context.Context, id string) {
	if err := s.publish(ctx, id); err != nil {
		s.log.Warn("redisstore: token created but not announced", "id", id, "err", err)
	}
}
