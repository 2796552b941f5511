package secretscan

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

// partnerFixture is a partner handler on a store, with GitHub's key
// served over HTTP.
type partnerFixture struct {
	h      http.Handler
	s      store
	github *signer
	keys   *keyServer
	rec    *recorder
}

func newPartner(t testing.TB, s store) *partnerFixture {
	t.Helper()
	gh := newSigner(t, "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a")
	ks := newKeyServer(t, gh)
	keys, err := NewKeySet(KeySetOptions{Source: URLKeys(ks.srv.Client(), ks.srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	h, err := NewPartnerHandler(PartnerOptions{Options: baseOptions(t, s, rec), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return &partnerFixture{h: h, s: s, github: gh, keys: ks, rec: rec}
}

// post sends body signed by sig (nil: unsigned) and returns the answer.
func (f *partnerFixture) post(t testing.TB, body []byte, sign func(http.Header)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/secret-scanning/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sign != nil {
		sign(req.Header)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func (f *partnerFixture) signedBy(t testing.TB, s *signer, body []byte) func(http.Header) {
	return func(h http.Header) {
		h.Set(HeaderKeyIdentifier, s.id)
		h.Set(HeaderKeySignature, s.sign(t, body))
	}
}

func reportBody(t testing.TB, rs ...Report) []byte {
	t.Helper()
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPartnerRevokesLiveTokens(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newPartner(t, open(t))
			ctx := context.Background()
			live, liveCred := addToken(t, f.s)
			inactive, inactiveCred := addToken(t, f.s)
			if _, err := f.s.Update(ctx, inactive.ID, func(t *auth.Token) error { t.Status = auth.StatusInactive; return nil }); err != nil {
				t.Fatal(err)
			}
			old, oldCred := addToken(t, f.s)
			if _, err := f.s.Revoke(ctx, old.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			_, unknownCred := storetest.NewToken(t, 42, auth.RoleOwner) // never stored
			other, _ := addToken(t, f.s)
			forged := wrongSecret(other.ID)
			url := "https://github.com/octo/app/blob/1a2b/.env?line=" + liveCred
			reports := []Report{
				{Token: liveCred, Type: "tswgate_api_token", URL: url, Source: "content"},
				{Token: inactiveCred, Type: "tswgate_api_token", URL: "https://gist.github.com/x", Source: "gist_content"},
				{Token: oldCred, Type: "tswgate_api_token"},
				{Token: unknownCred, Type: "tswgate_api_token"},
				{Token: forged, Type: "tswgate_api_token"},
				{Token: "tsw_notatoken", Type: "tswgate_api_token"},
				{Token: liveCred, Type: "tswgate_api_token", URL: url, Source: "commit"}, // again
			}
			body := reportBody(t, reports...)
			w := f.post(t, body, f.signedBy(t, f.github, body))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var fb []Feedback
			if err := json.Unmarshal(w.Body.Bytes(), &fb); err != nil {
				t.Fatal(err)
			}
			want := []Label{TruePositive, TruePositive, TruePositive, FalsePositive, FalsePositive, FalsePositive, TruePositive}
			if len(fb) != len(want) {
				t.Fatalf("%d feedback entries, want %d", len(fb), len(want))
			}
			for i, e := range fb {
				if e.Label != want[i] || e.TokenHash != TokenHash(reports[i].Token) || e.TokenType != "tswgate_api_token" {
					t.Errorf("feedback %d = %+v, want %s", i, e, want[i])
				}
			}
			if strings.Contains(w.Body.String(), "tswsk_") {
				t.Errorf("the answer holds a secret: %s", w.Body)
			}
			for _, id := range []string{live.ID, inactive.ID} {
				if !revoked(t, f.s, id) {
					t.Errorf("%s is not revoked", id)
				}
			}
			if revoked(t, f.s, other.ID) {
				t.Error("a token was revoked by a report of its id with a wrong secret")
			}
			checkRevokeAudit(t, f.s, map[string]string{live.ID: "content", inactive.ID: "gist_content"})
			leaks := f.rec.leaked()
			if len(leaks) != 2 {
				t.Fatalf("OnLeak told of %d leaks, want 2", len(leaks))
			}
			for _, l := range leaks {
				if !l.Revoked || l.ActorKind != ActorSecretScanning || l.Reporter != "github" || strings.Contains(l.URL, liveCred[auth.IDLen+1:]) {
					t.Errorf("leak %+v", l)
				}
			}
		})
	}
}

var secretLike = regexp.MustCompile(`(?i)tswsk_[0-9a-z]`)

// checkRevokeAudit checks one token.revoke by secret_scanning per token,
// naming the report's source, and no secret anywhere in the trail.
func checkRevokeAudit(t *testing.T, s store, sources map[string]string) {
	t.Helper()
	events := audit(t, s)
	seen := map[string]int{}
	for _, ev := range events {
		raw, _ := json.Marshal(ev)
		if secretLike.Match(raw) {
			t.Errorf("audit event holds a secret: %s", raw)
		}
		if ev.Action != "token.revoke" || ev.ActorKind != ActorSecretScanning {
			continue
		}
		seen[ev.TokenID]++
		if ev.Actor != "github" || ev.Outcome != auth.OutcomeOK || !strings.Contains(ev.Detail, sources[ev.TokenID]) {
			t.Errorf("audit event %s", raw)
		}
	}
	for id := range sources {
		if seen[id] != 1 {
			t.Errorf("%d token.revoke events by secret_scanning for %s, want 1", seen[id], id)
		}
	}
}

func TestPartnerRefusesUnverifiedReports(t *testing.T) {
	f := newPartner(t, openStores(t)["file"](t))
	tok, cred := addToken(t, f.s)
	body := reportBody(t, Report{Token: cred, Type: "tswgate_api_token"})
	stranger := newSigner(t, "stranger")
	impostor := newSigner(t, f.github.id) // claims GitHub's id
	cases := []struct {
		name   string
		body   []byte
		sign   func(http.Header)
		status int
		code   string
	}{
		{"unsigned", body, nil, 401, CodeSignatureMissing},
		{"no signature", body, func(h http.Header) { h.Set(HeaderKeyIdentifier, f.github.id) }, 401, CodeSignatureMissing},
		{"unknown key", body, f.signedBy(t, stranger, body), 401, CodeSignatureKeyUnknown},
		{"not base64", body, func(h http.Header) {
			h.Set(HeaderKeyIdentifier, f.github.id)
			h.Set(HeaderKeySignature, "%%%")
		}, 400, CodeSignatureMalformed},
		{"another key's signature", body, f.signedBy(t, impostor, body), 401, CodeSignatureInvalid},
		{"tampered body", append(bytes.Clone(body[:len(body)-1]), ' ', ']'), f.signedBy(t, f.github, body), 401, CodeSignatureInvalid},
		{"signature of another body", body, f.signedBy(t, f.github, []byte("[]")), 401, CodeSignatureInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.post(t, c.body, c.sign)
			var env envelope
			_ = json.Unmarshal(w.Body.Bytes(), &env)
			if w.Code != c.status || env.Code != c.code || w.Header().Get("X-Tsw-Error-Code") != c.code || env.Success {
				t.Errorf("answer %d %s, want %d %s", w.Code, w.Body, c.status, c.code)
			}
			if f.rec.refusals(c.code) == 0 {
				t.Errorf("refusal %s not counted", c.code)
			}
		})
	}
	if revoked(t, f.s, tok.ID) {
		t.Error("an unverified report revoked a token")
	}
	if len(audit(t, f.s)) != 0 {
		t.Error("an unverified report was audited")
	}
}

func TestPartnerKeysUnavailable(t *testing.T) {
	f := newPartner(t, openStores(t)["file"](t))
	f.keys.set(nil, true)
	body := reportBody(t, Report{Token: "x"})
	if w := f.post(t, body, f.signedBy(t, f.github, body)); w.Code != http.StatusServiceUnavailable ||
		!strings.Contains(w.Body.String(), CodeKeysUnavailable) {
		t.Errorf("with the key URL down: %d %s", w.Code, w.Body)
	}
}

func TestPartnerBadBodies(t *testing.T) {
	f := newPartner(t, openStores(t)["file"](t))
	for name, c := range map[string]struct {
		body   []byte
		status int
	}{
		"not json":     {[]byte("tsw_x"), 400},
		"object":       {[]byte(`{"token":"x"}`), 400},
		"no token":     {[]byte(`[{"type":"x"}]`), 400},
		"trailing":     {[]byte(`[] []`), 400},
		"too large":    {bytes.Repeat([]byte(" "), DefaultMaxBody+1), 413},
		"empty report": {[]byte(`[]`), 200},
	} {
		t.Run(name, func(t *testing.T) {
			if w := f.post(t, c.body, f.signedBy(t, f.github, c.body)); w.Code != c.status {
				t.Errorf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
		})
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestPartnerStoreDownAsksForRetry(t *testing.T) {
	f := newPartner(t, openStores(t)["file"](t))
	_, cred := addToken(t, f.s)
	_ = f.s.Close() // every read now fails
	body := reportBody(t, Report{Token: cred}, Report{Token: "garbage"})
	if w := f.post(t, body, f.signedBy(t, f.github, body)); w.Code != http.StatusServiceUnavailable ||
		w.Header().Get("Retry-After") == "" {
		t.Errorf("with the store closed: %d %s", w.Code, w.Body)
	}
}

// gatedLookup blocks every Get until its gate is closed.
type gatedLookup struct {
	Lookup
	gate chan struct{}
}

func (g *gatedLookup) Get(ctx context.Context, id string) (*auth.Token, error) {
	<-g.gate
	return g.Lookup.Get(ctx, id)
}

func TestPartnerAnswersInTimeWhileWorkGoesOn(t *testing.T) {
	s := openStores(t)["file"](t)
	gh := newSigner(t, "k")
	keys, _ := NewKeySet(KeySetOptions{Source: func(context.Context) ([]byte, error) { return keyList(t, gh), nil }})
	rec := newRecorder()
	opts := baseOptions(t, s, rec)
	slow := &gatedLookup{Lookup: s, gate: make(chan struct{})}
	opts.Tokens = slow
	h, err := NewPartnerHandler(PartnerOptions{Options: opts, Keys: keys, Timeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f := &partnerFixture{h: h, s: s, github: gh, rec: rec}
	tok, cred := addToken(t, s)
	body := reportBody(t, Report{Token: cred})
	w := f.post(t, body, f.signedBy(t, gh, body))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), CodeReportTimeout) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a report outlasting its answer: %d %s", w.Code, w.Body)
	}
	close(slow.gate) // the store answers at last
	if l := rec.waitChecked(t, 1); l[0] != TruePositive {
		t.Errorf("label %s", l[0])
	}
	if !revoked(t, s, tok.ID) {
		t.Error("the work was abandoned with the answer")
	}
}

// brokenBody yields some bytes, then fails as a connection cut short does.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.sent {
		return 0, io.ErrUnexpectedEOF
	}
	b.sent = true
	return copy(p, `[{"token":"tsw_`), nil
}

// A body that cannot be read to its end is not one too large: the
// refusal (and its metric) names what happened.
func TestCutShortBodyIsNotTooLarge(t *testing.T) {
	f := newPartner(t, openStores(t)["file"](t))
	req := httptest.NewRequest(http.MethodPost, "/", &brokenBody{})
	f.signedBy(t, f.github, []byte("x"))(req.Header)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest || w.Header().Get("X-Tsw-Error-Code") != CodeInvalidReport {
		t.Errorf("report cut short: %d %s, want 400 %s", w.Code, w.Body, CodeInvalidReport)
	}
	if f.rec.refusals(CodeBodyTooLarge) != 0 {
		t.Error("counted as body_too_large")
	}

	h, rec := newRevoker(t, f.s, RevokeOptions{})
	req = httptest.NewRequest(http.MethodPost, "/", &brokenBody{})
	req.Header.Set("Content-Type", "application/json")
	if w := serve(h, req); w.Code != http.StatusBadRequest || w.Header().Get("X-Tsw-Error-Code") != CodeInvalidRequest {
		t.Errorf("revoke request cut short: %d %s, want 400 %s", w.Code, w.Body, CodeInvalidRequest)
	}
	if rec.refusals(CodeBodyTooLarge) != 0 {
		t.Error("counted as body_too_large")
	}
}
