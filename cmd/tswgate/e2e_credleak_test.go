package main

// Credentials and fields out of place, against the built binary in front
// of a recording upstream: a token secret anywhere but in Authorization,
// a method override in a JSON body, a field spelt with "_" that an
// upstream reads as one the gateway checks, and HTTP/2's preface line with
// fields after requests, on every protocol a client can choose.

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// TestCredleakSecretOutsideAuthorization: a request carrying a token
// secret anywhere but in Authorization — the query, the path, a cookie, an
// X-Api-Key field, raw or percent-encoded, in any letter case — is refused
// credential_misplaced, even with a valid Authorization, and never
// reaches the upstream (which would otherwise receive the secret while
// Authorization itself is withheld). No log line holds the secret.
func TestCredleakSecretOutsideAuthorization(t *testing.T) {
	b := startBinGateway(t, "TSWGATE_ACCESS_LOG=true")
	cred := b.acct.Token
	id, secret, _ := strings.Cut(cred, ":")
	random := strings.TrimPrefix(secret, "tswsk_")
	encoded := id + "%3A%74swsk%5F" + random
	cases := []securityCase{
		{"query, cookie and X-Api-Key", "GET", "/v2/Invoice?token=" + cred, true, []string{"Cookie: tsw=" + cred, "X-Api-Key: " + cred}, nil, 400, "credential_misplaced"},
		{"query", "GET", "/v2/Invoice?token=" + cred, true, nil, nil, 400, "credential_misplaced"},
		{"query, encoded", "GET", "/v2/Invoice?api_key=" + url.QueryEscape(cred), true, nil, nil, 400, "credential_misplaced"},
		{"query, every byte of the prefix encoded", "GET", "/v2/Invoice?k=" + encoded, true, nil, nil, 400, "credential_misplaced"},
		{"query, upper case", "GET", "/v2/Invoice?k=" + strings.ToUpper(secret), true, nil, nil, 400, "credential_misplaced"},
		{"path", "GET", "/v2/Invoice/" + cred, true, nil, nil, 400, "credential_misplaced"},
		{"path, encoded", "GET", "/v2/Invoice/" + encoded, true, nil, nil, 400, "credential_misplaced"},
		{"cookie", "GET", "/v2/Invoice", true, []string{"Cookie: a=1; tsw=" + cred}, nil, 400, "credential_misplaced"},
		{"X-Api-Key, secret alone", "GET", "/v2/Invoice", true, []string{"X-Api-Key: " + secret}, nil, 400, "credential_misplaced"},
		{"another Bearer field", "GET", "/v2/Invoice", true, []string{"X-Authorization: Bearer " + cred}, nil, 400, "credential_misplaced"},
		{"request id", "GET", "/v2/Invoice", true, []string{"X-Request-Id: " + cred}, nil, 400, "credential_misplaced"},
		{"the token id is public", "GET", "/v2/Invoice?token_id=" + id, true, []string{"X-Token-Id: " + id}, nil, 200, ""},
	}
	for _, c := range cases {
		b.check(t, c)
	}
	// The access log is flushed every 100ms: wait for the refusals, then
	// look for the secret (and its random part, which an escaped prefix
	// would leave readable) in everything the gateway wrote.
	refused := len(cases) - 1
	MustPoll(t, 5*time.Second, "the access log's refusals", func() (bool, string) {
		log := b.log(t)
		return strings.Count(log, "credential_misplaced") >= refused, devtool.Tail(log, 5)
	})
	if log := b.log(t); strings.Contains(log, random) {
		t.Errorf("the gateway's log holds the secret:\n%s", devtool.Tail(log, 20))
	}
}

// TestCredleakMethodOverrideInBody: Laravel takes "_method" from a JSON
// body's top-level keys as from the query; such a body is refused as the
// query form is (invalid_query), in any spelling, and never forwarded.
func TestCredleakMethodOverrideInBody(t *testing.T) {
	b := startBinGateway(t)
	jsonType := []string{"Content-Type: application/json"}
	for _, c := range []securityCase{
		{"_method", "POST", "/v2/SshKey", false, jsonType, []byte(`{"name":"k","key":"ssh-ed25519 AAAA","projectId":42,"_method":"DELETE"}`), 400, "invalid_query"},
		{"upper case, escaped", "POST", "/v2/SshKey", false, jsonType, []byte(`{"\u005FMETHOD":"GET","projectId":42}`), 400, "invalid_query"},
		{"X-HTTP-Method-Override", "POST", "/v2/SshKey", false, jsonType, []byte(`{"x_http_method_override":"GET","projectId":42}`), 400, "invalid_query"},
		{"nested: data", "POST", "/v2/SshKey", false, jsonType, []byte(`{"name":"k","key":"ssh-ed25519 AAAA","projectId":42,"tags":{"_method":"x"}}`), 200, ""},
		{"a value: data", "POST", "/v2/SshKey", false, jsonType, []byte(`{"name":"_method","key":"ssh-ed25519 AAAA","projectId":42}`), 200, ""},
	} {
		b.check(t, c)
	}
}

// TestCredleakUnderscoreFields: a field name that spells with "_" one the
// gateway checks, drops or sets (an upstream that maps "_" to "-", as CGI
// does, reads it as that field) is refused invalid_header, naming the
// field, and never forwarded: on the fast path, on net/http's HTTP/1.1
// and over h2c alike.
func TestCredleakUnderscoreFields(t *testing.T) {
	fast := startBinGateway(t, "TSWGATE_H2C=true")
	slow := startBinGateway(t, "TSWGATE_H2C=true", "TSWGATE_FAST_PATH=false")
	for _, field := range []string{
		"Content_Length: 5", "Content_Type: text/plain", "Content_Encoding: gzip", "Transfer_Encoding: chunked",
		"X_Forwarded_For: 6.6.6.6", "X_Tsw_Assertion: forged", "X_Real_IP: 6.6.6.6",
		"X_HTTP_Method_Override: DELETE", "x_client_cert: forged", "X_Request_Id: forged",
	} {
		name, value, _ := strings.Cut(field, ": ")
		for _, g := range []struct {
			proto string
			b     *binGateway
		}{{"fast path", fast}, {"net/http", slow}, {"h2c", fast}} {
			hits := g.b.up.Hits()
			var status int
			var code string
			if g.proto == "h2c" {
				status, code = h2cRequest(t, g.b.Public, [][2]string{{":method", "GET"}, {":scheme", "http"},
					{":authority", "gw"}, {":path", "/v2/Invoice"}, {"authorization", "Bearer " + g.b.acct.Token},
					{strings.ToLower(name), value}})
			} else {
				status, code = g.b.raw(t, rawRequest("GET", "/v2/Invoice", g.b.acct.Token, []string{field}, nil))
			}
			if status != 400 || code != "invalid_header" {
				t.Errorf("%s, %s: %d %q, want 400 invalid_header", field, g.proto, status, code)
			}
			if got := g.b.up.Hits() - hits; got != 0 {
				t.Errorf("%s, %s: refused, yet the upstream got %d requests", field, g.proto, got)
			}
		}
	}
	// The answer names the field.
	req := rawRequest("GET", "/v2/Invoice", fast.acct.Token, []string{"Content_Length: 5"}, nil)
	body := string(sendRawBody(t, fast.Public, req))
	if !strings.Contains(body, `"code":"invalid_header"`) || !strings.Contains(body, `\"Content_length\"`) ||
		!strings.Contains(body, "as Content-Length,") {
		t.Errorf("the answer does not name the field: %s", body)
	}
	// A name with "_" that spells none of them passes, on every protocol.
	fast.check(t, securityCase{"X_Custom_Field", "GET", "/v2/Invoice", true, []string{"X_Custom_Field: 1"}, nil, 200, ""})
	slow.check(t, securityCase{"X_Custom_Field", "GET", "/v2/Invoice", true, []string{"X_Custom_Field: 1"}, nil, 200, ""})
	if last := fast.up.MustLast(t); last.Header.Get("X_custom_field") != "1" {
		t.Errorf("the upstream got %v", last.Header)
	}
}

// sendRawBody sends raw on a new connection to addr and returns the first
// answer's body.
func sendRawBody(t *testing.T, addr, raw string) []byte {
	t.Helper()
	br := sendRaw(t, addr, raw)
	resp := readAnswer(t, br, "")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	keepForHygiene(resp.StatusCode, body)
	return body
}

// TestCredleakPrefaceLineWithFields: with h2c on, a head that starts with
// HTTP/2's preface line but holds fields, after a request on the
// connection, is answered 400 and the connection closed, with the fast
// path as with net/http alone (handed over, net/http would wait for the
// rest of a preface and close without an answer). With a Host, both
// refuse it invalid_framing; without, net/http answers "missing required
// Host header" itself, and the fast path has the gateway refuse it
// invalid_framing.
func TestCredleakPrefaceLineWithFields(t *testing.T) {
	var gws [2]*binGateway
	for i, mode := range fastPathModes {
		gws[i] = startBinGateway(t, mode, "TSWGATE_H2C=true")
	}
	for _, pri := range []string{"PRI * HTTP/2.0\r\nHost: gw\r\nA:\r\n\r\n", "PRI * HTTP/2.0\r\nA:\r\n\r\n"} {
		var got [2][]rawAnswer
		for i, b := range gws {
			get := "GET /v2/Invoice HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + b.acct.Token + "\r\n\r\n"
			got[i] = rawExchange(t, b.Public, get+pri, 2)
			if got[i][0].Status != 200 || got[i][1].Status != 400 || !got[i][1].Close {
				t.Errorf("%q, %s: %+v, want 200, then 400 and a close", pri, fastPathModes[i], got[i])
			}
		}
		if got[0][1].Code != "invalid_framing" {
			t.Errorf("%q, fast path: %+v, want invalid_framing", pri, got[0][1])
		}
		if strings.Contains(pri, "Host") && fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("%q:\nfast path %+v\nnet/http  %+v", pri, got[0], got[1])
		}
	}
}
