package webhook

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Event types.
const (
	TypeTokenCreated     = "token.created"
	TypeTokenUpdated     = "token.updated"
	TypeTokenRotated     = "token.rotated"
	TypeTokenRevoked     = "token.revoked"
	TypeTokenExpired     = "token.expired"
	TypeTokenExpiring    = "token.expiring"
	TypeTokenLeaked      = "token.leaked"
	TypeTokenRateLimited = "token.rate_limited"
)

// Types lists every event type, for validating endpoint filters.
func Types() []string {
	return []string{TypeTokenCreated, TypeTokenUpdated, TypeTokenRotated, TypeTokenRevoked,
		TypeTokenExpired, TypeTokenExpiring, TypeTokenLeaked, TypeTokenRateLimited}
}

// ExpiringWithin is how long before its expiry a token.expiring event is
// sent.
const ExpiringWithin = 7 * 24 * time.Hour

// Event is one thing that happened to a token, as sent to endpoints.
type Event struct {
	// ID is the webhook-id of every message of the event ("msg_…").
	ID string
	// Type is one of the Type* constants.
	Type string
	// Time is when it happened.
	Time time.Time
	// ProjectID is the project whose endpoints (and the operator's)
	// receive the event.
	ProjectID int64
	// Data is the event's "data" object.
	Data Data
	// DedupKey, when set, makes Publisher publish the event only once per
	// key within DedupTTL, across replicas: for events that every replica
	// may notice (a token about to expire, one over its rate limit).
	DedupKey string
	DedupTTL time.Duration
}

// Payload is the body of every message: the Standard Webhooks envelope.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is an event's data. Token is always set; the other fields belong
// to some types only.
type Data struct {
	Token TokenData `json:"token"`
	// By is who made the change (created, updated, rotated, revoked).
	By *Actor `json:"by,omitempty"`
	// Changes names what an update changed ("status", "expiry", …).
	Changes []string `json:"changes,omitempty"`
	// Successor is the new token of a rotation; Grace how long the old one
	// keeps working ("0s": revoked at once).
	Successor *TokenData `json:"successor,omitempty"`
	Grace     string     `json:"grace,omitempty"`
	// Leak says where a leaked token was found.
	Leak *Leak `json:"leak,omitempty"`
	// RateLimited counts a token's refused requests.
	RateLimited *RateLimited `json:"rate_limited,omitempty"`
}

// TokenData is the public part of a token record: never its secret or
// hash.
type TokenData struct {
	ID        string     `json:"id"`
	DisplayID string     `json:"display_id"`
	ProjectID int64      `json:"project_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RotatedTo string     `json:"rotated_to,omitempty"`
}

// Actor kinds beside auth's (auth.ActorAdminKey, auth.ActorToken,
// auth.ActorSystem).
const (
	// ActorSecretScanning is a secret-scanning provider's report; the
	// actor's ID names the provider ("github").
	ActorSecretScanning = "secret_scanning"
	// ActorPublicRevoke is anyone who revoked a leaked token by its value.
	ActorPublicRevoke = "public_revoke"
)

// Actor is who made a change: an admin key (by its fingerprint), a token
// (by its id), the system, or a secret-scanning report.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Leak is where a leaked token was found.
type Leak struct {
	// Reporter is the provider ("github") or ActorPublicRevoke.
	Reporter string `json:"reporter"`
	URL      string `json:"url,omitempty"`
	Source   string `json:"source,omitempty"`
	// Revoked says whether the report revoked the token (false: it was
	// revoked already).
	Revoked bool `json:"revoked"`
}

// RateLimited counts the requests refused rate_limited from Since, on
// the replica that noticed.
type RateLimited struct {
	Refused int       `json:"refused"`
	Since   time.Time `json:"since"`
	Window  string    `json:"window"`
}

// NewEventID returns a fresh message id: "msg_" and 24 base62 characters.
func NewEventID() string { return "msg_" + randomID(24) }

// randomID returns n random letters and digits.
func randomID(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := 0; i < n; {
		var pool [32]byte
		_, _ = rand.Read(pool[:]) // crypto/rand.Read never fails (Go 1.24+)
		for _, c := range pool {
			if c < 248 && i < n { // 248 = 4×62: no letter more likely
				b[i] = alphabet[c%62]
				i++
			}
		}
	}
	return string(b)
}

// Body returns the JSON payload of ev.
func (ev *Event) Body() ([]byte, error) {
	b, err := json.Marshal(Payload{Type: ev.Type, Timestamp: ev.Time.UTC(), Data: ev.Data})
	if err != nil {
		return nil, fmt.Errorf("webhook: encoding a %s event: %w", ev.Type, err)
	}
	return b, nil
}

// tokenData is the public view of t, every string run through
// auth.RedactSecrets (a name is user input and could hold a secret).
func tokenData(t *auth.Token) TokenData {
	d := TokenData{
		ID:        auth.RedactSecrets(t.ID),
		DisplayID: auth.RedactSecrets(auth.DisplayID(t.ID)),
		ProjectID: t.ProjectID,
		Name:      auth.RedactSecrets(t.Name),
		Role:      t.Role.String(),
		Status:    t.Status.String(),
		CreatedAt: t.CreatedAt.UTC(),
		RotatedTo: auth.RedactSecrets(t.RotatedTo),
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC()
		d.ExpiresAt = &e
	}
	if t.Revoked() {
		r := t.RevokedAt.UTC()
		d.RevokedAt = &r
		d.Status = "revoked"
	}
	return d
}

func newEvent(typ string, t *auth.Token, at time.Time, data Data) Event {
	data.Token = tokenData(t)
	return Event{ID: NewEventID(), Type: typ, Time: at.UTC(), ProjectID: t.ProjectID, Data: data}
}

func redactedActor(by Actor) *Actor {
	return &Actor{Kind: auth.RedactSecrets(by.Kind), ID: auth.RedactSecrets(by.ID)}
}

// TokenCreated is the event of a new token.
func TokenCreated(t *auth.Token, by Actor, at time.Time) Event {
	return newEvent(TypeTokenCreated, t, at, Data{By: redactedActor(by)})
}

// TokenUpdated is the event of a change to a token; changes names what
// changed ("status", "expiry", "rate_limit", …).
func TokenUpdated(t *auth.Token, by Actor, changes []string, at time.Time) Event {
	cs := make([]string, len(changes))
	for i, c := range changes {
		cs[i] = auth.RedactSecrets(c)
	}
	return newEvent(TypeTokenUpdated, t, at, Data{By: redactedActor(by), Changes: cs})
}

// TokenRotated is the event of a rotation: old as it is after it, and its
// successor.
func TokenRotated(old, successor *auth.Token, by Actor, grace time.Duration, at time.Time) Event {
	s := tokenData(successor)
	return newEvent(TypeTokenRotated, old, at, Data{By: redactedActor(by), Successor: &s, Grace: grace.String()})
}

// TokenRevoked is the event of a revocation, by an admin key, a token, or
// a secret-scanning report (Actor{Kind: ActorSecretScanning}).
func TokenRevoked(t *auth.Token, by Actor, at time.Time) Event {
	return newEvent(TypeTokenRevoked, t, at, Data{By: redactedActor(by)})
}

// TokenExpired is the event of a token passing its expiry.
func TokenExpired(t *auth.Token, at time.Time) Event {
	return newEvent(TypeTokenExpired, t, at, Data{})
}

// TokenExpiring is the warning of a token that expires within
// ExpiringWithin; it is published once per token and expiry.
func TokenExpiring(t *auth.Token, at time.Time) Event {
	ev := newEvent(TypeTokenExpiring, t, at, Data{})
	ev.DedupKey = TypeTokenExpiring + ":" + t.ID + ":" + strconv.FormatInt(t.ExpiresAt.UnixMilli(), 10)
	ev.DedupTTL = ExpiringWithin + 24*time.Hour
	return ev
}

// TokenLeaked is the event of a token found in public. url and source come
// from the report and are redacted.
func TokenLeaked(t *auth.Token, leak Leak, at time.Time) Event {
	leak.Reporter = auth.RedactSecrets(leak.Reporter)
	leak.URL = auth.RedactSecrets(leak.URL)
	leak.Source = auth.RedactSecrets(leak.Source)
	return newEvent(TypeTokenLeaked, t, at, Data{Leak: &leak})
}

// TokenRateLimited is the event of a token refused rate_limited refused
// times since since (within window); it is published at most once per
// token and debounce period (see RateLimitWatch).
func TokenRateLimited(t *auth.Token, refused int, since time.Time, window, debounce time.Duration, at time.Time) Event {
	ev := newEvent(TypeTokenRateLimited, t, at, Data{RateLimited: &RateLimited{Refused: refused, Since: since.UTC(), Window: window.String()}})
	if debounce > 0 {
		ev.DedupKey = TypeTokenRateLimited + ":" + t.ID + ":" + strconv.FormatInt(at.UnixNano()/int64(debounce), 10)
		ev.DedupTTL = debounce
	}
	return ev
}
