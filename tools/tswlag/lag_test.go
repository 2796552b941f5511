package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestLagEndToEnd runs the whole measurement with -n 20: a real Redis,
// three real tswgate processes, 20 tokens revoked one by one. The bounds
// are loose on purpose (a loaded CI machine running -race); the README's
// goal is checked by running the tool itself.
func TestLagEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tswgate and starts redis-server and three gateways")
	}
	o, err := parseFlags([]string{"-n", "20"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	start := time.Now()
	rep, err := run(ctx, o, &progress)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
	md := rep.markdown()
	t.Logf("report:\n%s", md)

	if rep.Replicas != 3 || rep.N != 20 {
		t.Fatalf("report of %d replicas x %d tokens, want 3 x 20", rep.Replicas, rep.N)
	}
	for _, f := range rep.Failures {
		t.Errorf("not refused properly: %s", f)
	}
	if got := len(rep.Samples); got != 60 {
		t.Errorf("%d samples, want 3 replicas x 20 tokens = 60", got)
	}
	seen := map[[2]int]bool{}
	for _, s := range rep.Samples {
		key := [2]int{s.Token, s.Replica}
		if seen[key] {
			t.Errorf("token %d, replica %d measured twice", s.Token, s.Replica)
		}
		seen[key] = true
		if s.Lag < 0 || s.Lag > 5*time.Second {
			t.Errorf("token %d, replica %d: lag %v, want within 5s", s.Token, s.Replica, s.Lag)
		}
		if want := s.Token%3 + 1; s.Revoker != want {
			t.Errorf("token %d revoked through replica %d, want %d (rotating)", s.Token, s.Revoker, want)
		}
	}
	for n := 1; n <= 3; n++ {
		if got := rep.PerReplica(n).Count; got != 20 {
			t.Errorf("replica %d: %d samples, want 20", n, got)
		}
	}
	if p99 := rep.All().P99; p99 >= 2*time.Second {
		t.Errorf("p99 lag %v, want under 2s", p99)
	}
	if !rep.ok() {
		t.Error("the report says the run failed")
	}
	for _, want := range []string{"| **all** | 60 |", "| replica 1 | 20 |", "| replica 2 | 20 |", "| replica 3 | 20 |", "nproc ", "go1."} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q", want)
		}
	}
}

func TestLagPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	s := summarize(ms(5, 1, 0, 3, 2, 4, 0, 9, 8, 7))
	if s.Count != 10 || s.P50 != 3*time.Millisecond || s.P99 != 9*time.Millisecond || s.Max != 9*time.Millisecond || s.Zero != 2 {
		t.Errorf("summarize = %+v", s)
	}
	if got := summarize(nil); got.Count != 0 || got.P99 != 0 {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestLagAnnouncedLine(t *testing.T) {
	rep := &report{Announced: []announced{{Count: 10, Sum: 0.01, Buckets: map[float64]float64{0.0005: 7, 0.001: 9, 0.0025: 10}}}}
	if line := rep.announcedLine(); !strings.Contains(line, "10 announcements, mean 1.00 ms, p99 ≤ 2.50 ms") {
		t.Errorf("announcedLine = %q", line)
	}
}
