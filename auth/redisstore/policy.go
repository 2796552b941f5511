package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// Project policies: each is the hash Prefix+"policy:"+projectID with the
// fields
//
//	max_lifetime    maximum token lifetime, nanoseconds (absent: no bound)
//	require_expiry  "1" when tokens must have an expiry (absent: they need not)
//	rate, burst     the project's shared rate limit (absent: none)
//	updated         when the policy was set, Unix milliseconds
//
// and the set Prefix+"policies" holds the ids of the projects that have
// one (ProjectPolicies reads it). A set or clear writes both in one
// script, so that a project is in the set exactly when its hash exists.
// On a Redis Cluster whose prefix has no hash tag the two keys are in
// different slots, which no script spans: there the set entry is added
// before the hash is written and removed after it is deleted, so that a
// policy is always listed; an entry without a hash reads as no policy.

func (s *Store) policyKey(projectID int64) string {
	return s.prefix + "policy:" + strconv.FormatInt(projectID, 10)
}

func (s *Store) policiesKey() string { return s.prefix + "policies" }

// ProjectPolicy returns the policy of a project; the zero policy when none
// is set.
func (s *Store) ProjectPolicy(ctx context.Context, projectID int64) (auth.ProjectPolicy, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	fields, err := s.client.HGetAll(ctx, s.policyKey(projectID)).Result()
	if err != nil {
		return auth.ProjectPolicy{}, s.unavailable(fmt.Sprintf("get policy of project %d", projectID), err)
	}
	return decodePolicy(projectID, fields)
}

// SetProjectPolicy stores (or, when p is zero, removes) the policy of a
// project.
func (s *Store) SetProjectPolicy(ctx context.Context, projectID int64, p auth.ProjectPolicy) error {
	if projectID <= 0 {
		return errors.New("redisstore: project id: must be a positive integer")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redisstore: invalid policy: %w", err)
	}
	if err := s.writePolicy(ctx, projectID, policyFields(p)); err != nil {
		return s.unavailable(fmt.Sprintf("set policy of project %d", projectID), err)
	}
	if err := s.publishPolicy(ctx, projectID); err != nil {
		s.log.Warn("redisstore: project policy set but not announced; other replicas reload it periodically",
			"project_id", projectID, "err", err)
	}
	return nil
}

// writePolicy stores the hash fields of project's policy (none: removes
// it) with its set entry.
func (s *Store) writePolicy(ctx context.Context, projectID int64, fields []any) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key, member := s.policyKey(projectID), strconv.FormatInt(projectID, 10)
	if s.sharded {
		return s.setPolicyApart(ctx, key, member, fields)
	}
	return setPolicyScript.Run(ctx, s.client, []string{key, s.policiesKey()}, append([]any{member}, fields...)...).Err()
}

// policyChannel is the Pub/Sub channel policy changes are announced on,
// as "<project id> <unix nanoseconds>", beside the token changes of
// s.channel (replicas that do not know it are not disturbed by them).
func (s *Store) policyChannel() string { return s.channel + ":policies" }

// publishPolicy announces a change of project's policy.
func (s *Store) publishPolicy(ctx context.Context, projectID int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	msg := strconv.FormatInt(projectID, 10) + " " + strconv.FormatInt(s.now().UnixNano(), 10)
	return s.client.Publish(ctx, s.policyChannel(), msg).Err()
}

// parsePolicyMessage reads "<project id> <unix nanoseconds>", the time
// optional as in parseMessage.
func parsePolicyMessage(payload string) (project int64, at time.Time, ok bool) {
	id, rest, _ := strings.Cut(strings.TrimSpace(payload), " ")
	project, err := strconv.ParseInt(id, 10, 64)
	if err != nil || project <= 0 {
		return 0, time.Time{}, false
	}
	if ns, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil && ns > 0 {
		at = time.Unix(0, ns)
	}
	return project, at, true
}

// setPolicyScript replaces the policy hash KEYS[1] and the entry ARGV[1]
// of the set KEYS[2] at once: with field/value pairs (ARGV[2] on) it
// writes the hash whole and adds the entry, without any it removes both.
var setPolicyScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
	redis.call('HSET', KEYS[1], unpack(ARGV, 2))
	redis.call('SADD', KEYS[2], ARGV[1])
else
	redis.call('SREM', KEYS[2], ARGV[1])
end
return 1
`)

// setPolicyApart is setPolicyScript for keys in two Cluster slots: in
// an order that never leaves a hash its set entry does not list.
func (s *Store) setPolicyApart(ctx context.Context, key, member string, fields []any) error {
	if len(fields) == 0 {
		if err := s.client.Del(ctx, key).Err(); err != nil {
			return err
		}
		return s.client.SRem(ctx, s.policiesKey(), member).Err()
	}
	if err := s.client.SAdd(ctx, s.policiesKey(), member).Err(); err != nil {
		return err
	}
	_, err := s.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, key)
		pipe.HSet(ctx, key, fields...)
		return nil
	})
	return err
}

// policyFields returns the field/value pairs of p's hash; none for the
// zero policy.
func policyFields(p auth.ProjectPolicy) []any {
	if p.IsZero() {
		return nil
	}
	fields := []any{"updated", p.UpdatedAt.UnixMilli()}
	if p.MaxLifetime > 0 {
		fields = append(fields, "max_lifetime", int64(p.MaxLifetime))
	}
	if p.RequireExpiry {
		fields = append(fields, "require_expiry", "1")
	}
	if p.RateLimit > 0 {
		fields = append(fields, "rate", strconv.FormatFloat(p.RateLimit, 'g', -1, 64))
	}
	if p.Burst > 0 {
		fields = append(fields, "burst", p.Burst)
	}
	return fields
}

// ProjectPolicies returns every project's policy, in two round trips.
func (s *Store) ProjectPolicies(ctx context.Context) (map[int64]auth.ProjectPolicy, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	members, err := s.client.SMembers(ctx, s.policiesKey()).Result()
	if err != nil {
		return nil, s.unavailable("list policies", err)
	}
	out := make(map[int64]auth.ProjectPolicy, len(members))
	if len(members) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(members))
	pipe := s.client.Pipeline()
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil || id <= 0 {
			continue
		}
		ids = append(ids, id)
		pipe.HGetAll(ctx, s.policyKey(id))
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		return nil, s.unavailable("list policies", err)
	}
	for i, id := range ids {
		p, err := decodePolicy(id, cmds[i].(*redis.MapStringStringCmd).Val())
		if err != nil {
			return nil, err
		}
		if !p.IsZero() {
			out[id] = p
		}
	}
	return out, nil
}

// decodePolicy reads a policy hash; no fields is no policy.
func decodePolicy(projectID int64, f map[string]string) (auth.ProjectPolicy, error) {
	var p auth.ProjectPolicy
	if len(f) == 0 {
		return p, nil
	}
	bad := func(field string, err error) error {
		return fmt.Errorf("redisstore: policy of project %d: field %s: %w", projectID, field, err)
	}
	if v, ok := f["max_lifetime"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return p, bad("max_lifetime", err)
		}
		p.MaxLifetime = time.Duration(n)
	}
	p.RequireExpiry = f["require_expiry"] == "1"
	if v, ok := f["rate"]; ok {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return p, bad("rate", err)
		}
		p.RateLimit = r
	}
	if v, ok := f["burst"]; ok {
		b, err := strconv.Atoi(v)
		if err != nil {
			return p, bad("burst", err)
		}
		p.Burst = b
	}
	if v, ok := f["updated"]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return p, bad("updated", err)
		}
		p.UpdatedAt = time.UnixMilli(ms).UTC()
	}
	return p, nil
}
