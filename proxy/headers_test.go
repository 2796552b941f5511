package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TestUnwritableFieldRefused: HTTP/2 carries field values with white space
// at either end, which the upstream client does not write (no HTTP/1.1
// field can hold them). Such a request is refused invalid_header before
// its decision, not decided, charged and then answered upstream_error as
// if the API could not be reached.
func TestUnwritableFieldRefused(t *testing.T) {
	up, got := newUpstream(t)
	decided := 0
	d := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		decided++
		return allow(ctx, req, now)
	})
	u, _ := url.Parse(up.URL)
	h, err := New(Options{Decider: d, Upstream: u})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		host   string
		want   int
	}{
		{"leading space", http.Header{"X-Foo": {" bar"}}, "gw", http.StatusBadRequest},
		{"trailing tab", http.Header{"X-Foo": {"bar\t"}}, "gw", http.StatusBadRequest},
		{"second value", http.Header{"X-Foo": {"ok", "bar "}}, "gw", http.StatusBadRequest},
		{"host", http.Header{}, "gw ", http.StatusBadRequest},
		{"inner tab and space", http.Header{"X-Foo": {"a\t b"}}, "gw", http.StatusOK},
		{"dropped anyway", http.Header{"X-Tsw-Project-Id": {" 7"}}, "gw", http.StatusOK},
	} {
		decided = 0
		r := httptest.NewRequest("GET", "/v2/Invoice", nil)
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		r.Header, r.Host = tc.header, tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Header().Get(HeaderErrorCode), tc.want)
			continue
		}
		if tc.want == http.StatusOK {
			<-got
			continue
		}
		if code := w.Header().Get(HeaderErrorCode); code != "invalid_header" || decided != 0 {
			t.Errorf("%s: code %q after %d decisions, want invalid_header before any", tc.name, code, decided)
		}
	}
}

func TestBadHost(t *testing.T) {
	for host, want := range map[string]bool{
		"":                  false, // HTTP/1.0: none
		"api.example":       false,
		"api.example.":      false,
		"API-1_x~y.example": false,
		"api.example:8443":  false,
		"api.example:":      false,
		"10.0.0.1:80":       false,
		"[::1]":             false,
		"[2001:db8::1]:443": false,
		"[::ffff:10.0.0.1]": false,
		"a,b":               true, // a list to an X-Forwarded-Host reader
		"a b":               true,
		"a\tb":              true,
		"x/y?z":             true,
		"x#y":               true,
		"u@x":               true,
		"a%2Cb":             true,
		"\xc3\xa9":          true,
		"a:1:2":             true,
		"a:123456":          true,
		"a:8x":              true,
		":80":               true,
		"[::1":              true,
		"[::1]x":            true,
		"[10.0.0.1]":        true,
		"[fe80::1%25eth0]":  true,
		"[]":                true,
	} {
		if got := badHost(host); got != want {
			t.Errorf("badHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestHostIsOneAuthority: the upstream is told the client's Host as
// X-Forwarded-Host. A Host that is no single authority — a list, white
// space, a path, bytes above 0x7E, which HTTP/2's :authority carries
// unchecked — is refused invalid_header before any decision, never passed
// on; a request with no Host (HTTP/1.0) reaches the upstream without an
// empty X-Forwarded-Host.
func TestHostIsOneAuthority(t *testing.T) {
	up, got := newUpstream(t)
	decided := 0
	d := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		decided++
		return allow(ctx, req, now)
	})
	u, _ := url.Parse(up.URL)
	h, err := New(Options{Decider: d, Upstream: u})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want int
	}{
		{"a,b", http.StatusBadRequest},
		{"a b", http.StatusBadRequest},
		{"x/v2/Instance?", http.StatusBadRequest},
		{"\xc3\xa9", http.StatusBadRequest},
		{"gw.example:8443", http.StatusOK},
		{"[::1]:8080", http.StatusOK},
		{"", http.StatusOK},
	} {
		decided = 0
		r := httptest.NewRequest("GET", "/v2/Invoice", nil)
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		r.Host = tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("Host %q: %d %s, want %d", tc.host, w.Code, w.Header().Get(HeaderErrorCode), tc.want)
			continue
		}
		if tc.want != http.StatusOK {
			if code := w.Header().Get(HeaderErrorCode); code != "invalid_header" || decided != 0 {
				t.Errorf("Host %q: code %q after %d decisions, want invalid_header before any", tc.host, code, decided)
			}
			continue
		}
		s := <-got
		if vs, ok := s.header["X-Forwarded-Host"]; tc.host == "" && ok || tc.host != "" && (len(vs) != 1 || vs[0] != tc.host) {
			t.Errorf("Host %q: the upstream got X-Forwarded-Host %q", tc.host, vs)
		}
	}
}

// refusingHandler returns a Handler in front of a recording upstream and
// a count of the decisions it made.
func refusingHandler(t *testing.T) (*Handler, <-chan seen, *int) {
	t.Helper()
	up, got := newUpstream(t)
	decided := new(int)
	d := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		*decided++
		return allow(ctx, req, now)
	})
	u, _ := url.Parse(up.URL)
	h, err := New(Options{Decider: d, Upstream: u})
	if err != nil {
		t.Fatal(err)
	}
	return h, got, decided
}

// TestCredentialMisplacedRefused: a token secret anywhere but in
// Authorization — the path, the query, the Host or a forwarded field, as
// written or percent-encoded, in any letter case — is refused
// credential_misplaced before any decision, never forwarded, and the
// answer names where it was without echoing it.
func TestCredentialMisplacedRefused(t *testing.T) {
	h, got, decided := refusingHandler(t)
	_, cred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(cred, ":")
	random := secret[len(auth.SecretPrefix):]
	encoded := id + "%3A%74swsk%5F" + random
	for _, tc := range []struct {
		name, target string
		header       http.Header
		host         string
		where        string // "" when forwarded
	}{
		{"query", "/v2/Invoice?token=" + cred, nil, "gw", "the query"},
		{"query, encoded", "/v2/Invoice?api_key=" + encoded, nil, "gw", "the query"},
		{"query, upper case", "/v2/Invoice?k=" + strings.ToUpper(secret), nil, "gw", "the query"},
		{"path", "/v2/Instance/" + cred, nil, "gw", "the path"},
		{"path, encoded", "/v2/Instance/" + encoded, nil, "gw", "the path"},
		{"path, escaped thrice", "/v2/Instance/" + id + "%3Atswsk%25255F" + random, nil, "gw", "the path"},
		{"query, escaped twice", "/v2/Invoice?k=%2574SwSk%255f" + random, nil, "gw", "the query"},
		{"cookie, escaped twice", "/v2/Invoice", http.Header{"Cookie": {"t=tswsk%25%35%46" + random}}, "gw", "the Cookie header"},
		{"cookie", "/v2/Invoice", http.Header{"Cookie": {"tsw=" + cred}}, "gw", "the Cookie header"},
		{"X-Api-Key", "/v2/Invoice", http.Header{"X-Api-Key": {secret}}, "gw", "the X-Api-Key header"},
		{"second value", "/v2/Invoice", http.Header{"X-A": {"1", "Bearer " + cred}}, "gw", "the X-A header"},
		{"field name", "/v2/Invoice", http.Header{secret: {"1"}}, "gw", "a header field's name"},
		{"host", "/v2/Invoice", nil, "tswsk_" + random + ".example", "the Host"},
		{"request id", "/v2/Invoice", http.Header{"X-Request-Id": {cred}}, "gw", "the X-Request-Id header"},
		{"and a bad field", "/v2/Invoice", http.Header{"X-A": {" 1"}, "X-Key": {cred}}, "gw", "the X-Key header"},
		{"Authorization", "/v2/Invoice", http.Header{"Authorization": {"Bearer " + cred}}, "gw", ""},
		{"dropped anyway", "/v2/Invoice", http.Header{"X-Forwarded-For": {cred}}, "gw", ""},
		{"token id only", "/v2/Invoice?id=" + id, http.Header{"X-Token": {id}}, "gw", ""},
		{"the prefix alone", "/v2/Invoice?x=tswsk_", http.Header{"X-A": {"tswsk_-1"}}, "gw", ""},
	} {
		*decided = 0
		r := httptest.NewRequest("GET", tc.target, nil)
		for k, vs := range tc.header {
			r.Header[k] = vs
		}
		r.Host = tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if tc.where == "" {
			if w.Code != http.StatusOK {
				t.Errorf("%s: %d %s, want it forwarded", tc.name, w.Code, w.Header().Get(HeaderErrorCode))
				continue
			}
			<-got
			continue
		}
		code, body := w.Header().Get(HeaderErrorCode), w.Body.String()
		if w.Code != http.StatusBadRequest || code != "credential_misplaced" || *decided != 0 {
			t.Errorf("%s: %d %q after %d decisions, want 400 credential_misplaced before any", tc.name, w.Code, code, *decided)
		}
		if !strings.Contains(body, "in "+tc.where+",") || !strings.Contains(body, "Authorization: Bearer") {
			t.Errorf("%s: the answer %s does not say where or how", tc.name, body)
		}
		if strings.Contains(body, random) || strings.Contains(w.Header().Get(HeaderRequestID), random) {
			t.Errorf("%s: the answer echoes the secret: %s %v", tc.name, body, w.Header())
		}
	}
	select {
	case s := <-got:
		t.Errorf("the upstream got a refused request: %v", s.header)
	default:
	}
}

// TestUnderscoreFieldRefused: a field name that spells with "_" one the
// gateway checks, drops or sets reads as that field to an upstream that
// maps "_" to "-" (CGI, WSGI, Rack). It is refused invalid_header before
// any decision, naming the field; other names with "_" pass.
func TestUnderscoreFieldRefused(t *testing.T) {
	h, got, decided := refusingHandler(t)
	for _, tc := range []struct {
		name, dashed string // dashed: the field it spells; "" when forwarded
	}{
		{"Content_Length", "Content-Length"},
		{"content_type", "Content-Type"},
		{"Content_Encoding", "Content-Encoding"},
		{"Transfer_Encoding", "Transfer-Encoding"},
		{"X_Forwarded_For", "X-Forwarded-For"},
		{"x_forwarded_prefix", "X-Forwarded-Prefix"},
		{"X_Tsw_Assertion", "X-Tsw-Assertion"},
		{"X_Tsw_Project_Id", "X-Tsw-Project-Id"},
		{"X_Real_IP", "X-Real-Ip"},
		{"X_HTTP_Method_Override", "X-Http-Method-Override"},
		{"X_Client_Cert", "X-Client-Cert"},
		{"X_Request_Id", "X-Request-Id"},
		{"Proxy_Authorization", "Proxy-Authorization"},
		{"Keep_Alive", "Keep-Alive"},
		{"X_Custom_Field", ""},
		{"Accept_Language", ""},
		{"Content_MD5", ""},
	} {
		*decided = 0
		r := httptest.NewRequest("GET", "/v2/Invoice", nil)
		r.Header[tc.name] = []string{"5"}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if tc.dashed == "" {
			if w.Code != http.StatusOK {
				t.Errorf("%s: %d %s, want it forwarded", tc.name, w.Code, w.Header().Get(HeaderErrorCode))
				continue
			}
			if s := <-got; s.header.Get(tc.name) != "5" {
				t.Errorf("%s did not reach the upstream: %v", tc.name, s.header)
			}
			continue
		}
		code, body := w.Header().Get(HeaderErrorCode), w.Body.String()
		if w.Code != http.StatusBadRequest || code != "invalid_header" || *decided != 0 {
			t.Errorf("%s: %d %q after %d decisions, want 400 invalid_header before any", tc.name, w.Code, code, *decided)
		}
		if !strings.Contains(body, `\"`+tc.name+`\"`) || !strings.Contains(body, " as "+tc.dashed+",") {
			t.Errorf("%s: the answer %s does not name the field", tc.name, body)
		}
	}
}

// BenchmarkCheckFields checks the fields of a request as an SDK sends it,
// with a cookie that holds "_" and "%" (the scan's slow path).
func BenchmarkCheckFields(b *testing.B) {
	r := httptest.NewRequest("GET", "/v2/Instance?ProjectId=42&Tag=web_1", nil)
	r.Header = http.Header{
		"Authorization":   {"Bearer tsw_AbCdEfGhIjKlMnOpQrSt:tswsk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"},
		"User-Agent":      {"gotsw/1.4.0 (linux; amd64) go1.24"},
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip"},
		"Content-Type":    {"application/json"},
		"X-Request-Id":    {"7f9c2ba4-e88f-4b2e-9d3a-0f1e2d3c4b5a"},
		"Cookie":          {"_ga=GA1.2.3; session_id=a%3Db_c; theme=dark"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if code, _ := checkFields(r, "/v2/Instance"); code != auth.OK {
			b.Fatal(code)
		}
	}
}
