package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// summary is one target's results over all rounds.
type summary struct {
	Name   string        // as shown in the table
	RPS    float64       // median over rounds
	P50    time.Duration // median over rounds
	P99    time.Duration // median over rounds
	Non2xx int64         // sum over rounds
	Errors int64         // sum over rounds
	Empty  int           // rounds that got no response at all
	CPU    float64       // server CPU µs per response, median over rounds
	// Refusals marks an invalid-token flood: every response should be a
	// refusal, and Accepted counts those that were not.
	Refusals bool
	Accepted int64
	// BaseP99 is the direct upstream's p99 at the same paced rate (the
	// half-capacity runs only).
	BaseP99 time.Duration
	// FirstError describes one failure, for the report.
	FirstError string
	Rounds     []loadResult
}

// summarize computes a target's medians and error totals.
func summarize(name string, rounds []loadResult) summary {
	s := summary{Name: name, Rounds: rounds}
	var rps, p50, p99, cpu []float64
	for i, r := range rounds {
		if r.Requests == 0 {
			s.Empty++
			if s.FirstError == "" && r.FirstError == "" {
				s.FirstError = fmt.Sprintf("round %d got no response at all", i+1)
			}
		}
		rps = append(rps, r.RPS)
		p50 = append(p50, float64(r.P50))
		p99 = append(p99, float64(r.P99))
		cpu = append(cpu, r.CPUPerReq)
		s.Accepted += r.Requests - r.Non2xx
		s.Non2xx += r.Non2xx
		s.Errors += r.Errors
		if s.FirstError == "" {
			s.FirstError = r.FirstError
		}
	}
	s.RPS = devtool.Median(rps)
	s.P50 = time.Duration(devtool.Median(p50))
	s.P99 = time.Duration(devtool.Median(p99))
	s.CPU = devtool.Median(cpu)
	return s
}

// facts describe the machine, for the report.
type facts struct {
	devtool.Facts
	// Busy is the fraction of all CPUs' time other processes used in the
	// second before the run, or -1 when unknown. The benchmark wants ~0.
	Busy float64
}

// machineFacts gathers facts about this machine.
func machineFacts() facts { return facts{Facts: devtool.MachineFacts(), Busy: -1} }

// busyWarn is the CPU use by others above which the report warns.
const busyWarn = 0.10

// report is everything the Markdown output shows.
type report struct {
	Command   string // the tswbench command line
	Generator string // such as "wrk 4.1.0 [epoll]" or "built-in Go closed-loop generator"
	LoadCmd   string // one load run's command line, credential redacted
	Conns     int
	Duration  time.Duration
	Rounds    int
	Pinned    bool
	Facts     facts
	BodyBytes int // size of the upstream's answer
	Direct    summary
	Bare      summary
	Gate      summary
	Refs      []summary // nginx and haproxy, with -ref
	Flood     []summary // the invalid-token flood, with -ref
	Half      []summary // each proxy paced at half its capacity, with -ref
	Notes     []string  // extra lines, such as why the Go generator was used
}

// hasErrors reports whether any target saw a non-2xx response or an error.
func (r *report) hasErrors() bool {
	for _, s := range r.targets() {
		if s.Non2xx > 0 || s.Errors > 0 || s.Empty > 0 {
			return true
		}
	}
	for _, s := range r.Flood {
		if s.Accepted > 0 || s.Errors > 0 || s.Empty > 0 {
			return true
		}
	}
	for _, s := range r.Half {
		if s.Non2xx > 0 || s.Errors > 0 || s.Empty > 0 {
			return true
		}
	}
	return false
}

// targets returns the summaries of the valid-token runs, references last.
func (r *report) targets() []*summary {
	ts := []*summary{&r.Direct, &r.Bare, &r.Gate}
	for i := range r.Refs {
		ts = append(ts, &r.Refs[i])
	}
	return ts
}

// markdown renders r as Markdown for the README.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("### Load benchmark: tswgate vs. a bare reverse proxy\n\n")
	if r.hasErrors() {
		w("> **WARNING: errors during the run** — some responses were not 2xx or failed, or a round got none; the numbers below are not valid. See the per-round table.\n\n")
	}
	w("| target | req/s | p50 | p99 | CPU µs/req | non-2xx | errors |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.targets() {
		w("| %s | %s | %s | %s | %s | %d | %d |\n", s.Name, formatRPS(s.RPS), formatLatency(s.P50), formatLatency(s.P99), formatCPU(s.CPU), s.Non2xx, s.Errors)
	}
	w("\n")
	w("| ratio | req/s | p50 | p99 |\n")
	w("| --- | ---: | ---: | ---: |\n")
	w("| tswgate / bare | %s | %s | %s |\n", formatRatio(r.Gate.RPS, r.Bare.RPS),
		formatRatio(float64(r.Gate.P50), float64(r.Bare.P50)), formatRatio(float64(r.Gate.P99), float64(r.Bare.P99)))
	w("| bare / direct | %s | %s | %s |\n", formatRatio(r.Bare.RPS, r.Direct.RPS),
		formatRatio(float64(r.Bare.P50), float64(r.Direct.P50)), formatRatio(float64(r.Bare.P99), float64(r.Direct.P99)))
	w("\n")
	if len(r.Refs) > 0 {
		r.refMarkdown(w)
	}

	if r.Rounds == 1 {
		w("One round of %s per target (direct, bare, tswgate), %d connections, ", r.Duration, r.Conns)
	} else {
		w("Medians of %d interleaved rounds of %s per target (direct, bare, tswgate, direct, …), %d connections, ", r.Rounds, r.Duration, r.Conns)
	}
	w("`GET /v2/Instance?ProjectId=42` with `Authorization: Bearer <Owner token>` to every target (tswgate's token is cached after warm-up); ")
	w("the upstream answers %d bytes of JSON. ", r.BodyBytes)
	if r.Pinned {
		w("Servers pinned to CPU 0, load generator to CPU 1 (`taskset`), loopback only.\n\n")
	} else {
		w("Not pinned to CPUs (taskset unavailable or fewer than 2 CPUs), loopback only.\n\n")
	}
	w("- Command: `%s`\n", r.Command)
	w("- Load generator: %s — `%s`\n", r.Generator, r.LoadCmd)
	w("- Machine: nproc %d, %s, %s, Linux %s", r.Facts.NProc, r.Facts.CPUModel, r.Facts.GoVersion, r.Facts.Kernel)
	if r.Facts.Busy >= 0 {
		w(", CPUs %.0f%% busy with other work just before the run", 100*r.Facts.Busy)
	}
	w("\n")
	if r.Facts.Busy > busyWarn {
		w("- **Note:** the machine was not idle before the run; other processes competed for the pinned CPUs, so these numbers are disturbed.\n")
	}
	for _, n := range r.Notes {
		w("- %s\n", n)
	}
	w("\n<details><summary>Per-round results</summary>\n\n")
	w("| round | target | req/s | p50 | p99 | non-2xx | errors |\n")
	w("| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for i := 0; i < r.Rounds; i++ {
		for _, s := range r.targets() {
			if i >= len(s.Rounds) {
				continue
			}
			x := s.Rounds[i]
			w("| %d | %s | %s | %s | %s | %d | %d |\n", i+1, s.Name, formatRPS(x.RPS), formatLatency(x.P50), formatLatency(x.P99), x.Non2xx, x.Errors)
		}
	}
	w("\n</details>\n")
	for _, s := range r.targets() {
		if s.FirstError != "" {
			w("\n%s: first failure: `%s`\n", s.Name, devtool.MDCode(s.FirstError))
		}
	}
	return b.String()
}

// refMarkdown renders the comparison with the reference servers: ratios
// to nginx, the invalid-token flood and the p99 at half capacity.
func (r *report) refMarkdown(w func(format string, args ...any)) {
	nginx := r.Refs[0]
	w("| × %s | req/s | CPU µs/req |\n", nginx.Name)
	w("| --- | ---: | ---: |\n")
	for _, s := range append([]*summary{&r.Gate, &r.Bare}, r.targets()[4:]...) {
		w("| %s | %s | %s |\n", s.Name, formatRatio(s.RPS, nginx.RPS), formatRatio(s.CPU, nginx.CPU))
	}
	w("\n")
	if len(r.Flood) > 0 {
		w("Invalid-token flood (a well-formed token none of them knows; every answer must be a refusal):\n\n")
		w("| target | req/s | CPU µs/req | × nginx req/s | × nginx CPU | accepted | errors |\n")
		w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		var ref *summary
		for i, s := range r.Flood {
			if s.Name == nginx.Name {
				ref = &r.Flood[i]
			}
		}
		for _, s := range r.Flood {
			rr, rc := "–", "–"
			if ref != nil {
				rr, rc = formatRatio(s.RPS, ref.RPS), formatRatio(s.CPU, ref.CPU)
			}
			w("| %s | %s | %s | %s | %s | %d | %d |\n", s.Name, formatRPS(s.RPS), formatCPU(s.CPU), rr, rc, s.Accepted, s.Errors)
		}
		w("\n")
	}
	if len(r.Half) > 0 {
		w("Latency at half capacity (each proxy paced at 50%% of its own req/s above by the Go generator, open loop; then the direct upstream at the same rate):\n\n")
		w("| target | paced req/s | p50 | p99 | upstream p99 | p99 added |\n")
		w("| --- | ---: | ---: | ---: | ---: | ---: |\n")
		for _, s := range r.Half {
			w("| %s | %s | %s | %s | %s | %s |\n", s.Name, formatRPS(s.RPS), formatLatency(s.P50), formatLatency(s.P99),
				formatLatency(s.BaseP99), formatAdded(s.P99-s.BaseP99))
		}
		w("\n")
	}
}

// formatAdded renders the p99 a proxy adds; below zero it is noise.
func formatAdded(d time.Duration) string {
	if d <= 0 {
		return "≤ 0 (noise)"
	}
	return devtool.FormatLatency(d)
}

// formatCPU renders CPU µs per request, or "–" for none.
func formatCPU(us float64) string {
	if us <= 0 {
		return "–"
	}
	return strconv.FormatFloat(us, 'f', 1, 64)
}

// formatRPS renders a rate with thousands separators: "41,235".
func formatRPS(v float64) string {
	n := int64(v + 0.5)
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatLatency renders a latency as devtool.FormatLatency does, but "–"
// for none.
func formatLatency(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return devtool.FormatLatency(d)
}

// formatRatio renders a/b as "0.87×", or "–" when b is 0.
func formatRatio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}
