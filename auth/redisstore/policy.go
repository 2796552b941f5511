package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
// one (ProjectPolicies reads it). The hash is written before the set entry
// and removed before it, so the set may briefly name a project without a
// policy, which reads as none.

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
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key, member := s.policyKey(projectID), strconv.FormatInt(projectID, 10)
	op := fmt.Sprintf("set policy of project %d", projectID)
	if p.IsZero() {
		if err := s.client.Del(ctx, key).Err(); err != nil {
			return s.unavailable(op, err)
		}
		if err := s.client.SRem(ctx, s.policiesKey(), member).Err(); err != nil {
			return s.unavailable(op, err)
		}
		return nil
	}
	fields := map[string]any{"updated": p.UpdatedAt.UnixMilli()}
	if p.MaxLifetime > 0 {
		fields["max_lifetime"] = int64(p.MaxLifetime)
	}
	if p.RequireExpiry {
		fields["require_expiry"] = "1"
	}
	if p.RateLimit > 0 {
		fields["rate"] = strconv.FormatFloat(p.RateLimit, 'g', -1, 64)
	}
	if p.Burst > 0 {
		fields["burst"] = p.Burst
	}
	pipe := s.client.TxPipeline()
	pipe.Del(ctx, key)
	pipe.HSet(ctx, key, fields)
	if _, err := pipe.Exec(ctx); err != nil {
		return s.unavailable(op, err)
	}
	if err := s.client.SAdd(ctx, s.policiesKey(), member).Err(); err != nil {
		return s.unavailable(op, err)
	}
	return nil
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
