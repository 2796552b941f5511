package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// goalP99 is the README's goal for the p99 lag on loopback.
const goalP99 = 50 * time.Millisecond

// report is everything the Markdown output shows.
type report struct {
	Command     string
	N           int
	Replicas    int
	Interval    time.Duration
	Timeout     time.Duration
	Samples     []sample
	RevokeCalls []time.Duration // duration of each DELETE /v1/tokens/{id}
	Failures    []string        // pairs not refused properly
	Announced   []announced     // per replica, from its metrics
	Facts       devtool.Facts
	Took        time.Duration
}

// ok reports whether every pair was refused properly.
func (r *report) ok() bool { return len(r.Failures) == 0 && len(r.Samples) == r.N*r.Replicas }

// stats summarises a set of durations.
type stats struct {
	Count         int
	P50, P99, Max time.Duration
	Zero          int // how many are 0
}

// summarize computes the stats of ds (nearest-rank percentiles).
func summarize(ds []time.Duration) stats {
	s := stats{Count: len(ds)}
	if len(ds) == 0 {
		return s
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	s.P50 = devtool.Percentile(sorted, 50)
	s.P99 = devtool.Percentile(sorted, 99)
	s.Max = sorted[len(sorted)-1]
	for _, d := range sorted {
		if d == 0 {
			s.Zero++
		}
	}
	return s
}

// lags returns the lags of the samples keep selects.
func (r *report) lags(keep func(sample) bool) []time.Duration {
	var ds []time.Duration
	for _, s := range r.Samples {
		if keep(s) {
			ds = append(ds, s.Lag)
		}
	}
	return ds
}

// All is the stats over every pair.
func (r *report) All() stats { return summarize(r.lags(func(sample) bool { return true })) }

// PerReplica is the stats of replica n's pairs.
func (r *report) PerReplica(n int) stats {
	return summarize(r.lags(func(s sample) bool { return s.Replica == n }))
}

// markdown renders r for the README.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	all := r.All()

	w("### Revocation lag across replicas\n\n")
	if !r.ok() {
		w("> **FAILED:** %d of %d (token, replica) pairs were not refused properly; see the list below.\n\n",
			r.N*r.Replicas-len(r.Samples)+countFlapping(r.Samples), r.N*r.Replicas)
	}
	w("| replicas | pairs | p50 | p99 | max | refused before the revoke returned |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	row := func(name string, s stats) {
		w("| %s | %d | %s | %s | %s | %d |\n", name, s.Count, devtool.FormatLatency(s.P50), devtool.FormatLatency(s.P99), devtool.FormatLatency(s.Max), s.Zero)
	}
	row("**all**", all)
	if r.Replicas > 1 {
		row("the revoking replica (own cache, dropped before answering)", summarize(r.lags(func(s sample) bool { return s.Replica == s.Revoker })))
		row("the other replicas (Redis pub/sub)", summarize(r.lags(func(s sample) bool { return s.Replica != s.Revoker })))
	}
	for n := 1; n <= r.Replicas; n++ {
		row(fmt.Sprintf("replica %d", n), r.PerReplica(n))
	}
	w("\n")
	verdict := "met"
	if all.Count == 0 || all.P99 >= goalP99 {
		verdict = "**not met**"
	}
	w("Goal: p99 under %s on loopback — %s (p99 %s over %d pairs).\n\n", devtool.FormatLatency(goalP99), verdict, devtool.FormatLatency(all.P99), all.Count)

	w("%d `tswgate serve` replicas share one Redis (%s, loopback) in front of the stand-in API. ", r.Replicas, r.Facts.Redis)
	w("%d Owner tokens are created through replica 1's admin API and called once on every replica, so each replica has each cached; ", r.N)
	w("then they are revoked one at a time (`DELETE /v1/tokens/{id}` through replica 1, 2, … in turn) while one poller per replica calls `GET %s` with that token, ", lagPath)
	if r.Interval > 0 {
		w("pausing %s between calls. ", r.Interval)
	} else {
		w("back to back. ")
	}
	w("A pair's lag runs from the revoke call returning to the poller receiving that replica's first `401 token_revoked` (0 when received before the call returned); ")
	w("its resolution is one poll round trip plus the pause. Each refusal is confirmed by %d more calls. ", confirmCalls)
	w("The gateways run with their defaults (`TSWGATE_CACHE_TTL` 10s, so the cached copy alone would last well beyond every lag measured).\n\n")

	calls := summarize(r.RevokeCalls)
	w("- The revoke call itself: p50 %s, p99 %s, max %s.\n", devtool.FormatLatency(calls.P50), devtool.FormatLatency(calls.P99), devtool.FormatLatency(calls.Max))
	if line := r.announcedLine(); line != "" {
		w("- %s\n", line)
	}
	w("- Command: `%s` (%s in all, build included)\n", r.Command, r.Took.Round(100*time.Millisecond))
	w("- Machine: nproc %d, %s, %s, Linux %s", r.Facts.NProc, r.Facts.CPUModel, r.Facts.GoVersion, r.Facts.Kernel)
	if r.Facts.LoadAvg != "" {
		w("; load average %s when the run began (other work on the machine disturbs the numbers)", r.Facts.LoadAvg)
	}
	w("\n")
	if len(r.Failures) > 0 {
		w("\nNot refused properly:\n\n")
		for i, f := range r.Failures {
			if i == 20 {
				w("- … and %d more\n", len(r.Failures)-20)
				break
			}
			w("- `%s`\n", devtool.MDCode(f))
		}
	}
	return b.String()
}

// countFlapping counts the samples that served the token again after
// refusing it.
func countFlapping(ss []sample) int {
	n := 0
	for _, s := range ss {
		if s.Flaps > 0 {
			n++
		}
	}
	return n
}

// announcedLine describes the replicas' own measure of the announcements
// (tswgate_invalidation_lag_seconds: publish → cached copy dropped), or "".
func (r *report) announcedLine() string {
	var count, sum float64
	buckets := map[float64]float64{}
	for _, a := range r.Announced {
		if a.Err != "" {
			return ""
		}
		count += a.Count
		sum += a.Sum
		for le, v := range a.Buckets {
			buckets[le] += v
		}
	}
	if count == 0 {
		return ""
	}
	bound := histogramBound(buckets, 0.99*count)
	s := fmt.Sprintf("The replicas' own measure, `tswgate_invalidation_lag_seconds` (announcement published → cached copy dropped, every creation and revocation, all replicas): %.0f announcements, mean %s",
		count, devtool.FormatLatency(time.Duration(sum/count*float64(time.Second))))
	if !math.IsInf(bound, 1) && bound > 0 {
		s += fmt.Sprintf(", p99 ≤ %s (histogram bucket)", devtool.FormatLatency(time.Duration(bound*float64(time.Second))))
	}
	return s + "."
}

// histogramBound returns the smallest bucket bound whose cumulative count
// reaches rank, or +Inf.
func histogramBound(buckets map[float64]float64, rank float64) float64 {
	bounds := make([]float64, 0, len(buckets))
	for le := range buckets {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	for _, le := range bounds {
		if buckets[le] >= rank {
			return le
		}
	}
	return math.Inf(1)
}
