package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Once tells whether a key is seen for the first time within a period,
// so that an event every replica may raise is published once.
type Once interface {
	// First reports whether key was not seen within ttl, and marks it
	// seen for ttl.
	First(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Forget unmarks key (its event could not be published).
	Forget(ctx context.Context, key string) error
}

// RedisOnce is a Once shared by replicas: SET NX with an expiry at
// <prefix>webhook:once:<key>.
type RedisOnce struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisOnce returns a Once on c under prefix (DefaultPrefix when
// empty).
func NewRedisOnce(c redis.UniversalClient, prefix string) *RedisOnce {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &RedisOnce{c: c, prefix: prefix + "webhook:once:"}
}

// First sets the key if it is not set.
func (o *RedisOnce) First(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	ok, err := o.c.SetNX(ctx, o.prefix+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("webhook: dedup %s: %w", key, err)
	}
	return ok, nil
}

// Forget deletes the key.
func (o *RedisOnce) Forget(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	if err := o.c.Del(ctx, o.prefix+key).Err(); err != nil {
		return fmt.Errorf("webhook: forgetting %s: %w", key, err)
	}
	return nil
}

// MemoryOnce is the Once of a single process. Expired keys are dropped
// as new ones come, so it holds about as many keys as were marked within
// the longest ttl.
type MemoryOnce struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
	sweep time.Time
}

// First reports whether key is new (or its mark expired), and marks it.
func (o *MemoryOnce) First(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.until == nil {
		o.until = map[string]time.Time{}
	}
	if now.After(o.sweep) {
		for k, t := range o.until {
			if !now.Before(t) {
				delete(o.until, k)
			}
		}
		o.sweep = now.Add(time.Minute)
	}
	if t, ok := o.until[key]; ok && now.Before(t) {
		return false, nil
	}
	o.until[key] = now.Add(ttl)
	return true, nil
}

// Forget unmarks key.
func (o *MemoryOnce) Forget(_ context.Context, key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.until, key)
	return nil
}
