package tokenapi

// A rotation without grace ends the old token in one step, and from that
// step on the old token is refused as revoked (token_revoked): between
// the marking and the revocation, and when the revocation after the
// marking fails, never token_expired.

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// windowStore asks, when the old token is about to be revoked, how the
// gate answers its credential then (seen), and fails that revocation
// when revokeFails.
type windowStore struct {
	auth.Store
	old         string
	revokeFails bool
	probe       func() auth.Code
	mu          sync.Mutex
	seen        []auth.Code
}

func (s *windowStore) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	if id == s.old {
		code := s.probe()
		s.mu.Lock()
		s.seen = append(s.seen, code)
		s.mu.Unlock()
		if s.revokeFails {
			return nil, fmt.Errorf("revoke %s: %w", id, errInjected)
		}
	}
	return s.Store.Revoke(ctx, id, at)
}

func TestNoGraceRotationRevokedAtEveryInstant(t *testing.T) {
	t.Run("filestore", func(t *testing.T) {
		testNoGraceWindow(t, func(t *testing.T) auth.Store {
			s, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("redisstore", func(t *testing.T) {
		c := redistest.Start(t).Client(t)
		n := 0
		testNoGraceWindow(t, func(t *testing.T) auth.Store {
			n++
			s, err := redisstore.New(redisstore.Options{Client: c, Prefix: fmt.Sprintf("windowtest%d:", n), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

func testNoGraceWindow(t *testing.T, open func(t *testing.T) auth.Store) {
	ctx := context.Background()
	h := storetest.NewHasher(t)
	for _, fails := range []bool{false, true} {
		t.Run(fmt.Sprintf("revokeFails=%t", fails), func(t *testing.T) {
			st := open(t)
			old, cred := storetest.NewToken(t, 42, auth.RoleOwner)
			old.ExpiresAt = old.CreatedAt.Add(720 * time.Hour)
			if err := st.Create(ctx, old); err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewValidator(auth.ValidatorOptions{Store: st, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			authn := &auth.Authenticator{Validator: v, Hasher: h}
			probe := func() auth.Code {
				v.Invalidate(old.ID) // as the store's announcement does
				_, code, _ := authn.Authenticate(ctx, "Bearer "+cred, time.Now())
				return code
			}
			ws := &windowStore{Store: st, old: old.ID, revokeFails: fails, probe: probe}
			res, err := Rotate(ctx, ws, h, Rotation{Old: old, Now: time.Now(), Invalidate: v.Invalidate})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if len(ws.seen) == 0 {
				t.Fatal("the old token was never revoked")
			}
			for i, code := range append(ws.seen, probe()) {
				if code != auth.CodeTokenRevoked {
					t.Errorf("the old token's credential, instant %d: %s, want token_revoked", i, code)
				}
			}
			if _, code, _ := authn.Authenticate(ctx, "Bearer "+res.Credential, time.Now()); code != auth.OK {
				t.Errorf("the successor: %s, want ok", code)
			}
		})
	}
}

// A token a rotation replaced whose tombstone was not written (the
// revocation failed) is revoked for the API too: refused, shown as
// revoked, and not changed nor rotated again.
func TestReplacedTokenIsRevoked(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	old := f.mint(t, CreateRequest{Name: "old"})
	next := f.mint(t, CreateRequest{Name: "next"})
	f.change(t, old.ID, func(u *auth.Token) {
		u.RotatedTo, u.Replaced, u.ExpiresAt = next.ID, true, time.Now().UTC().Truncate(time.Millisecond)
	})
	f.valid.Invalidate(old.ID)
	mustRefuse(t, f.call(t, "GET", "/v1/tokens/"+old.ID, old.Token, ""), 401, "token_revoked")
	admin := func(method, path, body string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, method, path, testAdminKey, body)
	}
	mustRefuse(t, admin("PATCH", "/v1/tokens/"+old.ID, `{"expires_in":"720h"}`), 409, "token_revoked")
	mustRefuse(t, admin("POST", "/v1/tokens/"+old.ID+"/rotate", `{"expires_in":"720h"}`), 409, "token_revoked")
	shown, err := f.admin.Get(context.Background(), old.ID)
	if err != nil || shown.Status != "revoked" {
		t.Errorf("show: status %q (%v), want revoked", shown.Status, err)
	}
	if got := f.stored(t, old.ID); !got.Replaced || got.ExpiresAt.After(time.Now()) {
		t.Errorf("the replaced token changed: %+v", got)
	}
}
