package webhook

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// AuditAppender appends to the audit trail; the stores are ones.
type AuditAppender interface {
	AppendAudit(ctx context.Context, ev *auth.AuditEvent) error
}

// AuditTap is an AuditAppender in front of the trail that publishes the
// webhook event of every change it records: every change of a token —
// through the token API, the expiry sweep or a leak report — ends in an
// ok audit event naming the token and the actor. Put it where the stores'
// AppendAudit is given (tokenapi.Options.Store, secretscan.Options.Audit,
// the expiry sweep), and each change raises its event once, on the
// replica that made it.
type AuditTap struct {
	// Next is the trail itself. Required.
	Next AuditAppender
	// Tokens reads the changed token's record. Required.
	Tokens TokenLookup
	// Publisher publishes the events. Required.
	Publisher EventPublisher
	// Logger receives a line per event that could not be published.
	Logger *slog.Logger
}

// publishTimeout bounds the publication of one event.
const publishTimeout = 5 * time.Second

// AppendAudit records ev in Next and then publishes its event, if it is a
// change (a failure to publish is logged, not returned: the change and
// its record stand).
func (t *AuditTap) AppendAudit(ctx context.Context, ev *auth.AuditEvent) error {
	err := t.Next.AppendAudit(ctx, ev)
	if ev.Outcome == auth.OutcomeOK && ev.TokenID != "" {
		if perr := t.publish(ctx, ev); perr != nil && t.Logger != nil {
			t.Logger.Warn("webhook: an event of a change was not published",
				"action", ev.Action, "token_id", ev.TokenID, "err", perr)
		}
	}
	return err
}

func (t *AuditTap) publish(ctx context.Context, ev *auth.AuditEvent) error {
	if _, ok := auditTypes[ev.Action]; !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	tok, err := t.Tokens.Get(ctx, ev.TokenID)
	if err != nil {
		return err
	}
	out, err := t.event(ctx, ev, tok)
	if err != nil {
		return err
	}
	_, err = t.Publisher.Publish(ctx, out)
	return err
}

// auditTypes maps the audit actions of changes to event types.
var auditTypes = map[string]string{
	"token.create":     TypeTokenCreated,
	"token.update":     TypeTokenUpdated,
	"token.activate":   TypeTokenUpdated,
	"token.deactivate": TypeTokenUpdated,
	"token.rotate":     TypeTokenRotated,
	"token.revoke":     TypeTokenRevoked,
	"token.expire":     TypeTokenExpired,
}

// event is the webhook event of the audit event ev of tok.
func (t *AuditTap) event(ctx context.Context, ev *auth.AuditEvent, tok *auth.Token) (Event, error) {
	at := ev.Time
	if at.IsZero() {
		at = time.Now()
	}
	by := Actor{Kind: ev.ActorKind, ID: ev.Actor}
	switch auditTypes[ev.Action] {
	case TypeTokenCreated:
		return TokenCreated(tok, by, at), nil
	case TypeTokenUpdated:
		return TokenUpdated(tok, by, changes(ev), at), nil
	case TypeTokenRotated:
		return t.rotated(ctx, ev, tok, by, at)
	case TypeTokenRevoked:
		return TokenRevoked(tok, by, at), nil
	default:
		return TokenExpired(tok, at), nil
	}
}

// changes names what an update changed, from its audit event: the keys
// of its detail's settings ("status=inactive rate_limit=10"),
// expiry_changed as "expiry", then the lists it changed, each written
// "scopes <before>→<after>" or "allowed_ips <before>→<after>" after a
// "; " (the token API's restrictionChanges).
func changes(ev *auth.AuditEvent) []string {
	if ev.Action != "token.update" {
		return []string{"status"}
	}
	var out []string
	for i, part := range strings.Split(ev.Detail, "; ") {
		if i > 0 || !strings.Contains(part, "=") {
			if key, _, ok := strings.Cut(part, " "); ok && (key == "scopes" || key == "allowed_ips") {
				out = append(out, key)
			}
			continue
		}
		for _, field := range strings.Fields(part) {
			key, _, _ := strings.Cut(field, "=")
			if key == "expiry_changed" {
				key = "expiry"
			}
			out = append(out, key)
		}
	}
	return out
}

// rotated reads the successor named in a rotation's detail ("new token
// <id>, grace <duration>", and what changed, after a further ", ").
func (t *AuditTap) rotated(ctx context.Context, ev *auth.AuditEvent, old *auth.Token, by Actor, at time.Time) (Event, error) {
	rest, ok := strings.CutPrefix(ev.Detail, "new token ")
	id, graceText, _ := strings.Cut(rest, ", grace ")
	graceText, _, _ = strings.Cut(graceText, ", ")
	if !ok || !auth.ValidID(id) {
		return Event{}, errors.New("webhook: a token.rotate audit event without its successor")
	}
	succ, err := t.Tokens.Get(ctx, id)
	if err != nil {
		return Event{}, err
	}
	grace, _ := time.ParseDuration(graceText)
	return TokenRotated(old, succ, by, grace, at), nil
}
