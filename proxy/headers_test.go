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
