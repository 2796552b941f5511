package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

type otherLimiter struct{}

func (otherLimiter) Allow(context.Context, *auth.Token, time.Time) auth.LimitStatus {
	return auth.LimitStatus{}
}

func TestLimitOf(t *testing.T) {
	opts := Options{
		ByRole:      map[auth.Role]Limit{auth.RoleOwner: {Rate: 10}, auth.RoleAccounting: {Rate: 2, Burst: 5}},
		ShadowRoles: []auth.Role{auth.RoleAccounting},
	}
	owner := &auth.Token{ID: "a", Role: auth.RoleOwner}
	own := &auth.Token{ID: "b", Role: auth.RoleOwner, RateLimit: 0.001}
	books := &auth.Token{ID: "c", Role: auth.RoleAccounting}
	shadowed := &auth.Token{ID: "d", Role: auth.RoleOwner, RateLimit: 3, RateBurst: 7, RateShadow: true}
	for _, l := range []auth.Limiter{NewLocal(opts), NewCluster(ClusterOptions{Options: opts})} {
		for _, tc := range []struct {
			tok    *auth.Token
			want   Limit
			shadow bool
		}{
			{owner, Limit{Rate: 10, Burst: 10}, false},
			{own, Limit{Rate: 0.001, Burst: 1}, false},
			{books, Limit{Rate: 2, Burst: 5}, true},
			{shadowed, Limit{Rate: 3, Burst: 7}, true},
		} {
			lim, shadow, ok := LimitOf(l, tc.tok)
			if !ok || lim != tc.want || shadow != tc.shadow {
				t.Errorf("%T: LimitOf(%+v) = %+v, %v, %v; want %+v, %v", l, tc.tok, lim, shadow, ok, tc.want, tc.shadow)
			}
		}
	}
	unlimited := NewLocal(Options{})
	if _, _, ok := LimitOf(unlimited, owner); ok {
		t.Error("LimitOf an unlimited role's token reports a limit")
	}
	if _, _, ok := LimitOf(otherLimiter{}, own); ok {
		t.Error("LimitOf a foreign limiter reports a limit")
	}
}
