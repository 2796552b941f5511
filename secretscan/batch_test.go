package secretscan

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tswgate/tswgate/internal/redistest"
)

// TestReportOf1000 sends a report of 1,000 live tokens to a partner
// handler on a real Redis and checks that every one is revoked. It logs
// the answer time (GitHub waits about 10 s; the target is well under a
// second on loopback): go test -run TestReportOf1000 -v ./secretscan
func TestReportOf1000(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,000 tokens")
	}
	s := redisStore(t, redistest.Start(t))
	f := newPartner(t, s)
	reports, ids := liveReports(t, s, 1000)
	body := reportBody(t, reports...)
	start := time.Now()
	w := f.post(t, body, f.signedBy(t, f.github, body))
	elapsed := time.Since(start)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var fb []Feedback
	if err := json.Unmarshal(w.Body.Bytes(), &fb); err != nil || len(fb) != len(reports) {
		t.Fatalf("%d feedback entries, %v", len(fb), err)
	}
	for i, e := range fb {
		if e.Label != TruePositive {
			t.Fatalf("feedback %d: %s", i, e.Label)
		}
	}
	for _, id := range ids {
		if !revoked(t, s, id) {
			t.Fatalf("%s not revoked", id)
		}
	}
	t.Logf("a report of %d live tokens answered in %s (Redis on loopback, Parallelism %d)",
		len(reports), elapsed.Round(time.Millisecond), DefaultParallelism)
}

// liveReports creates n tokens and returns a report of each.
func liveReports(t testing.TB, s store, n int) ([]Report, []string) {
	t.Helper()
	reports := make([]Report, n)
	ids := make([]string, n)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			tok, cred := addToken(t, s)
			reports[i] = Report{Token: cred, Type: "tswgate_api_token",
				URL: "https://github.com/octo/app/blob/main/config.yml", Source: "content"}
			ids[i] = tok.ID
			return nil
		})
	}
	_ = g.Wait()
	return reports, ids
}

// BenchmarkReport1000 measures a report of 1,000 live tokens on Redis;
// each iteration revokes 1,000 fresh tokens.
func BenchmarkReport1000(b *testing.B) {
	srv := redistest.Start(b)
	s := redisStore(b, srv)
	f := newPartner(b, s)
	for b.Loop() {
		b.StopTimer()
		reports, _ := liveReports(b, s, 1000)
		body := reportBody(b, reports...)
		sign := f.signedBy(b, f.github, body)
		b.StartTimer()
		if w := f.post(b, body, sign); w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// TestReportParallelismIsBounded checks that no more than Parallelism
// store calls run at once.
func TestReportParallelismIsBounded(t *testing.T) {
	s := openStores(t)["file"](t)
	counting := &concurrencyProbe{store: s}
	rec := newRecorder()
	opts := baseOptions(t, s, rec)
	opts.Tokens, opts.Parallelism = counting, 4
	if err := opts.check(); err != nil {
		t.Fatal(err)
	}
	reports, _ := liveReports(t, s, 64)
	labels, err := opts.checkAll(context.Background(), reports, origin{actorKind: ActorSecretScanning, reporter: "github"})
	if err != nil || len(labels) != 64 {
		t.Fatalf("checkAll = %d labels, %v", len(labels), err)
	}
	if m := counting.max.Load(); m > 4 || m < 1 {
		t.Errorf("%d store reads at once, want 1 to 4", m)
	}
}
