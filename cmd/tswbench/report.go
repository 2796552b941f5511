package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary is one target's results over all rounds.
type summary struct {
	Name   string        // as shown in the table
	RPS    float64       // median over rounds
	P50    time.Duration // median over rounds
	P99    time.Duration // median over rounds
	Non2xx int64         // sum over rounds
	Errors int64         // sum over rounds
	Empty  int           // rounds that got no response at all
	// FirstError describes one failure, for the report.
	FirstError string
	Rounds     []loadResult
}

// summarize computes a target's medians and error totals.
func summarize(name string, rounds []loadResult) summary {
	s := summary{Name: name, Rounds: rounds}
	var rps, p50, p99 []float64
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
		s.Non2xx += r.Non2xx
		s.Errors += r.Errors
		if s.FirstError == "" {
			s.FirstError = r.FirstError
		}
	}
	s.RPS = median(rps)
	s.P50 = time.Duration(median(p50))
	s.P99 = time.Duration(median(p99))
	return s
}

// facts describe the machine, for the report.
type facts struct {
	NProc     int    // CPUs this process may use, as nproc prints
	CPUModel  string // "model name" from /proc/cpuinfo
	GoVersion string // such as "go1.26.8 linux/amd64"
	Kernel    string // from /proc/sys/kernel/osrelease
	// Busy is the fraction of all CPUs' time other processes used in the
	// second before the run, or -1 when unknown. The benchmark wants ~0.
	Busy float64
}

// machineFacts gathers facts about this machine.
func machineFacts() facts {
	f := facts{
		NProc:     runtime.NumCPU(), // sched_getaffinity, as nproc
		CPUModel:  "unknown CPU",
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:    "unknown",
		Busy:      -1,
	}
	if file, err := os.Open("/proc/cpuinfo"); err == nil {
		f.CPUModel = cpuModel(file)
		file.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(b))
	}
	return f
}

// cpuTimes reads the aggregate "cpu" line of /proc/stat.
func cpuTimes() (idle, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseCPUTimes(string(b))
}

// parseCPUTimes returns the idle (idle + iowait) and total jiffies of the
// aggregate "cpu" line of a /proc/stat.
func parseCPUTimes(stat string) (idle, total uint64, err error) {
	for _, line := range strings.Split(stat, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		for i, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
			}
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat has no cpu line")
}

// measureBusy returns the fraction of CPU time in use over d, or -1 when
// /proc/stat is unreadable.
func measureBusy(d time.Duration) float64 {
	idle0, total0, err := cpuTimes()
	if err != nil {
		return -1
	}
	time.Sleep(d)
	idle1, total1, err := cpuTimes()
	if err != nil || total1 <= total0 {
		return -1
	}
	return 1 - float64(idle1-idle0)/float64(total1-total0)
}

// cpuModel returns the first "model name" in a /proc/cpuinfo, or
// "unknown CPU".
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			if v := strings.TrimSpace(value); v != "" {
				return v
			}
		}
	}
	return "unknown CPU"
}

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
	Notes     []string // extra lines, such as why the Go generator was used
}

// hasErrors reports whether any target saw a non-2xx response or an error.
func (r *report) hasErrors() bool {
	for _, s := range r.targets() {
		if s.Non2xx > 0 || s.Errors > 0 || s.Empty > 0 {
			return true
		}
	}
	return false
}

func (r *report) targets() []*summary { return []*summary{&r.Direct, &r.Bare, &r.Gate} }

// markdown renders r as Markdown for the README.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("### Load benchmark: tswgate vs. a bare reverse proxy\n\n")
	if r.hasErrors() {
		w("> **WARNING: errors during the run** — some responses were not 2xx or failed, or a round got none; the numbers below are not valid. See the per-round table.\n\n")
	}
	w("| target | req/s | p50 | p99 | non-2xx | errors |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.targets() {
		w("| %s | %s | %s | %s | %d | %d |\n", s.Name, formatRPS(s.RPS), formatLatency(s.P50), formatLatency(s.P99), s.Non2xx, s.Errors)
	}
	w("\n")
	w("| ratio | req/s | p50 | p99 |\n")
	w("| --- | ---: | ---: | ---: |\n")
	w("| tswgate / bare | %s | %s | %s |\n", formatRatio(r.Gate.RPS, r.Bare.RPS),
		formatRatio(float64(r.Gate.P50), float64(r.Bare.P50)), formatRatio(float64(r.Gate.P99), float64(r.Bare.P99)))
	w("| bare / direct | %s | %s | %s |\n", formatRatio(r.Bare.RPS, r.Direct.RPS),
		formatRatio(float64(r.Bare.P50), float64(r.Direct.P50)), formatRatio(float64(r.Bare.P99), float64(r.Direct.P99)))
	w("\n")

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
			w("\n%s: first failure: `%s`\n", s.Name, strings.ReplaceAll(s.FirstError, "`", "'"))
		}
	}
	return b.String()
}

// promValue returns the value of the sample named series (metric name and
// labels exactly as exposed, e.g. `x_total{result="hit"}`) in a Prometheus
// text exposition.
func promValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
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

// formatLatency renders a latency with three significant digits in µs, ms
// or s.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + " µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + " ms"
	default:
		return sig3(d.Seconds()) + " s"
	}
}

// sig3 formats v (≥ 0) with three significant digits: 1.23, 12.3, 123.
func sig3(v float64) string {
	switch {
	case v >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// formatRatio renders a/b as "0.87×", or "–" when b is 0.
func formatRatio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}
