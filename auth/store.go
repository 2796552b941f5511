package auth

import (
	"context"
	"errors"
	"time"
)

// Store errors. Implementations wrap them with context; test with errors.Is.
var (
	// ErrNotFound means no record, live or tombstone, exists for the id.
	ErrNotFound = errors.New("token not found")
	// ErrExists means a record with the id already exists.
	ErrExists = errors.New("token id already exists")
	// ErrUnavailable means the store could not be reached or did not answer
	// in time. It is never a statement about the token.
	ErrUnavailable = errors.New("token store unavailable")
)

// Store persists token records. A token is one record keyed by its id; a
// per-project index serves List. Revoking replaces the record with a
// tombstone that is kept for the store's revoked-retention time.
//
// Every change is announced to every Watch-er of every replica sharing the
// store, so cached copies can be dropped. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the record of id, which may be a tombstone.
	// It returns ErrNotFound when there is none and an error wrapping
	// ErrUnavailable when the store cannot answer.
	Get(ctx context.Context, id string) (*Token, error)
	// Create stores a new record. It returns ErrExists if the id is taken
	// (by a live token or a tombstone).
	Create(ctx context.Context, t *Token) error
	// List returns the project's live tokens (tombstones excluded), oldest
	// first, ties broken by id.
	List(ctx context.Context, projectID int64) ([]*Token, error)
	// Revoke turns the record of id into a tombstone revoked at the given
	// time and announces the change. Revoking a tombstone returns it
	// unchanged. It returns ErrNotFound when there is no record.
	Revoke(ctx context.Context, id string, at time.Time) (*Token, error)
	// Watch calls fn for every change announced by any replica until ctx is
	// done, and with EventResync whenever announcements may have been missed
	// (including once when watching starts). It returns ctx's error.
	Watch(ctx context.Context, fn func(Event)) error
	// Close releases the store's resources.
	Close() error
}

// EventKind tells what an Event announces.
type EventKind uint8

// Event kinds.
const (
	// EventChanged: the record of Event.ID changed; drop any cached copy.
	EventChanged EventKind = iota + 1
	// EventResync: announcements may have been lost (a (re)subscription);
	// drop every cached record.
	EventResync
	// EventDisconnected: the announcement channel is down (Event.Err says
	// why); changes are not being heard until the next EventResync.
	EventDisconnected
)

// Event is one announcement from Store.Watch.
type Event struct {
	Kind EventKind
	ID   string
	Err  error
	// At is when the change was published, when the store knows it (zero
	// otherwise); it measures propagation lag.
	At time.Time
}

// Validate checks that a record is complete enough to store.
func (t *Token) Validate() error {
	var errs []error
	if !ValidID(t.ID) {
		errs = append(errs, errors.New("id: not a token id"))
	}
	if t.ProjectID <= 0 {
		errs = append(errs, errors.New("project id: must be a positive integer"))
	}
	if t.Role != RoleOwner && t.Role != RoleAccounting {
		errs = append(errs, errors.New("role: must be owner or accounting"))
	}
	if t.Status != StatusActive && t.Status != StatusInactive {
		errs = append(errs, errors.New("status: must be active or inactive"))
	}
	if len(t.Name) > MaxNameLen {
		errs = append(errs, errors.New("name: longer than 100 bytes"))
	}
	if t.CreatedAt.IsZero() {
		errs = append(errs, errors.New("created at: missing"))
	}
	if t.PepperID == "" && !t.Revoked() {
		errs = append(errs, errors.New("pepper id: missing"))
	}
	return errors.Join(errs...)
}

// MaxNameLen bounds a token's display name, in bytes.
const MaxNameLen = 100
