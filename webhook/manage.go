package webhook

// Managing endpoints: bounded creation, compare-and-set updates, secret
// rotation with a grace period, and test messages.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxDescriptionLen bounds an endpoint's description, in bytes.
const MaxDescriptionLen = 256

// DefaultRotationGrace is how long an endpoint's previous secret keeps
// signing beside the new one after a rotation, unless told otherwise.
const DefaultRotationGrace = 24 * time.Hour

// Errors of endpoint management.
var (
	// ErrEndpointLimit means a project has the most endpoints allowed.
	ErrEndpointLimit = errors.New("webhook: the project has the most endpoints allowed")
	// ErrExists means an endpoint with the id exists already.
	ErrExists = errors.New("webhook: an endpoint has that id already")
	// ErrConflict means an update lost every race with concurrent
	// changes of the same endpoint; retrying may succeed.
	ErrConflict = errors.New("webhook: endpoint changed concurrently; retry")
	// ErrURLRefused means an update would keep an endpoint enabled on a
	// URL stored before the rules refused it: give it a valid URL, or
	// disable it.
	ErrURLRefused = errors.New("webhook: the endpoint's stored URL is refused now: set a valid URL or disable the endpoint")
)

// TypeTest is the type of the message sent by a test of an endpoint. It
// is not an event: it goes to one endpoint, whatever its filter.
const TypeTest = "webhook.test"

// maxUpdateTries bounds the compare-and-set rounds of an update.
const maxUpdateTries = 64

// signingKeys returns the keys that sign a message to e at now: the
// secret's, and the previous secret's while its grace period lasts.
func (e *Endpoint) signingKeys(now time.Time) ([][]byte, error) {
	key, err := ParseSecret(e.Secret)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{key}
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		if prev, err := ParseSecret(e.PreviousSecret); err == nil {
			keys = append(keys, prev)
		}
	}
	return keys, nil
}

// RotateSecret gives e a fresh secret at now; the current one keeps
// signing beside it for grace (0: it stops at once). It returns the new
// secret.
func (e *Endpoint) RotateSecret(now time.Time, grace time.Duration) (string, error) {
	secret, err := NewSecret()
	if err != nil {
		return "", err
	}
	e.PreviousSecret, e.PreviousUntil = "", time.Time{}
	if grace > 0 {
		e.PreviousSecret, e.PreviousUntil = e.Secret, now.UTC().Add(grace)
	}
	e.Secret, e.UpdatedAt = secret, now.UTC()
	return secret, nil
}

// NewTestDelivery returns a pending delivery of a webhook.test message to
// e, made at now: a receiver can check its signature handling with it.
func NewTestDelivery(e *Endpoint, now time.Time) (*Delivery, error) {
	body, err := json.Marshal(struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      any       `json:"data"`
	}{TypeTest, now.UTC(), map[string]any{"endpoint_id": e.ID, "project_id": e.ProjectID}})
	if err != nil {
		return nil, fmt.Errorf("webhook: encoding a test message: %w", err)
	}
	ev := &Event{ID: NewEventID(), Type: TypeTest, Time: now.UTC(), ProjectID: e.ProjectID}
	return newDelivery(ev, body, e, now), nil
}

// Add stores the new endpoint e unless its project has max endpoints
// already (ErrEndpointLimit; max 0: no bound) or its id is taken
// (ErrExists).
func (r *FileRegistry) Add(_ context.Context, e *Endpoint, max int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[e.ID]; ok {
		return fmt.Errorf("webhook: endpoint %s: %w", e.ID, ErrExists)
	}
	if err := checkPut(nil, e); err != nil {
		return err
	}
	n := 0
	for _, o := range r.byID {
		if o.ProjectID == e.ProjectID {
			n++
		}
	}
	if max > 0 && n >= max {
		return fmt.Errorf("webhook: project %d has %d endpoints: %w", e.ProjectID, n, ErrEndpointLimit)
	}
	c := *e
	r.byID[e.ID] = &c
	if err := r.save(); err != nil {
		delete(r.byID, e.ID)
		return err
	}
	return nil
}

// Update applies fn to a copy of the endpoint of id and stores the
// result, under the registry's lock; an error from fn is returned as it
// is and changes nothing.
func (r *FileRegistry) Update(_ context.Context, id string, fn func(*Endpoint) error) (*Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.byID[id]
	if !ok {
		return nil, notFound("endpoint", id)
	}
	c := *old
	if err := fn(&c); err != nil {
		return nil, err
	}
	if err := checkPut(old, &c); err != nil {
		return nil, err
	}
	r.byID[id] = &c
	if err := r.save(); err != nil {
		r.byID[id] = old
		return nil, err
	}
	out := c
	return &out, nil
}

// Add stores the new endpoint e unless its project has max endpoints
// already (ErrEndpointLimit; max 0: no bound) or its id is taken
// (ErrExists). The bound holds across replicas: the id joins the
// project's set in a transaction watching the set, then the record is
// written (and the id taken back out if that fails). Each step touches one
// key, so it works on Redis Cluster.
func (r *RedisRegistry) Add(ctx context.Context, e *Endpoint, max int) error {
	data, err := encodeChecked(nil, e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	set := r.setKey(e.ProjectID)
	if err := r.reserve(ctx, set, e, max); err != nil {
		return err
	}
	ok, err := r.c.SetNX(ctx, r.key(e.ID), data, 0).Result()
	if err == nil && !ok {
		err = ErrExists
	}
	if err != nil {
		_ = r.c.SRem(context.WithoutCancel(ctx), set, e.ID).Err()
		return fmt.Errorf("webhook: storing endpoint %s: %w", e.ID, err)
	}
	return nil
}

// reserve adds e's id to the project's set if it is not a member and the
// set has fewer than max members, retrying when another replica changed
// the set meanwhile.
func (r *RedisRegistry) reserve(ctx context.Context, set string, e *Endpoint, max int) error {
	for range maxUpdateTries {
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			member, err := tx.SIsMember(ctx, set, e.ID).Result()
			if err != nil {
				return err
			}
			if member {
				return fmt.Errorf("webhook: endpoint %s: %w", e.ID, ErrExists)
			}
			n, err := tx.SCard(ctx, set).Result()
			if err != nil {
				return err
			}
			if max > 0 && n >= int64(max) {
				return fmt.Errorf("webhook: project %d has %d endpoints: %w", e.ProjectID, n, ErrEndpointLimit)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SAdd(ctx, set, e.ID)
				return nil
			})
			return err
		}, set)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil && !errors.Is(err, ErrEndpointLimit) && !errors.Is(err, ErrExists) {
				return fmt.Errorf("webhook: indexing endpoint %s: %w", e.ID, err)
			}
			return err
		}
	}
	return fmt.Errorf("webhook: indexing endpoint %s: %w", e.ID, ErrConflict)
}

// Update applies fn to the endpoint of id and stores the result if no
// other change was made to it meanwhile (WATCH on its key), else reads it
// again and retries; an error from fn is returned as it is and changes
// nothing.
func (r *RedisRegistry) Update(ctx context.Context, id string, fn func(*Endpoint) error) (*Endpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key := r.key(id)
	var out *Endpoint
	for range maxUpdateTries {
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			data, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return notFound("endpoint", id)
			}
			if err != nil {
				return fmt.Errorf("webhook: reading endpoint %s: %w", id, err)
			}
			old, err := decodeEndpoint(id, data)
			if err != nil {
				return err
			}
			e := *old
			if err := fn(&e); err != nil {
				return err
			}
			if data, err = encodeChecked(old, &e); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, data, 0)
				return nil
			})
			out = &e
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("webhook: updating endpoint %s: %w", id, ErrConflict)
}

// ValidateURL checks an endpoint URL as Endpoint.Validate does: absolute
// http or https, at most 2048 bytes, no credentials, no fragment, and a
// host every parser reads the same way (see validHost).
func ValidateURL(raw string) error { return validURL(raw) }
