package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// ExpiringClaimer hands out the tokens whose expiry comes within its
// WarnBefore (set it to ExpiringWithin), each (token, expiry) to one
// caller across every replica; both stores implement it from an index
// kept on every change, so a sweep costs O(tokens coming due), not
// O(tokens).
type ExpiringClaimer interface {
	ClaimExpiring(ctx context.Context, now time.Time) ([]*auth.Token, error)
	UnclaimExpiring(ctx context.Context, t *auth.Token) error
}

// PublishExpiring publishes token.expiring for every live token that
// tokens hands out as expiring within ExpiringWithin of now (and not
// expired). A token whose event cannot be published is unclaimed, for the
// next sweep. Each event also has a DedupKey per token and expiry, so a
// Publisher with a Once publishes it once even if it is claimed again. It
// returns how many it published.
func PublishExpiring(ctx context.Context, tokens ExpiringClaimer, pub EventPublisher, now time.Time) (int, error) {
	claimed, err := tokens.ClaimExpiring(ctx, now)
	published := 0
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, t := range claimed {
		if !Expiring(t, now) {
			continue
		}
		n, err := pub.Publish(ctx, TokenExpiring(t, now))
		if err != nil {
			errs = append(errs, err)
			if err := tokens.UnclaimExpiring(context.WithoutCancel(ctx), t); err != nil {
				errs = append(errs, fmt.Errorf("unclaiming %s: %w", t.ID, err))
			}
			continue
		}
		if n > 0 {
			published++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return published, fmt.Errorf("webhook: publishing token.expiring events: %w", err)
	}
	return published, nil
}

// Expiring reports whether t is live and expires within ExpiringWithin
// after now.
func Expiring(t *auth.Token, now time.Time) bool {
	return !t.Revoked() && !t.ExpiresAt.IsZero() && t.ExpiresAt.After(now) &&
		t.ExpiresAt.Sub(now) <= ExpiringWithin
}
