package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TokenWalker calls fn for every token record of the store. (The stores
// have no such method yet: see docs/webhooks.md.)
type TokenWalker interface {
	EachToken(ctx context.Context, fn func(*auth.Token) error) error
}

// PublishExpiring publishes token.expiring for every live token of tokens
// that expires within ExpiringWithin of now and has not expired. Each
// event has a DedupKey per token and expiry, so sweeping often (and on
// every replica) publishes it once, given a Publisher with a Once. It
// returns how many it published.
func PublishExpiring(ctx context.Context, tokens TokenWalker, pub EventPublisher, now time.Time) (int, error) {
	published := 0
	err := tokens.EachToken(ctx, func(t *auth.Token) error {
		if !Expiring(t, now) {
			return nil
		}
		n, err := pub.Publish(ctx, TokenExpiring(t, now))
		if n > 0 {
			published++
		}
		return err
	})
	if err != nil {
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
