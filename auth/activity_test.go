package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAuthenticatorAgreesWithGate checks that Authenticator refuses and
// admits credentials exactly as Gate.Decide does, returns the record
// whenever one exists, and that the verdict names the record's id even for
// a wrong secret.
func TestAuthenticatorAgreesWithGate(t *testing.T) {
	f := newGateFixture(t, nil)
	owner := f.token(t, RoleOwner, nil)
	inactive := f.token(t, RoleOwner, func(t *Token) { t.Status = StatusInactive })
	expired := f.token(t, RoleOwner, func(t *Token) { t.ExpiresAt = time.Now().Add(-time.Second) })
	revoked := f.token(t, RoleOwner, func(t *Token) { t.RevokedAt = time.Now(); t.SecretHash = [32]byte{} })
	_, unknown := mustCredential(t)
	var sum [checksumLen]byte
	body := owner[:IDLen] + unknown[IDLen:CredentialLen-checksumLen]
	encodeChecksum(&sum, checksum(body))
	forged := body + string(sum[:])

	a := &Authenticator{Validator: f.gate.validator, Hasher: f.hasher}
	for _, tc := range []struct {
		name, cred string
		want       Code
		hasRecord  bool
	}{
		{"owner", owner, OK, true},
		{"inactive", inactive, CodeTokenInactive, true},
		{"expired", expired, CodeTokenExpired, true},
		{"revoked", revoked, CodeTokenRevoked, true},
		{"wrong secret", forged, CodeInvalidToken, true},
		{"unknown id", unknown, CodeInvalidToken, false},
		{"malformed", owner[:len(owner)-1] + otherChar(owner[len(owner)-1]), CodeMalformedToken, false},
		{"missing", "", CodeMissingToken, false},
	} {
		header := ""
		if tc.cred != "" {
			header = "Bearer " + tc.cred
		}
		now := time.Now()
		rec, code, err := a.Authenticate(context.Background(), header, now)
		if code != tc.want || err != nil || (rec != nil) != tc.hasRecord {
			t.Errorf("%s: Authenticate = %v, %s, %v; want %s, record %v", tc.name, rec != nil, code, err, tc.want, tc.hasRecord)
		}
		v := f.gate.Decide(context.Background(), &Request{Method: "GET", Path: "/v2/Instance", Authorization: header}, now)
		if v.Code != code {
			t.Errorf("%s: Gate.Decide says %s, Authenticate %s", tc.name, v.Code, code)
		}
		if tc.hasRecord && v.TokenID != rec.ID || !tc.hasRecord && v.TokenID != "" {
			t.Errorf("%s: Verdict.TokenID = %q", tc.name, v.TokenID)
		}
	}
}

func TestListCursor(t *testing.T) {
	tok := &Token{ID: "tsw_" + strings.Repeat("A", 20), CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)}
	c := CursorAfter(tok)
	got, err := ParseListCursor(c.String())
	if err != nil || got != c || !got.Passed(tok) {
		t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
	}
	later := &Token{ID: "tsw_" + strings.Repeat("0", 20), CreatedAt: tok.CreatedAt.Add(time.Millisecond)}
	tie := &Token{ID: "tsw_" + strings.Repeat("B", 20), CreatedAt: tok.CreatedAt}
	if got.Passed(later) || got.Passed(tie) {
		t.Error("a cursor passes tokens after it")
	}
	if z, err := ParseListCursor(""); err != nil || !z.IsZero() || z.String() != "" {
		t.Errorf("the empty cursor: %+v, %v", z, err)
	}
	for _, bad := range []string{"!!", "bm9wZQ", "MTIzLm5vdGFuaWQ"} { // not base64, "nope", "123.notanid"
		if _, err := ParseListCursor(bad); err != ErrBadCursor {
			t.Errorf("ParseListCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestParseCodeUnixMinute(t *testing.T) {
	for _, c := range append(Codes(), OK) {
		if got, ok := ParseCode(c.String()); !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v", c.String(), got, ok)
		}
	}
	if _, ok := ParseCode("nope"); ok {
		t.Error("ParseCode accepted an unknown name")
	}
	if m := UnixMinute(time.Unix(119, 0)); m != 1 {
		t.Errorf("UnixMinute(119s) = %d", m)
	}
	if m := UnixMinute(time.Unix(-1, 0)); m != -1 {
		t.Errorf("UnixMinute(-1s) = %d", m)
	}
}

// otherChar returns a base62 character other than c, so that a changed
// credential is never the same one.
func otherChar(c byte) string {
	if c == 'x' {
		return "y"
	}
	return "x"
}
