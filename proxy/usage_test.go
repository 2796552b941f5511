package proxy

import (
	"context"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/usage"
)

type recorded struct {
	id   string
	code auth.Code
}

type fakeUsage struct {
	mu   sync.Mutex
	recs []recorded
}

func (f *fakeUsage) Record(id string, code auth.Code, _ time.Time) {
	f.mu.Lock()
	f.recs = append(f.recs, recorded{id, code})
	f.mu.Unlock()
}

// TestUsageRecorded checks that every answered request whose verdict names
// a stored token reaches the usage recorder with its outcome, and no other.
func TestUsageRecorded(t *testing.T) {
	up, _ := url.Parse("http://upstream.invalid")
	verdicts := map[string]auth.Verdict{
		"/ok":      {Token: testToken, TokenID: testToken.ID},
		"/wrong":   {Code: auth.CodeInvalidToken, TokenID: testToken.ID},
		"/limited": {Code: auth.CodeRateLimited, Token: testToken, TokenID: testToken.ID},
		"/unknown": {Code: auth.CodeInvalidToken},
		"/missing": {Code: auth.CodeMissingToken},
	}
	u := &fakeUsage{}
	h, err := New(Options{
		Decider: deciderFunc(func(_ context.Context, req *auth.Request, _ time.Time) auth.Verdict {
			return verdicts[req.Path]
		}),
		Upstream: up, Transport: cannedTransport{}, Usage: u,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ok", "/wrong", "/limited", "/unknown", "/missing"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	want := []recorded{{testToken.ID, auth.OK}, {testToken.ID, auth.CodeInvalidToken}, {testToken.ID, auth.CodeRateLimited}}
	if len(u.recs) != len(want) {
		t.Fatalf("recorded %v, want %v", u.recs, want)
	}
	for i := range want {
		if u.recs[i] != want[i] {
			t.Errorf("record %d = %v, want %v", i, u.recs[i], want[i])
		}
	}
}

// BenchmarkProxyUsage is BenchmarkProxyOverhead's tswgate case with the
// real usage recorder: what counting adds per request (nothing allocated).
func BenchmarkProxyUsage(b *testing.B) {
	up, _ := url.Parse("http://upstream.invalid")
	rec, err := usage.New(usage.Options{Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		u    UsageRecorder
	}{{"without", nil}, {"with", rec}} {
		h, err := New(Options{Decider: deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict {
			return auth.Verdict{Token: testToken, TokenID: testToken.ID}
		}), Upstream: up, Transport: cannedTransport{}, Usage: c.u})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v2/Instance?ProjectId=42", nil)
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

type discardSink struct{}

func (discardSink) AddUsage(context.Context, []auth.UsageRecord) error { return nil }
