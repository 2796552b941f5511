package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// resources is one measurement of a replica. -1 means unknown.
type resources struct {
	Goroutines float64 // go_goroutines
	FDs        float64 // entries of /proc/PID/fd
	OpenFDs    float64 // process_open_fds
	Heap       float64 // go_memstats_heap_alloc_bytes
	RSS        float64 // process_resident_memory_bytes
	Err        string  // why the metrics could not be read
}

// fromMetrics fills r from a replica's /metrics samples; a missing one is
// -1.
func (r *resources) fromMetrics(samples []devtool.MetricSample) {
	r.Goroutines, r.OpenFDs, r.Heap, r.RSS = -1, -1, -1, -1
	for _, s := range samples {
		switch s.Name {
		case "go_goroutines":
			r.Goroutines = s.Value
		case "process_open_fds":
			r.OpenFDs = s.Value
		case "go_memstats_heap_alloc_bytes":
			r.Heap = s.Value
		case "process_resident_memory_bytes":
			r.RSS = s.Value
		}
	}
}

// max returns the field-wise maximum of r and o.
func (r resources) max(o resources) resources {
	return resources{
		Goroutines: math.Max(r.Goroutines, o.Goroutines),
		FDs:        math.Max(r.FDs, o.FDs),
		OpenFDs:    math.Max(r.OpenFDs, o.OpenFDs),
		Heap:       math.Max(r.Heap, o.Heap),
		RSS:        math.Max(r.RSS, o.RSS),
	}
}

// replicaResources is a replica's measurements over the run.
type replicaResources struct {
	Replica          int
	PID              int
	Start, End, Peak resources
}

// report is everything the Markdown output shows.
type report struct {
	Command          string
	Opts             options
	Facts            devtool.Facts
	Started          time.Time // start of the measured run
	Took             time.Duration
	Warmup, Run      loadStats
	WarmupUnexpected int64
	Restarts         []restartEvent
	Rows             []row // the measured run's outcomes
	Resources        []replicaResources
	Problems         []string // replicas that died, and the like
}

// countUnexpected sums the counts of the unexpected rows.
func countUnexpected(rows []row) int64 {
	var n int64
	for _, r := range rows {
		if !r.Expected {
			n += r.Count
		}
	}
	return n
}

// unexpected is the number of answers and errors that should not have
// happened, plus one per problem: 0 means the soak passed.
func (r *report) unexpected() int64 {
	n := countUnexpected(r.Rows) + r.WarmupUnexpected + int64(len(r.Problems))
	for _, ev := range r.Restarts {
		if ev.Err != "" {
			n++
		}
		n += int64(len(ev.Problems))
	}
	return n
}

// markdown renders r.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := r.Opts
	restarts := "never restarted"
	if o.RedisRestart > 0 {
		restarts = fmt.Sprintf("restarted every %v (%d times)", o.RedisRestart, len(r.Restarts))
	}
	w("### Soak: %d replicas, %d req/s for %v, Redis %s\n\n", o.Replicas, o.Rate, o.Duration, restarts)
	if n := r.unexpected(); n > 0 {
		w("**FAILED: %d unexpected answers, errors or problems** (marked **no** below).\n\n", n)
	} else {
		w("**Passed:** every answer was the expected one for its request and phase; no replica died.\n\n")
	}

	r.writeTotals(w)
	r.writeRefusals(w)
	r.writeRestarts(w)
	r.writeResources(w)
	r.writeSetup(w)
	return b.String()
}

// mdWriter appends formatted Markdown to a report.
type mdWriter func(format string, args ...any)

// writeTotals writes the answers by phase.
func (r *report) writeTotals(w mdWriter) {
	var total [numPhases]int64
	var ok [numPhases]int64
	for _, row := range r.Rows {
		total[row.Phase] += row.Count
		if row.Outcome.Status >= 200 && row.Outcome.Status < 300 {
			ok[row.Phase] += row.Count
		}
	}
	all := total[phaseSteady] + total[phaseRestart]
	w("| phase | requests | 2xx | non-2xx or error | unexpected |\n")
	w("| --- | ---: | ---: | ---: | ---: |\n")
	for p := phase(0); p < numPhases; p++ {
		var unexp int64
		for _, row := range r.Rows {
			if row.Phase == p && !row.Expected {
				unexp += row.Count
			}
		}
		w("| %s | %d | %d | %d | %d |\n", p, total[p], ok[p], total[p]-ok[p], unexp)
	}
	rate := 0.0
	if r.Took > 0 {
		rate = float64(all) / r.Took.Seconds()
	}
	w("\n%d answers in %v (%.0f/s; %d due requests skipped because all %d workers were busy). Warm-up before it: %d requests in %v, %d unexpected.\n\n",
		all, r.Took.Round(100*time.Millisecond), rate, r.Run.Skipped, loadWorkers, r.Warmup.Sent, r.Warmup.Took.Round(100*time.Millisecond), r.WarmupUnexpected)

}

// writeRefusals writes every non-2xx answer and error, and the 2xx answers
// that should have been refused.
func (r *report) writeRefusals(w mdWriter) {
	w("#### Every non-2xx answer and error\n\n")
	w("| phase | request | answer | count | expected |\n")
	w("| --- | --- | --- | ---: | --- |\n")
	rows := 0
	for _, row := range r.Rows {
		if row.Outcome.Status >= 200 && row.Outcome.Status < 300 {
			continue
		}
		exp := "yes"
		if !row.Expected {
			exp = "**no**"
		}
		w("| %s | %s | %s | %d | %s |\n", row.Phase, row.Kind, devtool.MDEscape(row.Outcome.String()), row.Count, exp)
		rows++
	}
	if rows == 0 {
		w("| – | – | none | 0 | – |\n")
	}
	// 2xx answers that should have been refused.
	for _, row := range r.Rows {
		if row.Outcome.Status >= 200 && row.Outcome.Status < 300 && !row.Expected {
			w("\n**%d requests of kind \"%s\" were answered %s in the %s phase: they should have been refused.**\n", row.Count, row.Kind, row.Outcome, row.Phase)
		}
	}
	w("\n")

}

// writeRestarts writes what happened at each Redis restart.
func (r *report) writeRestarts(w mdWriter) {
	o := r.Opts
	if len(r.Restarts) > 0 {
		w("#### Redis restarts\n\n")
		w("Times from the start of the measured run. redis-server is killed (SIGKILL) and started again on the same port, empty; the Owner and Accounting tokens are then created again through the admin API and the load switches to them. ")
		w("A request overlapping a window (the kill to %v later, or to 1s after the tokens are back if later) belongs to the restart phase.\n\n", o.Window)
		w("After each restart every replica is called with the previous Owner token, lost with the data, until it answers `401 invalid_token` (it must notice within %v, half the cache TTL: it drops its cache when its subscription to Redis comes back).\n\n", lostTimeout)
		w("| # | killed | Redis back | tokens recreated | lost token refused, per replica | window |\n")
		w("| ---: | ---: | ---: | ---: | --- | --- |\n")
		for _, ev := range r.Restarts {
			rel := func(t time.Time) string { return "+" + formatOffset(t.Sub(r.Started)) }
			var lost []string
			for _, d := range ev.LostRefused {
				if d < 0 {
					lost = append(lost, "**not refused**")
				} else {
					lost = append(lost, devtool.FormatLatency(d))
				}
			}
			if len(lost) == 0 {
				lost = []string{"–"}
			}
			w("| %d | %s | %s (%s) | %s (%s) | %s | %s – %s |", ev.N, rel(ev.Killed),
				rel(ev.Up), devtool.FormatLatency(ev.Up.Sub(ev.Killed)),
				rel(ev.Recreated), devtool.FormatLatency(ev.Recreated.Sub(ev.Killed)),
				strings.Join(lost, ", "), rel(ev.Killed), rel(ev.WindowEnd))
			if ev.Err != "" {
				w(" **failed: %s**", devtool.MDEscape(ev.Err))
			}
			w("\n")
		}
		w("\n")
		for _, ev := range r.Restarts {
			for _, p := range ev.Problems {
				w("**Problem after restart %d:** %s\n\n", ev.N, devtool.MDEscape(p))
			}
		}
	}

}

// writeResources writes each replica's resources at the start, the end and
// the peak.
func (r *report) writeResources(w mdWriter) {
	w("#### Resources per replica\n\n")
	w("Start (after the warm-up) and end are measured with the load paused, the load's idle connections closed and the gateways' idle upstream connections timed out; the peak is the largest of samples taken every %v under load. The heap counts garbage not yet collected, so a change of a few MiB between two measurements is noise; a leak is growth that goes on over a long run, with goroutines or open files that do not return to their start.\n\n", sampleEvery)
	w("| replica | measure | start | end | change | peak |\n")
	w("| --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, rr := range r.Resources {
		name := fmt.Sprintf("%d (pid %d)", rr.Replica, rr.PID)
		line := func(measure string, get func(resources) float64, format func(float64) string) {
			s, e, p := get(rr.Start), get(rr.End), get(rr.Peak)
			w("| %s | %s | %s | %s | %s | %s |\n", name, measure, format(s), format(e), formatChange(s, e, format), format(p))
		}
		line("goroutines (`go_goroutines`)", func(x resources) float64 { return x.Goroutines }, formatCount)
		line("open files (`/proc/PID/fd`)", func(x resources) float64 { return x.FDs }, formatCount)
		line("open files (`process_open_fds`)", func(x resources) float64 { return x.OpenFDs }, formatCount)
		line("heap (`go_memstats_heap_alloc_bytes`)", func(x resources) float64 { return x.Heap }, formatBytes)
		line("resident memory (`process_resident_memory_bytes`)", func(x resources) float64 { return x.RSS }, formatBytes)
		for _, e := range []string{rr.Start.Err, rr.End.Err} {
			if e != "" {
				w("| %s | metrics unreadable: %s | | | | |\n", name, devtool.MDEscape(e))
			}
		}
	}
	w("\n")
}

// writeSetup writes the problems, the load's mix, the settings, the
// command and the machine.
func (r *report) writeSetup(w mdWriter) {
	for _, p := range r.Problems {
		w("**Problem:** `%s`\n\n", devtool.MDCode(p))
	}
	w("- Mix: 50%% Owner `GET /v2/Instance?ProjectId=42`, 20%% Accounting `GET /v2/Invoice`, 10%% Accounting `GET /v2/Instance?ProjectId=42` (403), 10%% never-issued tokens, 5%% the Owner id with a wrong secret, 5%% a mistyped Owner token; round robin over the replicas, paced every %v, at most %d in flight.\n", loadTick, loadWorkers)
	w("- Gateways with their defaults (cache TTL 10s, negative TTL 2s, stale-if-error 30s, store timeout 100ms), `TSWGATE_LOG_LEVEL=warn`; upstream: the in-process stand-in API.\n")
	w("- Command: `%s`\n", r.Command)
	w("- Machine: nproc %d, %s, %s, Linux %s, %s", r.Facts.NProc, r.Facts.CPUModel, r.Facts.GoVersion, r.Facts.Kernel, r.Facts.Redis)
	if r.Facts.LoadAvg != "" {
		w("; load average %s when the run began", r.Facts.LoadAvg)
	}
	w("\n")
}

// formatCount renders a count, or "?" when unknown.
func formatCount(v float64) string {
	if v < 0 {
		return "?"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// formatBytes renders a size in KiB, MiB or GiB with three significant
// digits, or "?" when unknown.
func formatBytes(v float64) string {
	switch {
	case v < 0:
		return "?"
	case v < 1<<10:
		return strconv.FormatFloat(v, 'f', 0, 64) + " B"
	case v < 1<<20:
		return devtool.Sig3(v/(1<<10)) + " KiB"
	case v < 1<<30:
		return devtool.Sig3(v/(1<<20)) + " MiB"
	default:
		return devtool.Sig3(v/(1<<30)) + " GiB"
	}
}

// formatChange renders end - start with a sign in start's format, or "?"
// when either is unknown.
func formatChange(start, end float64, format func(float64) string) string {
	if start < 0 || end < 0 {
		return "?"
	}
	d := end - start
	switch {
	case d > 0:
		return "+" + format(d)
	case d < 0:
		return "−" + format(-d)
	}
	return "0"
}

// formatOffset renders a time from the start of the run: "1m20.3s".
func formatOffset(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}
