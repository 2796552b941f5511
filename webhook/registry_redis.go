package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts the Redis keys of RedisRegistry, RedisQueue and
// RedisOnce, like the token store's.
const DefaultPrefix = "tswgate:"

// defaultTimeout bounds each Redis call of this package's Redis types.
const defaultTimeout = 2 * time.Second

// RedisRegistry keeps endpoints in Redis, shared by every replica: each
// endpoint is a string (its JSON) at <prefix>webhook:ep:<id>, and each
// project (0: the operator) has the set <prefix>webhook:eps:<project> of
// its endpoints' ids. No command touches two keys at once, so it works on
// Redis Cluster.
type RedisRegistry struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ Registry = (*RedisRegistry)(nil)

// NewRedisRegistry returns a registry on c under prefix (DefaultPrefix
// when empty).
func NewRedisRegistry(c redis.UniversalClient, prefix string) *RedisRegistry {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &RedisRegistry{c: c, prefix: prefix, timeout: defaultTimeout}
}

func (r *RedisRegistry) key(id string) string { return r.prefix + "webhook:ep:" + id }

func (r *RedisRegistry) setKey(p int64) string { return r.prefix + "webhook:eps:" + projectKey(p) }

// Put stores e and adds it to its project's set.
func (r *RedisRegistry) Put(ctx context.Context, e *Endpoint) error {
	old, err := r.Get(ctx, e.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	data, err := encodeChecked(old, e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, r.key(e.ID), data, 0).Err(); err != nil {
		return fmt.Errorf("webhook: storing endpoint %s: %w", e.ID, err)
	}
	if err := r.c.SAdd(ctx, r.setKey(e.ProjectID), e.ID).Err(); err != nil {
		return fmt.Errorf("webhook: indexing endpoint %s: %w", e.ID, err)
	}
	return nil
}

// Get returns the endpoint of id.
func (r *RedisRegistry) Get(ctx context.Context, id string) (*Endpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	data, err := r.c.Get(ctx, r.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, notFound("endpoint", id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: reading endpoint %s: %w", id, err)
	}
	return decodeEndpoint(id, data)
}

// encodeChecked checks that e may replace old (nil: new) and returns its
// JSON.
func encodeChecked(old, e *Endpoint) ([]byte, error) {
	if err := checkPut(old, e); err != nil {
		return nil, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("webhook: encoding endpoint %s: %w", e.ID, err)
	}
	return data, nil
}

func decodeEndpoint(id string, data []byte) (*Endpoint, error) {
	e := new(Endpoint)
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("webhook: endpoint %s: %w", id, err)
	}
	return e, nil
}

// List returns a project's endpoints, oldest first.
func (r *RedisRegistry) List(ctx context.Context, projectID int64) ([]*Endpoint, error) {
	return r.load(ctx, projectID)
}

// Match returns the project's and the operator's endpoints that want typ.
func (r *RedisRegistry) Match(ctx context.Context, projectID int64, typ string) ([]*Endpoint, error) {
	projects := []int64{projectID}
	if projectID != 0 {
		projects = append(projects, 0)
	}
	es, err := r.load(ctx, projects...)
	if err != nil {
		return nil, err
	}
	out := es[:0]
	for _, e := range es {
		if e.Wants(typ) {
			out = append(out, e)
		}
	}
	return out, nil
}

// load reads the endpoints of projects: their sets, then the records in
// one pipeline. An id whose record is gone is skipped.
func (r *RedisRegistry) load(ctx context.Context, projects ...int64) ([]*Endpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var ids []string
	for _, p := range projects {
		members, err := r.c.SMembers(ctx, r.setKey(p)).Result()
		if err != nil {
			return nil, fmt.Errorf("webhook: listing the endpoints of project %d: %w", p, err)
		}
		ids = append(ids, members...)
	}
	out := []*Endpoint{}
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, r.key(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("webhook: reading endpoints: %w", err)
	}
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		if err != nil {
			continue // deleted meanwhile
		}
		e, err := decodeEndpoint(ids[i], data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sortEndpoints(out)
	return out, nil
}

// Delete removes the endpoint of id and its set membership.
func (r *RedisRegistry) Delete(ctx context.Context, id string) error {
	e, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Del(ctx, r.key(id)).Err(); err != nil {
		return fmt.Errorf("webhook: deleting endpoint %s: %w", id, err)
	}
	if err := r.c.SRem(ctx, r.setKey(e.ProjectID), id).Err(); err != nil {
		return fmt.Errorf("webhook: unindexing endpoint %s: %w", id, err)
	}
	return nil
}
