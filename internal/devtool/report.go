package devtool

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Facts describe the machine, for a report.
type Facts struct {
	NProc     int    // CPUs this process may use, as nproc prints
	CPUModel  string // "model name" from /proc/cpuinfo
	GoVersion string // such as "go1.26.8 linux/amd64"
	Kernel    string // from /proc/sys/kernel/osrelease
	Redis     string // such as "redis-server 7.0.15", set by tools that start one
	LoadAvg   string // the 1-minute load average when gathered, from /proc/loadavg
}

// MachineFacts gathers facts about this machine.
func MachineFacts() Facts {
	f := Facts{
		NProc:     runtime.NumCPU(), // sched_getaffinity, as nproc
		CPUModel:  "unknown CPU",
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:    "unknown",
	}
	if file, err := os.Open("/proc/cpuinfo"); err == nil {
		f.CPUModel = cpuModel(file)
		file.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			f.LoadAvg = fields[0]
		}
	}
	return f
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

// MeasureBusy returns the fraction of CPU time in use over d, or -1 when
// /proc/stat is unreadable.
func MeasureBusy(d time.Duration) float64 {
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

// Percentile returns the nearest-rank p-th percentile of sorted
// (ascending): the smallest value with at least p% of the values at or
// below it; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
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

// FormatLatency renders a duration with three significant digits in µs,
// ms or s; 0 (or less) is "0".
func FormatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return Sig3(float64(d)/float64(time.Microsecond)) + " µs"
	case d < time.Second:
		return Sig3(float64(d)/float64(time.Millisecond)) + " ms"
	default:
		return Sig3(d.Seconds()) + " s"
	}
}

// Sig3 formats v (≥ 0) with three significant digits: 1.23, 12.3, 123.
func Sig3(v float64) string {
	switch {
	case v >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// MDEscape keeps text from breaking a Markdown table.
func MDEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}

// MDCode makes s safe inside a Markdown code span: backquotes become
// quotes.
func MDCode(s string) string { return strings.ReplaceAll(s, "`", "'") }

// WriteReport prints the Markdown md on stdout and, when path is not
// empty, writes it to path too (creating its directory), saying so on
// stderr. It returns false, having said why on stderr, when path cannot be
// written. tool prefixes the messages.
func WriteReport(stdout, stderr io.Writer, tool, path, md string) bool {
	fmt.Fprint(stdout, md)
	if path == "" {
		return true
	}
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = os.WriteFile(path, []byte(md), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: -out: %v\n", tool, err)
		return false
	}
	fmt.Fprintf(stderr, "%s: wrote %s\n", tool, path)
	return true
}
