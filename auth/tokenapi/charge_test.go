package tokenapi

// A token API call is charged to, and decided by, the caller's record as
// stored now: a limit narrowed, or a revocation, deactivation or narrower
// ranges made on another replica (this replica's cache still holding the
// former record) bind the very next call, and a caller the store refuses
// is refused before it is charged.

import (
	"context"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

func TestChargeUsesFreshRecord(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{limiter: true})
	caller := f.mint(t, CreateRequest{Name: "caller"})
	if a := f.call(t, "GET", "/v1/tokens", caller.Token, ""); a.status != http.StatusOK { // cached now
		t.Fatalf("list: HTTP %d\n%s", a.status, a.body)
	}
	// Narrowed elsewhere: the store changes, this replica's cache does not.
	f.change(t, caller.ID, func(u *auth.Token) { u.RateLimit, u.RateBurst = 0.001, 1 })
	if a := f.call(t, "GET", "/v1/tokens", caller.Token, ""); a.status != http.StatusOK {
		t.Fatalf("first call under the new limit: HTTP %d\n%s", a.status, a.body)
	}
	mustRefuse(t, f.call(t, "GET", "/v1/tokens", caller.Token, ""), http.StatusTooManyRequests, "rate_limited")
}

// TestFloodOverLimitReadsNoStore: a call over the caller's rate limit as
// cached is refused before the store is read, so a flood of them costs
// the store nothing.
func TestFloodOverLimitReadsNoStore(t *testing.T) {
	reads := &readCounter{}
	f := newLifeFixture(t, lifeOptions{limiter: true, reads: reads})
	caller := f.mint(t, CreateRequest{Name: "flood", RateLimit: 0.001, Burst: 1})
	if a := f.call(t, "GET", "/v1/tokens", caller.Token, ""); a.status != http.StatusOK {
		t.Fatalf("first call: HTTP %d\n%s", a.status, a.body)
	}
	before := reads.n.Load()
	for range 20 {
		mustRefuse(t, f.call(t, "GET", "/v1/tokens", caller.Token, ""), http.StatusTooManyRequests, "rate_limited")
	}
	if n := reads.n.Load() - before; n != 0 {
		t.Errorf("20 calls over the limit read the store %d times, want 0", n)
	}
}

// readCounter counts Get calls on the store it wraps.
type readCounter struct {
	auth.ActivityStore
	n atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, id string) (*auth.Token, error) {
	c.n.Add(1)
	return c.ActivityStore.Get(ctx, id)
}

// TestRefusedCallerRefused: a caller revoked, deactivated, expired or
// moved out of its ranges on another replica is refused by its record as
// stored now, though its cached copy is still usable.
func TestRefusedCallerRefused(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{limiter: true})
	for _, c := range []struct {
		name   string
		change func(u *auth.Token)
		revoke bool
		status int
		code   string
	}{
		{name: "revoked", revoke: true, status: http.StatusUnauthorized, code: "token_revoked"},
		{name: "deactivated", change: func(u *auth.Token) { u.Status = auth.StatusInactive }, status: http.StatusUnauthorized, code: "token_inactive"},
		{name: "expired", change: func(u *auth.Token) { u.ExpiresAt = time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond) },
			status: http.StatusUnauthorized, code: "token_expired"},
		{name: "ranges narrowed", change: func(u *auth.Token) { u.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} },
			status: http.StatusForbidden, code: "ip_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			caller := f.mint(t, CreateRequest{Name: c.name, RateLimit: 100})
			if a := f.call(t, "GET", "/v1/tokens", caller.Token, ""); a.status != http.StatusOK { // cached now
				t.Fatalf("list: HTTP %d\n%s", a.status, a.body)
			}
			if c.revoke {
				if _, err := f.store.Revoke(context.Background(), caller.ID, time.Now()); err != nil {
					t.Fatal(err)
				}
			} else {
				f.change(t, caller.ID, c.change)
			}
			before := f.lim.callsOf(caller.ID)
			mustRefuse(t, f.call(t, "POST", "/v1/tokens", caller.Token, `{"role":"owner","name":"x"}`), c.status, c.code)
			if n := f.lim.callsOf(caller.ID) - before; n > 1 {
				t.Errorf("the refused call was charged %d times, want at most once (by its cached record)", n)
			}
		})
	}
}

// change edits a token's stored record behind this replica's cache, as
// another replica would.
func (f *lifeFixture) change(t *testing.T, id string, edit func(u *auth.Token)) {
	t.Helper()
	if _, err := f.store.Update(context.Background(), id, func(u *auth.Token) error { edit(u); return nil }); err != nil {
		t.Fatal(err)
	}
}
