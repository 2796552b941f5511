package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Store errors. Implementations wrap them with context; test with errors.Is.
var (
	// ErrNotFound means no record, live or tombstone, exists for the id.
	ErrNotFound = errors.New("token not found")
	// ErrExists means a record with the id already exists.
	ErrExists = errors.New("token id already exists")
	// ErrRevoked means the record of the id is a revocation tombstone, which
	// cannot be changed.
	ErrRevoked = errors.New("token revoked")
	// ErrUnavailable means the store could not be reached or did not answer
	// in time. It is never a statement about the token.
	ErrUnavailable = errors.New("token store unavailable")
	// ErrTokenLimit means a create within a limit was refused: the
	// project has as many live tokens as the limit allows. Errors matching
	// it are *TokenLimitError.
	ErrTokenLimit = errors.New("project token limit reached")
)

// TokenLimitError is the refusal of ActivityStore.CreateWithin: the
// project had Live live tokens, Limit or more.
type TokenLimitError struct {
	ProjectID   int64
	Live, Limit int
}

func (e *TokenLimitError) Error() string {
	return fmt.Sprintf("project %d has %d live tokens, the most allowed is %d", e.ProjectID, e.Live, e.Limit)
}

// Unwrap makes a TokenLimitError match ErrTokenLimit.
func (e *TokenLimitError) Unwrap() error { return ErrTokenLimit }

// Store persists token records. A token is one record keyed by its id; a
// per-project index serves List. Updating changes a live record in place
// (its status, expiry, rate limit…); revoking replaces it with a tombstone
// that is kept for the store's revoked-retention time.
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
	// Update changes the live record of id atomically: it reads it, calls
	// fn with a copy, checks the result (ValidateUpdate), stores it,
	// announces the change like Create and Revoke do, and returns the
	// stored record. No other change of the record falls between the read
	// and the write, so concurrent Updates of one token are all applied.
	//
	// fn edits its argument in place and must do nothing else: it may be
	// called more than once (a store may retry on a conflicting write) and
	// may run under the store's lock, so it must not call the store. When
	// fn returns an error, nothing is written and Update returns an error
	// wrapping it.
	//
	// Update returns an error wrapping ErrNotFound when there is no record,
	// ErrRevoked when it is a tombstone, and ErrUnavailable when the store
	// cannot answer — which may come after the record changed (its
	// announcement failed): retry.
	Update(ctx context.Context, id string, fn func(*Token) error) (*Token, error)
	// Watch calls fn for every change announced by any replica until ctx is
	// done, and with EventResync whenever announcements may have been missed
	// (including once when watching starts). It returns ctx's error.
	Watch(ctx context.Context, fn func(Event)) error
	// Close releases the store's resources.
	Close() error
}

// ActivityStore is a Store that also keeps what happens to its tokens:
// paged lists and counts, usage, the audit trail and expiry claims. Both
// stores (auth/filestore, auth/redisstore) implement it, and the shared
// suite auth/storetest holds them to it. The gateway, the token API and
// the usage recorder use a store through it.
type ActivityStore interface {
	Store
	// ListPage returns one page of a project's live tokens (see ListQuery).
	ListPage(ctx context.Context, q ListQuery) (ListPage, error)
	// CountProject returns the number of a project's live tokens.
	CountProject(ctx context.Context, projectID int64) (int, error)
	// CreateWithin is Create, done only while t's project has fewer than
	// limit live tokens (counted as CountProject counts them): the count
	// and the create are one atomic step for every replica sharing the
	// store, so concurrent creates never pass the limit together. At the
	// limit it stores nothing and returns a *TokenLimitError (matching
	// ErrTokenLimit). A limit of 0 or less bounds nothing.
	CreateWithin(ctx context.Context, t *Token, limit int) error
	// CountTokens counts every live token (tombstones excluded) by role and
	// status, from counts the store keeps on every change.
	CountTokens(ctx context.Context) (map[Role]map[Status]int, error)
	// AddUsage adds the records' counts to what is stored (one write for
	// the whole batch) and raises each token's last-used time to the
	// record's when that is later.
	AddUsage(ctx context.Context, recs []UsageRecord) error
	// UsageOf returns the usage of each of ids over UsageWindow before now,
	// in one round trip; unused ids may be left out.
	UsageOf(ctx context.Context, ids []string, now time.Time) (map[string]TokenUsage, error)
	// AppendAudit appends an event to its project's audit trail, setting
	// its ID; ReadAudit pages a project's trail, newest first.
	AppendAudit(ctx context.Context, ev *AuditEvent) error
	ReadAudit(ctx context.Context, q AuditQuery) (AuditPage, error)
	// ClaimExpired returns the tokens whose expiry (their own, or the end
	// of a rotation's grace period) has passed by now and that no caller,
	// of any replica, has claimed yet: each (token, expiry) goes to one
	// claimant only. UnclaimExpired gives a claim back, for the next call.
	ClaimExpired(ctx context.Context, now time.Time) ([]*Token, error)
	UnclaimExpired(ctx context.Context, t *Token) error
	// ClaimExpiring returns the live tokens that expire within WarnBefore
	// of now and whose warning no caller has claimed yet, each (token,
	// expiry) once; UnclaimExpiring gives a claim back.
	ClaimExpiring(ctx context.Context, now time.Time) ([]*Token, error)
	UnclaimExpiring(ctx context.Context, t *Token) error
	// WarnBefore is how long before its expiry a token is claimed as
	// expiring.
	WarnBefore() time.Duration
	// ProjectPolicy returns the policy of a project; the zero policy when
	// none is set.
	ProjectPolicy(ctx context.Context, projectID int64) (ProjectPolicy, error)
	// SetProjectPolicy stores the policy of a project (after
	// ProjectPolicy.Validate); a zero policy (IsZero) removes it. The
	// change is announced to every Watch as EventPolicyChanged; a failed
	// announcement is only logged (the change is stored).
	SetProjectPolicy(ctx context.Context, projectID int64, p ProjectPolicy) error
	// ProjectPolicies returns every project's policy, by project id. The
	// gateway reloads it periodically to apply project rate limits, a
	// safety net for missed EventPolicyChanged announcements.
	ProjectPolicies(ctx context.Context) (map[int64]ProjectPolicy, error)
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
	// EventPolicyChanged: the policy of project Event.Project was set or
	// cleared (ActivityStore.SetProjectPolicy); read it again.
	EventPolicyChanged
)

// Event is one announcement from Store.Watch.
type Event struct {
	Kind EventKind
	ID   string
	// Project is the project of an EventPolicyChanged.
	Project int64
	Err     error
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
	if t.RotatedTo != "" && (!ValidID(t.RotatedTo) || t.RotatedTo == t.ID) {
		errs = append(errs, errors.New("rotated to: not the id of another token"))
	}
	if t.Replaced && t.RotatedTo == "" {
		errs = append(errs, errors.New("replaced: set without rotated to"))
	}
	errs = append(errs, t.validateRestrictions()...)
	errs = append(errs, validateLimit(t.RateLimit, t.RateBurst, "rate burst")...)
	errs = append(errs, t.validateLineage()...)
	return errors.Join(errs...)
}

// validateLimit checks a rate limit (requests per second, 0: none) and
// its burst, whose field is named burstName in the messages.
func validateLimit(rate float64, burst int, burstName string) []error {
	var errs []error
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		errs = append(errs, errors.New("rate limit: must be a finite number of requests per second, 0 or more"))
	}
	switch {
	case burst < 0:
		errs = append(errs, errors.New(burstName+": must not be negative"))
	case burst > 0 && rate == 0:
		errs = append(errs, errors.New(burstName+": set without a rate limit"))
	}
	return errs
}

// ValidateUpdate checks that updated is a valid change of the live record
// old: a token's identity, secret, creation time and lineage are fixed
// (ID, ProjectID, CreatedAt, SecretHash, PepperID, Lineage), and an update
// cannot revoke (Store.Revoke does that). The rest — name, role, status, expiry, rate
// limit, the successor it was rotated to — may change, within Validate.
func ValidateUpdate(old, updated *Token) error {
	var errs []error
	if updated.ID != old.ID {
		errs = append(errs, fmt.Errorf("id: cannot change (from %s to %s)", old.ID, updated.ID))
	}
	if updated.ProjectID != old.ProjectID {
		errs = append(errs, fmt.Errorf("project id: cannot change (from %d to %d)", old.ProjectID, updated.ProjectID))
	}
	if !updated.CreatedAt.Equal(old.CreatedAt) {
		errs = append(errs, errors.New("created at: cannot change"))
	}
	if updated.SecretHash != old.SecretHash || updated.PepperID != old.PepperID {
		errs = append(errs, errors.New("secret hash: cannot change"))
	}
	if updated.Lineage != old.Lineage {
		errs = append(errs, errors.New("lineage: cannot change"))
	}
	if updated.Revoked() {
		errs = append(errs, errors.New("revoked at: an update cannot revoke; use Revoke"))
	}
	if old.Replaced && !updated.Replaced {
		errs = append(errs, errors.New("replaced: cannot be cleared"))
	}
	if err := updated.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// MaxNameLen bounds a token's display name, in bytes.
const MaxNameLen = 100
