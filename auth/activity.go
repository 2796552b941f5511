package auth

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// This file holds the types the stores share for token activity: paged
// lists, usage counts and the audit trail.

// ListQuery selects one page of a project's live tokens, in List order
// (oldest first, ties broken by id).
type ListQuery struct {
	ProjectID int64
	// Status and Role filter the page; their zero values match any.
	Status Status
	Role   Role
	// After is where the page starts: just after this position. The zero
	// cursor starts at the beginning.
	After ListCursor
	// Limit is the most tokens returned; it must be above zero.
	Limit int
}

// Matches reports whether t passes q's filters (not its position).
func (q *ListQuery) Matches(t *Token) bool {
	return !t.Revoked() && t.ProjectID == q.ProjectID &&
		(q.Status == StatusInvalid || t.Status == q.Status) &&
		(q.Role == RoleInvalid || t.Role == q.Role)
}

// ListCursor is a position in List order: just after the token created at
// CreatedAt (millisecond precision) with id ID. It stays meaningful when
// tokens are created or revoked, so paging is stable.
type ListCursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorAfter returns the position just after t.
func CursorAfter(t *Token) ListCursor {
	return ListCursor{CreatedAt: time.UnixMilli(t.CreatedAt.UnixMilli()).UTC(), ID: t.ID}
}

// IsZero reports whether c is the start of the list.
func (c ListCursor) IsZero() bool { return c.ID == "" }

// Passed reports whether t sorts at or before c, so that a page starting
// after c leaves it out.
func (c ListCursor) Passed(t *Token) bool {
	if c.IsZero() {
		return false
	}
	ms, cms := t.CreatedAt.UnixMilli(), c.CreatedAt.UnixMilli()
	return ms < cms || ms == cms && t.ID <= c.ID
}

// String encodes c as an opaque, URL-safe cursor ("" for the zero cursor).
func (c ListCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMilli(), 10) + "." + c.ID))
}

// ErrBadCursor means a cursor was not made by ListCursor.String (or by a
// store's audit paging).
var ErrBadCursor = errors.New("not a cursor returned by a previous page")

// ParseListCursor decodes a cursor from ListCursor.String; "" is the zero
// cursor.
func ParseListCursor(s string) (ListCursor, error) {
	if s == "" {
		return ListCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ListCursor{}, ErrBadCursor
	}
	msText, id, ok := strings.Cut(string(raw), ".")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if !ok || err != nil || !ValidID(id) {
		return ListCursor{}, ErrBadCursor
	}
	return ListCursor{CreatedAt: time.UnixMilli(ms).UTC(), ID: id}, nil
}

// ListPage is one page of a ListQuery.
type ListPage struct {
	Tokens []*Token
	// Next is where the following page starts; zero on the last page.
	Next ListCursor
}

// UsageWindow is the span usage counts cover: the last 24 hours.
const UsageWindow = 24 * time.Hour

// UsageRecord is what a usage recorder flushes for one token and one
// minute: how many answered requests had each outcome, and the latest
// request's time.
type UsageRecord struct {
	TokenID string
	// Minute is the start of the minute (UTC) the requests fell in.
	Minute time.Time
	// Counts are requests by outcome (OK for allowed ones).
	Counts map[Code]int64
	// LastUsed is the time of the latest of these requests.
	LastUsed time.Time
	// Recorder and Batch say which recorder counted the record and in
	// which of its flushes it was first sent (Batch grows with every
	// flush). A failed flush is sent again with the same Batch: a store
	// that may apply part of a batch before failing (Redis) uses them to
	// apply each token's share of a batch once. Recorder is empty when
	// unknown.
	Recorder string
	Batch    uint64
}

// TokenUsage is a token's use as a store reports it.
type TokenUsage struct {
	// LastUsed is the latest request's time (zero: never used, as far as
	// flushed counts go).
	LastUsed time.Time
	// Counts are the requests of the last UsageWindow by outcome (OK for
	// allowed ones); nil or empty when there were none.
	Counts map[Code]int64
}

// ParseCode returns the code whose wire name is s.
func ParseCode(s string) (Code, bool) {
	for c := OK; c < numCodes; c++ {
		if codeNames[c] == s {
			return c, true
		}
	}
	return 0, false
}

// UnixMinute returns the minute t falls in, counted from the Unix epoch.
func UnixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}

// Audit actor kinds and outcomes.
const (
	ActorAdminKey   = "admin_key"
	ActorToken      = "token"
	ActorSystem     = "system"
	ActorClientCert = "client_cert" // an admin by its TLS client certificate

	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
)

// AuditEvent is one entry of a project's audit trail: a token change, an
// expiry, or a refused management attempt. It never holds a secret: the
// actor is an admin key's fingerprint or a token id.
type AuditEvent struct {
	// ID is assigned by the store when the event is appended; it orders a
	// project's events and serves as a paging cursor.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Action is token.create, token.rotate, token.activate,
	// token.deactivate, token.update, token.revoke, token.expire,
	// token.list, token.show or audit.read (the last three only when
	// refused).
	Action string `json:"action"`
	// ActorKind is ActorAdminKey, ActorToken or ActorSystem; Actor is the
	// admin key's fingerprint or the acting token's id (empty for the
	// system, or for an admin key that was not accepted).
	ActorKind string `json:"actor_kind"`
	Actor     string `json:"actor,omitempty"`
	// ProjectID is the project whose trail holds the event (0: none, for
	// refused attempts that named no project).
	ProjectID int64 `json:"project_id"`
	// TokenID is the token acted upon, when there is one.
	TokenID string `json:"token_id,omitempty"`
	// Source is the client's address.
	Source string `json:"source,omitempty"`
	// Outcome is OutcomeOK or OutcomeRefused; Reason is the refusal code.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Detail says more, for humans (what changed, the project asked for).
	Detail string `json:"detail,omitempty"`
}

// AuditQuery selects a page of a project's audit trail, newest first.
type AuditQuery struct {
	ProjectID int64
	// Before is the ID of the last event of the previous page ("" for the
	// newest events).
	Before string
	// Limit is the most events returned; it must be above zero.
	Limit int
}

// AuditPage is a page of an AuditQuery.
type AuditPage struct {
	Events []AuditEvent
	// Next is the Before of the following page; "" on the last page.
	Next string
}
