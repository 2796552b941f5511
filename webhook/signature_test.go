package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification (and of its
// reference libraries' tests).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	key, err := ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, specID, time.Unix(specTimestamp, 0), []byte(specPayload)); got != specSignature {
		t.Errorf("Sign = %s, want the spec's %s", got, specSignature)
	}
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, fmt.Sprint(specTimestamp))
	h.Set(HeaderSignature, specSignature)
	if err := Verify(specSecret, h, []byte(specPayload), time.Unix(specTimestamp+10, 0), 0); err != nil {
		t.Errorf("Verify of the spec's example: %v", err)
	}
}

// independentSign is the signature as the specification describes it,
// written without this package's code.
func independentSign(secret, id string, ts int64, body string) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func signedHeaders(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	key, err := ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	SetHeaders(h, key, id, ts, body)
	return h
}

func TestSignAgainstIndependent(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"token.revoked","data":{}}`)
	h := signedHeaders(t, secret, "msg_1", now, body)
	if got, want := h.Get(HeaderSignature), independentSign(secret, "msg_1", now.Unix(), string(body)); got != want {
		t.Errorf("signature %s, independent %s", got, want)
	}
	if h.Get(HeaderTimestamp) != "1800000000" || h.Get(HeaderID) != "msg_1" {
		t.Errorf("headers %v", h)
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	secret, _ := NewSecret()
	other, _ := NewSecret()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	good := func() http.Header { return signedHeaders(t, secret, "msg_1", now, body) }
	cases := []struct {
		name   string
		edit   func(h http.Header) []byte
		secret string
		at     time.Time
		want   error
	}{
		{"tampered body", func(http.Header) []byte { return []byte(`{"a":2}`) }, secret, now, ErrNoSignature},
		{"other id", func(h http.Header) []byte { h.Set(HeaderID, "msg_2"); return body }, secret, now, ErrNoSignature},
		{"other timestamp", func(h http.Header) []byte { h.Set(HeaderTimestamp, "1800000001"); return body }, secret, now, ErrNoSignature},
		{"other secret", func(http.Header) []byte { return body }, other, now, ErrNoSignature},
		{"forged signature", func(h http.Header) []byte {
			h.Set(HeaderSignature, independentSign(other, "msg_1", now.Unix(), string(body)))
			return body
		}, secret, now, ErrNoSignature},
		{"v2 only", func(h http.Header) []byte {
			h.Set(HeaderSignature, strings.Replace(h.Get(HeaderSignature), "v1,", "v2,", 1))
			return body
		}, secret, now, ErrNoSignature},
		{"no signature", func(h http.Header) []byte { h.Del(HeaderSignature); return body }, secret, now, ErrMissingHeaders},
		{"too old", func(http.Header) []byte { return body }, secret, now.Add(6 * time.Minute), ErrTimestamp},
		{"from the future", func(http.Header) []byte { return body }, secret, now.Add(-6 * time.Minute), ErrTimestamp},
		{"timestamp not a number", func(h http.Header) []byte { h.Set(HeaderTimestamp, "soon"); return body }, secret, now, ErrTimestamp},
		{"bad secret", func(http.Header) []byte { return body }, "whsec_c2hvcnQ=", now, ErrBadSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := good()
			b := c.edit(h)
			if err := Verify(c.secret, h, b, c.at, 0); !errors.Is(err, c.want) {
				t.Errorf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyAcceptsAnyListedSignature(t *testing.T) {
	secret, _ := NewSecret()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{}`)
	h := signedHeaders(t, secret, "msg_1", now, body)
	h.Set(HeaderSignature, "v1a,whatever v1,bm90IGl0 "+h.Get(HeaderSignature))
	if err := Verify(secret, h, body, now, 0); err != nil {
		t.Errorf("Verify with a rotated secret's signature listed first: %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_" + strings.Repeat("QUFB", 30)} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		}
	}
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ParseSecret(s); err != nil || len(k) != 32 {
		t.Errorf("ParseSecret(NewSecret()) = %d bytes, %v", len(k), err)
	}
}
