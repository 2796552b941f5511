package tokenapi

// A rotation without grace ends the old token in one step, and from that
// step on the old token is refused as revoked (token_revoked): between
// the marking and the revocation, and when the revocation after the
// marking fails, never token_expired.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
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

// faultyActivity serves the token API over a faultyStore; every read of
// the old token after the first (the API's own, before the rotation)
// fails when readsFail.
type faultyActivity struct {
	auth.ActivityStore
	f         *faultyStore
	readsFail bool
	mu        sync.Mutex
	reads     int
}

func (s *faultyActivity) Get(ctx context.Context, id string) (*auth.Token, error) {
	s.mu.Lock()
	if id == s.f.old {
		s.reads++
	}
	fail := s.readsFail && id == s.f.old && s.reads > 1
	s.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("get %s: %w", id, errInjected)
	}
	return s.ActivityStore.Get(ctx, id)
}

func (s *faultyActivity) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	return s.f.Update(ctx, id, fn)
}

func (s *faultyActivity) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	return s.f.Revoke(ctx, id, at)
}

// A rotation whose retirement failed tells its caller which token works:
// the old one, when the retirement is known not to be stored (503, the
// new one withdrawn); the new one, handed out, when the store could not
// say (200, with what to do about the old one).
func TestRotationSaysWhichTokenWorks(t *testing.T) {
	for _, readsFail := range []bool{false, true} {
		t.Run(fmt.Sprintf("readsFail=%t", readsFail), func(t *testing.T) {
			fa := &faultyActivity{f: &faultyStore{retireFails: true}, readsFail: readsFail}
			f := newFixture(t, func(s auth.ActivityStore) auth.ActivityStore {
				fa.ActivityStore, fa.f.Store = s, s
				return fa
			})
			old := f.create(t, CreateRequest{Name: "old"})
			fa.f.old = old.ID
			a := rawCall(t, f.srv.Client(), f.srv.URL, "POST", "/v1/tokens/"+old.ID+"/rotate", testAdminKey, `{"grace":"1h"}`)
			if !readsFail {
				mustRefuse(t, a, http.StatusServiceUnavailable, "store_unavailable")
				if !strings.Contains(a.err.Message, old.ID+" still works") {
					t.Errorf("message %q does not say the old token still works", a.err.Message)
				}
				return
			}
			var res RotateResponse
			if err := json.Unmarshal([]byte(a.body), &res); err != nil || a.status != http.StatusOK || res.Token.Token == "" {
				t.Fatalf("HTTP %d, want 200 with the new token\n%s", a.status, a.body)
			}
			if !strings.Contains(res.Message, "new token works") || !strings.Contains(res.Message, "DELETE /v1/tokens/"+old.ID) {
				t.Errorf("message %q does not say which token works and what to do", res.Message)
			}
			if !strings.Contains(res.Warning, "may still work") || !strings.HasSuffix(res.Message, res.Warning) {
				t.Errorf("warning %q: want the unconfirmed end said on its own, and at the end of the message %q", res.Warning, res.Message)
			}
			if next, err := fa.ActivityStore.Get(context.Background(), res.Token.ID); err != nil || next.Ended() {
				t.Errorf("the new token handed out: %+v, %v; want it live", next, err)
			}
		})
	}
}
