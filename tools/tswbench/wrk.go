package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrk output lines parseWrk reads.
var (
	wrkPercentileRE = regexp.MustCompile(`^\s*(50|99)(?:\.0+)?%\s+([0-9.]+)([a-z]+)\s*$`)
	wrkRequestsRE   = regexp.MustCompile(`^\s*(\d+) requests in ([0-9.]+)([a-z]+),`)
	wrkRPSRE        = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)`)
	wrkNon2xxRE     = regexp.MustCompile(`^\s*Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocketRE     = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads the output of `wrk --latency` into a loadResult. wrk counts
// responses with a status of 400 or more as "Non-2xx or 3xx responses";
// socket errors (connect, read, write, timeout) become Errors.
func parseWrk(out string) (loadResult, error) {
	var res loadResult
	var haveP50, haveP99, haveReqs, haveRPS bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkPercentileRE.FindStringSubmatch(line); m != nil {
			d, err := wrkDuration(m[2], m[3])
			if err != nil {
				return res, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			if m[1] == "50" {
				res.P50, haveP50 = d, true
			} else {
				res.P99, haveP99 = d, true
			}
			continue
		}
		if m := wrkRequestsRE.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return res, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			d, err := wrkDuration(m[2], m[3])
			if err != nil {
				return res, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			res.Requests, res.Seconds, haveReqs = n, d.Seconds(), true
			continue
		}
		if m := wrkRPSRE.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return res, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			res.RPS, haveRPS = v, true
			continue
		}
		if m := wrkNon2xxRE.FindStringSubmatch(line); m != nil {
			res.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
			if res.Non2xx > 0 && res.FirstError == "" {
				res.FirstError = strings.TrimSpace(line)
			}
			continue
		}
		if m := wrkSocketRE.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				res.Errors += n
			}
			if res.Errors > 0 && res.FirstError == "" {
				res.FirstError = strings.TrimSpace(line)
			}
		}
	}
	var missing []string
	for _, f := range []struct {
		ok   bool
		name string
	}{{haveP50, "50% latency"}, {haveP99, "99% latency"}, {haveReqs, "requests in"}, {haveRPS, "Requests/sec"}} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("wrk output lacks %s (was --latency given?):\n%s", strings.Join(missing, ", "), out)
	}
	return res, nil
}

// wrkDuration converts a number and one of wrk's time units (us, ms, s, m,
// h) to a time.Duration.
func wrkDuration(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	var scale time.Duration
	switch unit {
	case "us":
		scale = time.Microsecond
	case "ms":
		scale = time.Millisecond
	case "s":
		scale = time.Second
	case "m":
		scale = time.Minute
	case "h":
		scale = time.Hour
	default:
		return 0, fmt.Errorf("unknown time unit %q", unit)
	}
	return time.Duration(v * float64(scale)), nil
}

// wrkArgs returns wrk's command line for one run: one thread (it has one
// CPU), conns connections, --latency for the percentiles.
func wrkArgs(wrk string, conns int, d time.Duration, header, url string) []string {
	args := []string{wrk, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	return append(args, url)
}

// wrkVersion returns wrk's version line, such as "wrk 4.1.0 [epoll]".
func wrkVersion(ctx context.Context, wrk string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, wrk, "-v").CombinedOutput() // exits 1 after printing
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	if line = strings.TrimSpace(line); line == "" {
		return "wrk"
	}
	return line
}

// findWrk returns the path of wrk, installing it as findTool does when
// install is set.
func findWrk(ctx context.Context, install bool, progress io.Writer) (string, error) {
	return findTool(ctx, "wrk", "wrk", install, progress)
}
