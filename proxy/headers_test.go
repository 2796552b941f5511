package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
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
