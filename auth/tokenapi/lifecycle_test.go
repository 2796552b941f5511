package tokenapi

// Tests of the rule that no token widens itself (lifecycle.go), through
// the public mount (/tswgate/v1/…) with real credentials, a real
// Validator and an embedded store.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeLimiter admits Burst requests of each limited token (its limit per
// the fixture's effective limits), then refuses them; down makes it
// unable to decide.
type fakeLimiter struct {
	mu    sync.Mutex
	eff   func(*auth.Token) Limit
	used  map[string]int
	calls map[string]int
	down  bool
}

func (l *fakeLimiter) Allow(_ context.Context, t *auth.Token, _ time.Time) auth.LimitStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[t.ID]++
	if l.down {
		return auth.LimitStatus{Enabled: true, Unavailable: true}
	}
	lim := l.eff(t)
	if lim.Rate == 0 {
		return auth.LimitStatus{}
	}
	l.used[t.ID]++
	if l.used[t.ID] > burstOf(lim.Rate, lim.Burst) {
		return auth.LimitStatus{Enabled: true, Over: true, RetryAfter: time.Duration(float64(time.Second) / lim.Rate)}
	}
	return auth.LimitStatus{Enabled: true, Allowed: true}
}

func (l *fakeLimiter) callsOf(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[id]
}

// lifeFixture is the token API mounted twice over one store, as the
// gateway mounts it: for admin keys and tokens (admin), and for tokens
// under /tswgate (public).
type lifeFixture struct {
	store  *filestore.Store
	valid  *auth.Validator
	admin  *Client
	public *httptest.Server
	log    *lockedBuffer
	lim    *fakeLimiter
	// skew moves the API's clock (for the audit trail's per-minute
	// sampling).
	mu   sync.Mutex
	skew time.Duration
}

type lifeOptions struct {
	// limiter charges self-service calls to a fakeLimiter.
	limiter bool
	// roles are the role limits of EffectiveLimit.
	roles map[auth.Role]Limit
	// realLimiter, when set, charges self-service calls to it instead.
	realLimiter auth.Limiter
	// reads, when set, counts the API's reads of one token (Store.Get).
	reads *readCounter
}

func newLifeFixture(t *testing.T, o lifeOptions) *lifeFixture {
	t.Helper()
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &lifeFixture{store: st, log: &lockedBuffer{}}
	if f.valid, err = auth.NewValidator(auth.ValidatorOptions{Store: st, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.valid.Close)
	hasher := storetest.NewHasher(t)
	eff := func(tok *auth.Token) Limit {
		if tok.RateLimit > 0 {
			return ownLimit(tok)
		}
		return o.roles[tok.Role]
	}
	opts := Options{
		Store:          st,
		Hasher:         hasher,
		Tokens:         &auth.Authenticator{Validator: f.valid, Hasher: hasher},
		Invalidate:     f.valid.Invalidate,
		EffectiveLimit: eff,
		Now:            f.now,
		Logger:         slog.New(slog.NewJSONHandler(f.log, nil)),
	}
	if o.reads != nil {
		o.reads.ActivityStore = st
		opts.Store = o.reads
	}
	if o.limiter {
		f.lim = &fakeLimiter{eff: eff, used: map[string]int{}, calls: map[string]int{}}
		opts.Limiter = f.lim
	}
	if o.realLimiter != nil {
		opts.Limiter = o.realLimiter
	}
	adminOpts := opts
	adminOpts.AdminKeys = []string{testAdminKey}
	adminAPI, err := New(adminOpts)
	if err != nil {
		t.Fatal(err)
	}
	publicOpts := opts
	publicOpts.Prefix = "/tswgate"
	publicAPI, err := New(publicOpts)
	if err != nil {
		t.Fatal(err)
	}
	adminSrv := httptest.NewServer(adminAPI)
	t.Cleanup(adminSrv.Close)
	f.public = httptest.NewServer(publicAPI)
	t.Cleanup(f.public.Close)
	f.admin = &Client{BaseURL: adminSrv.URL, AdminKey: testAdminKey, HTTP: adminSrv.Client()}
	return f
}

func (f *lifeFixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Add(f.skew)
}

// nextMinute moves the clock on by a minute, past the trail's sampling.
func (f *lifeFixture) nextMinute() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.skew += time.Minute
}

// mint creates a token with the admin key (project 42, owner, by default).
func (f *lifeFixture) mint(t *testing.T, req CreateRequest) Token {
	t.Helper()
	if req.ProjectID == 0 {
		req.ProjectID = 42
	}
	if req.Role == "" {
		req.Role = "owner"
	}
	if req.Name == "" {
		req.Name = "minted"
	}
	tok, err := f.admin.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("minting %+v: %v", req, err)
	}
	return tok
}

// self is a client of the public mount acting as cred.
func (f *lifeFixture) self(cred string) *Client {
	return &Client{BaseURL: f.public.URL + "/tswgate", AdminKey: cred, HTTP: f.public.Client()}
}

// answer is a raw answer of the public mount.
type answer struct {
	status int
	header http.Header
	body   string
	err    ErrorResponse
}

// call sends method path (under /tswgate) with cred and body.
func (f *lifeFixture) call(t *testing.T, method, path, cred, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.public.URL+"/tswgate"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := f.public.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(data)}
	_ = json.Unmarshal(data, &a.err)
	return a
}

// mustRefuse checks a refusal's status and code.
func mustRefuse(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.err.Code != code || a.header.Get("X-Tsw-Error-Code") != code {
		t.Fatalf("HTTP %d %q, want %d %q\n%s", a.status, a.err.Code, status, code, a.body)
	}
}

// trail returns a project's audit events, newest first.
func (f *lifeFixture) trail(t *testing.T, project int64) []auth.AuditEvent {
	t.Helper()
	page, err := f.store.ReadAudit(context.Background(), auth.AuditQuery{ProjectID: project, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// refusals counts a project's refused events by "action reason".
func (f *lifeFixture) refusals(t *testing.T, project int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, ev := range f.trail(t, project) {
		if ev.Outcome == auth.OutcomeRefused {
			out[ev.Action+" "+ev.Reason]++
		}
	}
	return out
}

func (f *lifeFixture) stored(t *testing.T, id string) *auth.Token {
	t.Helper()
	tok, err := f.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The case seen on main: after rotate --grace 1h the old token set its own
// expiry to 2036 and minted a never-expiring Owner token. A token in its
// grace period may only read and revoke.
func TestRotatedTokenMayOnlyReadAndRevoke(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	old := f.mint(t, CreateRequest{Name: "ci"})
	sibling := f.mint(t, CreateRequest{Name: "sibling"})
	resp, err := f.self(old.Token).Rotate(context.Background(), old.ID, RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatalf("self-rotation: %v", err)
	}
	next := resp.Token
	if resp.Previous.RotatedTo != next.ID || resp.Previous.ExpiresAt == nil {
		t.Fatalf("previous = %+v, want rotated_to %s and an expiry", resp.Previous, next.ID)
	}
	if shown, err := f.admin.Get(context.Background(), old.ID); err != nil || shown.RotatedTo != next.ID {
		t.Fatalf("show of the old token: %+v, %v; want rotated_to %s", shown, err, next.ID)
	}
	until := f.stored(t, old.ID).ExpiresAt
	for _, tc := range []struct{ method, path, body string }{
		{"PATCH", "/v1/tokens/" + old.ID, `{"expires_in":"87600h"}`},
		{"PATCH", "/v1/tokens/" + old.ID, `{"expires_at":"2036-01-01T00:00:00Z"}`},
		{"POST", "/v1/tokens", `{"role":"owner","name":"forever"}`},
		{"POST", "/v1/tokens/" + sibling.ID + "/rotate", `{"grace":"1h"}`},
		{"POST", "/v1/tokens/" + old.ID + "/rotate", ``},
		{"PATCH", "/v1/tokens/" + sibling.ID, `{"status":"inactive"}`},
	} {
		a := f.call(t, tc.method, tc.path, old.Token, tc.body)
		mustRefuse(t, a, http.StatusForbidden, "token_rotated")
		if !strings.Contains(a.err.Message, next.ID) || !strings.Contains(a.err.Message, "works until "+stamp(until)) {
			t.Errorf("%s %s: message %q names neither the successor nor the end of the grace period", tc.method, tc.path, a.err.Message)
		}
	}
	if got := f.stored(t, old.ID); !got.ExpiresAt.Equal(until) {
		t.Errorf("the old token's expiry moved to %v", got.ExpiresAt)
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 3 {
		t.Errorf("%d live tokens, want 3 (old, its successor, the sibling): the rotated token made one", len(l))
	}
	// Reading and revoking are allowed.
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/tokens"}, {"GET", "/v1/tokens/" + old.ID}, {"GET", "/v1/audit"}, {"GET", "/v1/policy"},
		{"DELETE", "/v1/tokens/" + sibling.ID},
	} {
		if a := f.call(t, tc.method, tc.path, old.Token, ""); a.status != http.StatusOK {
			t.Errorf("%s %s by the rotated token: HTTP %d\n%s", tc.method, tc.path, a.status, a.body)
		}
	}
	if n := f.refusals(t, 42)["token.update token_rotated"]; n != 1 {
		t.Errorf("%d token.update token_rotated events, want 1 (sampled)", n)
	}
	// The successor and admin keys are not bound.
	if _, err := f.self(next.Token).Create(context.Background(), CreateRequest{Role: "owner", Name: "by the successor"}); err != nil {
		t.Errorf("the successor cannot create: %v", err)
	}
	if _, err := f.admin.Update(context.Background(), old.ID, UpdateRequest{ExpiresIn: ptr("2h")}); err != nil {
		t.Errorf("the admin key cannot extend the old token: %v", err)
	}
}

// A rotation this replica did not see yet (a stale cache entry) binds the
// old token all the same: the caller's record is read afresh for changes.
func TestRotatedTokenStaleCache(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	old := f.mint(t, CreateRequest{})
	other := f.mint(t, CreateRequest{})
	if a := f.call(t, "GET", "/v1/tokens", old.Token, ""); a.status != 200 { // cached now
		t.Fatalf("list: HTTP %d", a.status)
	}
	// Rotated elsewhere: the store changes, this replica's cache does not.
	if _, err := f.store.Update(context.Background(), old.ID, func(u *auth.Token) error {
		u.ExpiresAt, u.RotatedTo = time.Now().Add(time.Hour), other.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.call(t, "PATCH", "/v1/tokens/"+old.ID, old.Token, `{"expires_in":"87600h"}`), 403, "token_rotated")
	mustRefuse(t, f.call(t, "POST", "/v1/tokens", old.Token, `{"role":"owner","name":"x"}`), 403, "token_rotated")
	// Revoked elsewhere: refused as revoked.
	if _, err := f.store.Revoke(context.Background(), other.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if a := f.call(t, "GET", "/v1/tokens", other.Token, ""); a.status != 401 {
		t.Logf("list by a token revoked behind the cache: HTTP %d (served from the cache)", a.status)
	}
	mustRefuse(t, f.call(t, "POST", "/v1/tokens", other.Token, `{"role":"owner","name":"x"}`), 401, "token_revoked")
}

// A token with an expiry creates only tokens that expire at or before it.
func TestLifetimeCreate(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{ExpiresIn: "1h"})
	end := f.stored(t, caller.ID).ExpiresAt
	for _, body := range []string{
		`{"role":"owner","name":"forever"}`,
		`{"role":"accounting","name":"longer","expires_in":"2h"}`,
		`{"role":"owner","name":"later","expires_at":"` + end.Add(time.Millisecond).Format(time.RFC3339Nano) + `"}`,
	} {
		a := f.call(t, "POST", "/v1/tokens", caller.Token, body)
		mustRefuse(t, a, http.StatusForbidden, "lifetime_forbidden")
		if !strings.Contains(a.err.Message, stamp(end)) {
			t.Errorf("message %q does not name the latest allowed time %s", a.err.Message, stamp(end))
		}
	}
	for _, body := range []string{
		`{"role":"owner","name":"same end","expires_at":"` + end.Format(time.RFC3339Nano) + `"}`,
		`{"role":"owner","name":"shorter","expires_in":"30m"}`,
	} {
		if a := f.call(t, "POST", "/v1/tokens", caller.Token, body); a.status != http.StatusCreated {
			t.Errorf("POST %s: HTTP %d\n%s", body, a.status, a.body)
		}
	}
	if n := f.refusals(t, 42)["token.create lifetime_forbidden"]; n != 1 {
		t.Errorf("%d token.create lifetime_forbidden events, want 1 (sampled)", n)
	}
	// Without an expiry of its own, a token may create one without.
	free := f.mint(t, CreateRequest{})
	if a := f.call(t, "POST", "/v1/tokens", free.Token, `{"role":"owner","name":"forever"}`); a.status != http.StatusCreated {
		t.Errorf("create by a token without expiry: HTTP %d\n%s", a.status, a.body)
	}
}

// An update by a token brings expiries forward only, never past its own,
// and does not activate a token that outlives it.
func TestLifetimeUpdate(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{ExpiresIn: "1h"})
	free := f.mint(t, CreateRequest{})
	target := f.mint(t, CreateRequest{Name: "target"})
	patch := func(cred, id, body string) answer {
		return f.call(t, "PATCH", "/v1/tokens/"+id, cred, body)
	}
	ok := func(a answer) {
		t.Helper()
		if a.status != http.StatusOK {
			t.Fatalf("HTTP %d, want 200\n%s", a.status, a.body)
		}
	}
	ok(patch(caller.Token, target.ID, `{"expires_in":"30m"}`)) // an expiry for one without
	mustRefuse(t, patch(caller.Token, target.ID, `{"expires_in":"45m"}`), 403, "lifetime_forbidden")
	ok(patch(caller.Token, target.ID, `{"expires_in":"10m"}`))
	mustRefuse(t, patch(free.Token, target.ID, `{"expires_in":"20m"}`), 403, "lifetime_forbidden")
	// Itself: never later.
	a := patch(caller.Token, caller.ID, `{"expires_in":"87600h"}`)
	mustRefuse(t, a, 403, "lifetime_forbidden")
	if !strings.Contains(a.err.Message, stamp(f.stored(t, caller.ID).ExpiresAt)) {
		t.Errorf("message %q does not name the latest allowed time", a.err.Message)
	}
	ok(patch(caller.Token, caller.ID, `{"expires_in":"50m"}`))
	// A token without expiry may not be given one past the caller's.
	other := f.mint(t, CreateRequest{Name: "other"})
	mustRefuse(t, patch(caller.Token, other.ID, `{"expires_in":"2h"}`), 403, "lifetime_forbidden")
	// Activation.
	ok(patch(caller.Token, other.ID, `{"status":"inactive"}`))
	mustRefuse(t, patch(caller.Token, other.ID, `{"status":"active"}`), 403, "lifetime_forbidden")
	if got := f.stored(t, other.ID); got.Status != auth.StatusInactive || !got.ExpiresAt.IsZero() {
		t.Fatalf("a refused activation changed the token: %+v", got)
	}
	ok(patch(caller.Token, other.ID, `{"status":"active","expires_in":"5m"}`))
	ok(patch(free.Token, other.ID, `{"status":"inactive"}`))
	ok(patch(free.Token, other.ID, `{"status":"active"}`)) // the caller has no expiry
	// Admin keys are not bound.
	if _, err := f.admin.Update(context.Background(), target.ID, UpdateRequest{ExpiresIn: ptr("87600h")}); err != nil {
		t.Errorf("admin extension: %v", err)
	}
	if n := f.refusals(t, 42)["token.update lifetime_forbidden"]; n != 2 {
		t.Errorf("%d token.update lifetime_forbidden events, want 2 (one per token and minute)", n)
	}
	if n := f.refusals(t, 42)["token.activate lifetime_forbidden"]; n != 1 {
		t.Errorf("%d token.activate lifetime_forbidden events, want 1", n)
	}
}

// A rotation's successor keeps the old token's lifetime from now, but never
// ends after the token asking; self-rotation never lengthens a life.
func TestRotateLifetime(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{ExpiresIn: "1h"})
	end := f.stored(t, caller.ID).ExpiresAt
	free := f.mint(t, CreateRequest{})
	long := f.mint(t, CreateRequest{ExpiresIn: "720h"})
	never := f.mint(t, CreateRequest{})
	long2 := f.mint(t, CreateRequest{ExpiresIn: "720h"})
	for _, tc := range []struct {
		by, id string
		want   func(*time.Time) bool
	}{
		{caller.Token, long.ID, func(e *time.Time) bool { return e != nil && e.Equal(end) }},
		{caller.Token, never.ID, func(e *time.Time) bool { return e != nil && e.Equal(end) }},
		{free.Token, long2.ID, func(e *time.Time) bool { return e != nil && e.After(time.Now().Add(719*time.Hour)) }},
	} {
		resp, err := f.self(tc.by).Rotate(context.Background(), tc.id, RotateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !tc.want(resp.Token.ExpiresAt) {
			t.Errorf("successor of %s expires at %v (caller's end %v)", tc.id, resp.Token.ExpiresAt, end)
		}
	}
	resp, err := f.self(caller.Token).Rotate(context.Background(), caller.ID, RotateRequest{Grace: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.Token.ExpiresAt; e == nil || e.After(end) {
		t.Errorf("self-rotation: successor expires at %v, after the caller's %v", e, end)
	}
	if e := resp.Previous.ExpiresAt; e == nil || !e.Equal(end) {
		t.Errorf("self-rotation with 2h grace: old token expires at %v, want unchanged %v", e, end)
	}
}

func TestInheritLimit(t *testing.T) {
	roles := map[auth.Role]Limit{auth.RoleAccounting: {Rate: 5, Burst: 5}}
	eff := func(t *auth.Token) Limit {
		if t.RateLimit > 0 {
			return ownLimit(t)
		}
		return roles[t.Role]
	}
	for _, tc := range []struct {
		name       string
		child      auth.Token
		ceiling    Limit
		rate       float64
		burst      int
		shadow     bool
		changedRec bool
	}{
		{"no ceiling", auth.Token{Role: auth.RoleOwner}, Limit{}, 0, 0, false, false},
		{"unlimited child", auth.Token{Role: auth.RoleOwner}, Limit{Rate: 0.001}, 0.001, 1, false, true},
		{"role stricter", auth.Token{Role: auth.RoleAccounting}, Limit{Rate: 10, Burst: 20}, 0, 0, false, false},
		{"ceiling stricter than role", auth.Token{Role: auth.RoleAccounting}, Limit{Rate: 2, Burst: 4}, 2, 4, false, true},
		{"mixed: lower rate, higher burst", auth.Token{Role: auth.RoleAccounting}, Limit{Rate: 2, Burst: 50}, 2, 5, false, true},
		{"own limit kept", auth.Token{Role: auth.RoleOwner, RateLimit: 1, RateBurst: 2}, Limit{Rate: 3, Burst: 3}, 1, 2, false, false},
		{"shadowed child, enforced ceiling", auth.Token{Role: auth.RoleOwner, RateLimit: 1, RateShadow: true}, Limit{Rate: 3}, 1, 0, false, true},
		{"both shadowed", auth.Token{Role: auth.RoleOwner, RateLimit: 1, RateShadow: true}, Limit{Rate: 3, Shadow: true}, 1, 0, true, false},
	} {
		child := tc.child
		changed := inheritLimit(&child, tc.ceiling, eff)
		if child.RateLimit != tc.rate || child.RateBurst != tc.burst || child.RateShadow != tc.shadow || changed != tc.changedRec {
			t.Errorf("%s: rate %g burst %d shadow %v changed %v; want %g %d %v %v", tc.name,
				child.RateLimit, child.RateBurst, child.RateShadow, changed, tc.rate, tc.burst, tc.shadow, tc.changedRec)
		}
	}
}

// A token made by a token gets no wider limit than its maker's effective
// one (its own, else its role's).
func TestLimitInherited(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{roles: map[auth.Role]Limit{auth.RoleOwner: {Rate: 50, Burst: 100}}})
	slow := f.mint(t, CreateRequest{RateLimit: 0.001})
	child, err := f.self(slow.Token).Create(context.Background(), CreateRequest{Role: "accounting", Name: "child"})
	if err != nil {
		t.Fatal(err)
	}
	if child.RateLimit != 0.001 || child.Burst != 1 {
		t.Errorf("child of a 0.001/s token: rate %g burst %d, want 0.001 and 1", child.RateLimit, child.Burst)
	}
	// Rotating an unlimited sibling gives a successor limited like the
	// token asking; a shadowed one, enforced.
	sib := f.mint(t, CreateRequest{Role: "accounting"})
	shadow := f.mint(t, CreateRequest{RateLimit: 100})
	if _, err := f.admin.Update(context.Background(), shadow.ID, UpdateRequest{RateShadow: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sib.ID, shadow.ID} {
		resp, err := f.self(slow.Token).Rotate(context.Background(), id, RotateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if next := resp.Token; next.RateLimit != 0.001 || next.Burst != 1 || next.RateShadow {
			t.Errorf("successor of %s rotated by a 0.001/s token: %+v", id, next)
		}
	}
	// The role's limit is the maker's when it has none of its own.
	roleLimited := f.mint(t, CreateRequest{})
	child, err = f.self(roleLimited.Token).Create(context.Background(), CreateRequest{Role: "accounting", Name: "books"})
	if err != nil {
		t.Fatal(err)
	}
	if child.RateLimit != 50 || child.Burst != 100 {
		t.Errorf("child of an owner token limited by its role (50/s): %+v", child)
	}
	// The same limit as the child's role: none of its own.
	sameRole, err := f.self(roleLimited.Token).Create(context.Background(), CreateRequest{Role: "owner", Name: "peer"})
	if err != nil || sameRole.RateLimit != 0 {
		t.Errorf("owner child of an owner token limited by the role: %+v, %v; want no limit of its own", sameRole, err)
	}
	// Rate limits stay the operator's.
	mustRefuse(t, f.call(t, "POST", "/v1/tokens", slow.Token, `{"role":"owner","name":"x","rate_limit":5}`), 403, "limit_forbidden")
}

// Self-service calls count against the caller's rate limit.
func TestSelfServiceRateLimited(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{limiter: true})
	slow := f.mint(t, CreateRequest{RateLimit: 0.001})
	a := f.call(t, "POST", "/v1/tokens", slow.Token, `{"role":"owner","name":"child"}`)
	if a.status != http.StatusCreated {
		t.Fatalf("first call: HTTP %d\n%s", a.status, a.body)
	}
	var created TokenResponse
	if err := json.Unmarshal([]byte(a.body), &created); err != nil {
		t.Fatal(err)
	}
	a = f.call(t, "GET", "/v1/tokens", slow.Token, "")
	mustRefuse(t, a, http.StatusTooManyRequests, "rate_limited")
	if ra := a.header.Get("Retry-After"); ra != "1000" {
		t.Errorf("Retry-After = %q, want 1000 (one request in 1000s)", ra)
	}
	// The child inherited the limit: one call, then 429.
	child := created.Token
	if a := f.call(t, "GET", "/v1/tokens/"+child.ID, child.Token, ""); a.status != http.StatusOK {
		t.Fatalf("the child's first call: HTTP %d\n%s", a.status, a.body)
	}
	mustRefuse(t, f.call(t, "GET", "/v1/audit", child.Token, ""), 429, "rate_limited")
	if n := f.refusals(t, 42)["token.list rate_limited"]; n != 1 {
		t.Errorf("%d token.list rate_limited events, want 1", n)
	}
	// An Accounting token's calls count too; admin keys are not charged.
	if _, err := f.admin.List(context.Background(), 42); err != nil {
		t.Fatal(err)
	}
	if f.lim.callsOf(slow.ID) != 2 {
		t.Errorf("the limiter was asked %d times for the slow token, want 2", f.lim.callsOf(slow.ID))
	}
	books := f.mint(t, CreateRequest{Role: "accounting"})
	mustRefuse(t, f.call(t, "GET", "/v1/tokens", books.Token, ""), 403, "role_forbidden")
	if f.lim.callsOf(books.ID) != 1 {
		t.Errorf("an Accounting token's call was not charged")
	}
	// A limiter that cannot decide: 503, never a bad credential.
	f.lim.mu.Lock()
	f.lim.down = true
	f.lim.mu.Unlock()
	a = f.call(t, "GET", "/v1/tokens", books.Token, "")
	mustRefuse(t, a, http.StatusServiceUnavailable, "store_unavailable")
	if a.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// A path value is recorded or logged only once it is a valid id: a whole
// credential pasted as the id never reaches the trail or the log.
func TestAuditNeverHoldsCredential(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	books := f.mint(t, CreateRequest{Role: "accounting"})
	owner := f.mint(t, CreateRequest{})
	secrets := []string{books.Token[auth.IDLen+1:], owner.Token[auth.IDLen+1:]}
	mustRefuse(t, f.call(t, "GET", "/v1/tokens/"+books.Token, books.Token, ""), 403, "role_forbidden")
	mustRefuse(t, f.call(t, "PATCH", "/v1/tokens/"+owner.Token, books.Token, `{"status":"inactive"}`), 403, "role_forbidden")
	mustRefuse(t, f.call(t, "DELETE", "/v1/tokens/"+owner.Token, MustWrongSecret(t, owner.Token), ""), 401, "invalid_token")
	a := f.call(t, "GET", "/v1/tokens/"+owner.Token, owner.Token, "")
	mustRefuse(t, a, 400, "invalid_request")
	a2 := f.call(t, "GET", "/v1/tokens/"+strings.Replace(owner.Token, "tswsk_", "tswsk%5F", 1), owner.Token, "")
	mustRefuse(t, a2, 400, "invalid_request")
	// The admin mount, with a wrong admin key.
	req, _ := http.NewRequest("GET", f.admin.BaseURL+"/v1/tokens/"+owner.Token, nil)
	req.Header.Set("Authorization", "Bearer not-the-admin-key")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong admin key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	var events []auth.AuditEvent
	for _, p := range []int64{0, 42} {
		events = append(events, f.trail(t, p)...)
	}
	if len(events) < 4 {
		t.Fatalf("%d refusals recorded, want at least 4: %+v", len(events), events)
	}
	everything := f.log.String() + a.body + a2.body
	for _, ev := range events {
		if ev.Outcome == auth.OutcomeRefused && ev.TokenID != "" {
			t.Errorf("refusal recorded with token_id %q: only a valid id may be", ev.TokenID)
		}
		data, _ := json.Marshal(ev)
		everything += string(data)
	}
	for _, s := range secrets {
		if strings.Contains(everything, s) {
			t.Fatalf("a secret reached the trail, the log or an answer:\n%s", everything)
		}
	}
}

// MustWrongSecret returns cred with another secret whose checksum is
// valid: a well-formed credential of the same id that does not verify.
func MustWrongSecret(t *testing.T, cred string) string {
	t.Helper()
	_, other, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	body := cred[:auth.IDLen] + other[auth.IDLen:auth.CredentialLen-6]
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	v := crc32.ChecksumIEEE([]byte(body))
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = digits[v%62]
		v /= 62
	}
	if wrong := body + string(sum); auth.ValidCredential(wrong) && wrong != cred {
		return wrong
	}
	t.Fatal("could not build a well-formed wrong credential")
	return ""
}

// Every string field of an audit event goes through auth.RedactSecrets,
// whichever field a secret got into.
func TestEventRedactsEveryField(t *testing.T) {
	_, cred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	a := &api{Options: Options{Now: time.Now}}
	var ev auth.AuditEvent
	v := reflect.ValueOf(&ev).Elem()
	for i := range v.NumField() {
		if v.Field(i).Kind() == reflect.String {
			v.Field(i).SetString("x " + cred + " y")
		}
	}
	r := httptest.NewRequest("GET", "/v1/tokens", nil)
	r.RemoteAddr = cred
	out := a.event(r, ev)
	data, _ := json.Marshal(out)
	if strings.Contains(string(data), cred[auth.IDLen+1:]) {
		t.Fatalf("an event field kept the secret: %s", data)
	}
	if !strings.Contains(string(data), auth.Redacted) {
		t.Fatalf("nothing redacted: %s", data)
	}
}

// An Owner token asking for another project's token learns nothing: the
// answer and its own trail are those of an unknown id, sampled alike; the
// attempt goes to the other project's trail.
func TestUnknownAndForeignIdentical(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	owner := f.mint(t, CreateRequest{})
	foreign := f.mint(t, CreateRequest{ProjectID: 43})
	unknown := "tsw_" + strings.Repeat("Z", 20)
	for _, tc := range []struct{ method, suffix, body, action string }{
		{"GET", "", "", "token.show"},
		{"PATCH", "", `{"status":"inactive"}`, "token.deactivate"},
		{"POST", "/rotate", `{"grace":"1h"}`, "token.rotate"},
		{"DELETE", "", "", "token.revoke"},
	} {
		f.nextMinute()
		af := f.call(t, tc.method, "/v1/tokens/"+foreign.ID+tc.suffix, owner.Token, tc.body)
		f.nextMinute()
		au := f.call(t, tc.method, "/v1/tokens/"+unknown+tc.suffix, owner.Token, tc.body)
		mustRefuse(t, af, 404, "token_not_found")
		if af.body != au.body || af.status != au.status {
			t.Errorf("%s: foreign id answered %d %s, unknown id %d %s", tc.method, af.status, af.body, au.status, au.body)
		}
		evs := f.trail(t, 42)
		if len(evs) < 2 {
			t.Fatalf("%d events in the caller's trail", len(evs))
		}
		eu, ef := evs[0], evs[1] // newest first
		if ef.TokenID != foreign.ID || eu.TokenID != unknown {
			t.Fatalf("%s: events %+v / %+v", tc.method, ef, eu)
		}
		if shape(ef) != shape(eu) {
			t.Errorf("%s: the caller's trail tells them apart:\nforeign %s\nunknown %s", tc.method, shape(ef), shape(eu))
		}
		if eu.Reason != "token_not_found" || eu.Action != tc.action {
			t.Errorf("%s: recorded as %s %s", tc.method, eu.Action, eu.Reason)
		}
		// Sampled alike: within a minute, the second attempt of either
		// kind adds nothing.
		n := len(f.trail(t, 42))
		f.call(t, tc.method, "/v1/tokens/"+foreign.ID+tc.suffix, owner.Token, tc.body)
		f.call(t, tc.method, "/v1/tokens/"+unknown+tc.suffix, owner.Token, tc.body)
		if m := len(f.trail(t, 42)); m != n {
			t.Errorf("%s: %d more events within the minute", tc.method, m-n)
		}
	}
	// The other project's trail has the attempts, recorded in the
	// background.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]bool{}
		for _, ev := range f.trail(t, 43) {
			if ev.Reason == "project_forbidden" && ev.Actor == owner.ID && ev.TokenID == foreign.ID {
				got[ev.Action] = true
			}
		}
		if len(got) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("project 43's trail has the attempts %v, want 4 actions", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.stored(t, foreign.ID); got.Status != auth.StatusActive || got.Revoked() || got.Rotated() {
		t.Errorf("the foreign token changed: %+v", got)
	}
}

// shape is an event without what tells its instances apart.
func shape(ev auth.AuditEvent) string {
	ev.ID, ev.TokenID, ev.Time = "", "", time.Time{}
	data, _ := json.Marshal(ev)
	return string(data)
}

// canceledStore fails every read made with a canceled context as Redis
// does: ErrUnavailable wrapping the context's error.
type canceledStore struct{ auth.ActivityStore }

func (s canceledStore) Get(ctx context.Context, id string) (*auth.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("test store: get %s: %w: %w", id, auth.ErrUnavailable, err)
	}
	return s.ActivityStore.Get(ctx, id)
}

func (s canceledStore) ListPage(ctx context.Context, q auth.ListQuery) (auth.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return auth.ListPage{}, fmt.Errorf("test store: list: %w: %w", auth.ErrUnavailable, err)
	}
	return s.ActivityStore.ListPage(ctx, q)
}

// ctxAuthenticator is the gateway's authenticator, but like a store read
// it cannot answer once the request's context is canceled.
type ctxAuthenticator struct{ TokenAuthenticator }

func (c ctxAuthenticator) Authenticate(ctx context.Context, header string, now time.Time) (*auth.Token, auth.Code, error) {
	if err := ctx.Err(); err != nil {
		return nil, auth.CodeStoreUnavailable, err
	}
	return c.TokenAuthenticator.Authenticate(ctx, header, now)
}

// cancelingLimiter cannot decide: the client went away meanwhile.
type cancelingLimiter context.CancelFunc

func (c cancelingLimiter) Allow(context.Context, *auth.Token, time.Time) auth.LimitStatus {
	c()
	return auth.LimitStatus{Enabled: true, Unavailable: true}
}

// A request whose client went away is recorded as client closed (499),
// never answered or logged as 503 store_unavailable.
func TestClientClosed(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{limiter: true})
	owner := f.mint(t, CreateRequest{})
	log := &lockedBuffer{}
	hasher := storetest.NewHasher(t)
	h, err := New(Options{
		Store:     canceledStore{f.store},
		Hasher:    hasher,
		AdminKeys: []string{testAdminKey},
		Tokens:    ctxAuthenticator{&auth.Authenticator{Validator: f.valid, Hasher: hasher}},
		Limiter:   f.lim,
		Logger:    slog.New(slog.NewJSONHandler(log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct{ method, path, cred string }{
		{"GET", "/v1/tokens/" + owner.ID, testAdminKey},
		{"GET", "/v1/tokens?project_id=42", testAdminKey},
		{"POST", "/v1/tokens/" + owner.ID + "/rotate", testAdminKey},
		{"GET", "/v1/tokens", owner.Token}, // authentication
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil).WithContext(gone)
		req.Header.Set("Authorization", "Bearer "+tc.cred)
		h.ServeHTTP(rec, req)
		if rec.Code != StatusClientClosed || rec.Header().Get("X-Tsw-Error-Code") != "client_closed" {
			t.Errorf("%s %s with the client gone: HTTP %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	// The client leaves while the limiter decides.
	ctx, cancel := context.WithCancel(context.Background())
	h, err = New(Options{
		Store:   canceledStore{f.store},
		Hasher:  hasher,
		Tokens:  ctxAuthenticator{&auth.Authenticator{Validator: f.valid, Hasher: hasher}},
		Limiter: cancelingLimiter(cancel),
		Logger:  slog.New(slog.NewJSONHandler(log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/tokens", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+owner.Token)
	h.ServeHTTP(rec, req)
	if rec.Code != StatusClientClosed {
		t.Errorf("limiter unavailable with the client gone: HTTP %d %s", rec.Code, rec.Body)
	}
	logs := log.String()
	if strings.Contains(logs, "store_unavailable") || strings.Contains(logs, `"level":"ERROR"`) || strings.Count(logs, `"status":499`) != 5 {
		t.Errorf("want five client-closed lines (status 499) and no error:\n%s", logs)
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 1 {
		t.Errorf("%d live tokens after a rotation whose client was gone, want 1", len(l))
	}
}

// Activating a token grants it afresh: a token may activate only tokens
// limited at most as it is, as it may create only such tokens.
func TestActivationWithinLimit(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	slow := f.mint(t, CreateRequest{Name: "slow", RateLimit: 1, Burst: 1})
	fast := f.mint(t, CreateRequest{Name: "fast", RateLimit: 100})
	free := f.mint(t, CreateRequest{Name: "free"}) // no limit: its role has none
	shadow := f.mint(t, CreateRequest{Name: "shadow", RateLimit: 1})
	within := f.mint(t, CreateRequest{Name: "within", RateLimit: 0.5, Burst: 1})
	if _, err := f.admin.Update(ctx, shadow.ID, UpdateRequest{RateShadow: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []Token{fast, free, shadow, within} {
		if _, err := f.admin.Update(ctx, tok.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range []Token{fast, free, shadow} {
		a := f.call(t, "PATCH", "/v1/tokens/"+tok.ID, slow.Token, `{"status":"active"}`)
		mustRefuse(t, a, http.StatusForbidden, "limit_forbidden")
		if got := f.stored(t, tok.ID); got.Status != auth.StatusInactive {
			t.Errorf("%s: activated despite the refusal", tok.Name)
		}
		f.nextMinute() // past the trail's sampling
	}
	if n := f.refusals(t, 42)["token.activate limit_forbidden"]; n != 3 {
		t.Errorf("%d token.activate limit_forbidden events, want 3", n)
	}
	if _, err := f.self(slow.Token).Update(ctx, within.ID, UpdateRequest{Status: ptr("active")}); err != nil {
		t.Errorf("activating a token limited within the caller's limit: %v", err)
	}
}

// Activating grants a token afresh: like a token it creates or rotates,
// a token it activates may have no wider rate limit than the caller's
// (none, a higher rate or burst, a limit only shadowed). Rate limits are
// the operator's, so the activation is refused rather than the limit
// changed; one as strict passes.
func TestActivationHeldToCallersLimit(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	slow := f.mint(t, CreateRequest{Name: "slow", RateLimit: 1, Burst: 2})
	unlimited := f.mint(t, CreateRequest{Name: "unlimited"})
	faster := f.mint(t, CreateRequest{Name: "faster", RateLimit: 100})
	burstier := f.mint(t, CreateRequest{Name: "burstier", RateLimit: 1, Burst: 50})
	shadowed := f.mint(t, CreateRequest{Name: "shadowed", RateLimit: 1, Burst: 2})
	if _, err := f.admin.Update(ctx, shadowed.ID, UpdateRequest{RateShadow: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	stricter := f.mint(t, CreateRequest{Name: "stricter", RateLimit: 0.5, Burst: 1})
	for _, tok := range []Token{unlimited, faster, burstier, shadowed, stricter} {
		if _, err := f.admin.Update(ctx, tok.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range []Token{unlimited, faster, burstier, shadowed} {
		a := f.call(t, "PATCH", "/v1/tokens/"+tok.ID, slow.Token, `{"status":"active"}`)
		mustRefuse(t, a, http.StatusForbidden, "limit_forbidden")
		if got := f.stored(t, tok.ID); got.Status != auth.StatusInactive {
			t.Errorf("%s: a refused activation changed the token: %+v", tok.Name, got)
		}
	}
	if a := f.call(t, "PATCH", "/v1/tokens/"+stricter.ID, slow.Token, `{"status":"active"}`); a.status != http.StatusOK {
		t.Errorf("activating a stricter token: HTTP %d %s", a.status, a.body)
	}
	// An unlimited caller may activate any of them.
	if a := f.call(t, "PATCH", "/v1/tokens/"+faster.ID, unlimitedCaller(t, f).Token, `{"status":"active"}`); a.status != http.StatusOK {
		t.Errorf("activation by an unlimited token: HTTP %d %s", a.status, a.body)
	}
}

func unlimitedCaller(t *testing.T, f *lifeFixture) Token {
	t.Helper()
	return f.mint(t, CreateRequest{Name: "free"})
}
