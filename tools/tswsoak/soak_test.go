package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/devtool"
)

// The tests cover tswsoak's pure helpers only; none starts a process or
// sends a request.

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.Duration != 10*time.Minute || o.Rate != 500 || o.RedisRestart != 2*time.Minute || o.Replicas != 2 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-quick"}, io.Discard)
	if err != nil || o.Duration != time.Minute || o.RedisRestart != 20*time.Second {
		t.Errorf("-quick: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-quick", "-d", "30s"}, io.Discard)
	if err != nil || o.Duration != 30*time.Second || o.RedisRestart != 20*time.Second {
		t.Errorf("-quick -d 30s: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"-rate", "0"},
		{"-d", "1s"},
		{"-redis-restart", "2s"},
		{"-redis-restart", "20s", "-window", "20s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
}

func TestMix(t *testing.T) {
	var n [numKinds]int
	for i := range uint64(1000) {
		n[kindOf(i)]++
	}
	want := [numKinds]int{kindOwner: 500, kindAccountingRead: 200, kindAccountingDeny: 100, kindUnknownToken: 100, kindWrongSecret: 50, kindMalformed: 50}
	if n != want {
		t.Errorf("mix of 1000 requests = %v, want %v", n, want)
	}
	// Each replica gets the whole mix: kind i/2 for replica i%2.
	var perReplica [2][numKinds]int
	for i := range uint64(2000) {
		perReplica[i%2][kindOf(i/2)]++
	}
	if perReplica[0] != want || perReplica[1] != want {
		t.Errorf("per replica: %v", perReplica)
	}
}

func TestExpected(t *testing.T) {
	ok := outcome{Status: 200}
	denied := outcome{Status: 403, Code: "permission_denied"}
	invalid := outcome{Status: 401, Code: "invalid_token"}
	malformed := outcome{Status: 401, Code: "malformed_token"}
	unavailable := outcome{Status: 503, Code: "store_unavailable"}
	badGateway := outcome{Status: 502, Code: "upstream_error"}
	refused := outcome{Code: "connection refused"}
	for _, tc := range []struct {
		k      kind
		p      phase
		o      outcome
		expect bool
	}{
		{kindOwner, phaseSteady, ok, true},
		{kindOwner, phaseSteady, invalid, false},
		{kindOwner, phaseSteady, unavailable, false},
		{kindOwner, phaseRestart, invalid, true},
		{kindOwner, phaseRestart, unavailable, true},
		{kindOwner, phaseRestart, badGateway, false},
		{kindOwner, phaseRestart, refused, false},
		{kindAccountingRead, phaseSteady, ok, true},
		{kindAccountingDeny, phaseSteady, denied, true},
		{kindAccountingDeny, phaseSteady, ok, false},
		{kindAccountingDeny, phaseRestart, ok, false},
		{kindAccountingDeny, phaseRestart, invalid, true},
		{kindUnknownToken, phaseSteady, invalid, true},
		{kindUnknownToken, phaseSteady, ok, false},
		{kindUnknownToken, phaseRestart, unavailable, true},
		{kindWrongSecret, phaseSteady, invalid, true},
		{kindWrongSecret, phaseRestart, ok, false},
		{kindMalformed, phaseSteady, malformed, true},
		{kindMalformed, phaseRestart, malformed, true},
		{kindMalformed, phaseRestart, unavailable, false}, // refused before any store call
		{kindMalformed, phaseRestart, invalid, false},
	} {
		if got := expected(tc.k, tc.p, tc.o); got != tc.expect {
			t.Errorf("expected(%s, %s, %s) = %v, want %v", tc.k, tc.p, tc.o, got, tc.expect)
		}
	}
}

func TestWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var ws windows
	if ws.phaseOf(at(1), at(2)) != phaseSteady {
		t.Error("no window: not steady")
	}
	ws.open(at(10))
	for _, tc := range []struct {
		start, end float64
		want       phase
	}{
		{1, 2, phaseSteady},
		{9, 9.99, phaseSteady},
		{9, 10, phaseRestart}, // ends as the window opens
		{9.5, 11, phaseRestart},
		{100, 101, phaseRestart}, // an open window extends to now
	} {
		if got := ws.phaseOf(at(tc.start), at(tc.end)); got != tc.want {
			t.Errorf("open window, request %v–%v: %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
	ws.closeAt(at(20))
	ws.open(at(40))
	ws.closeAt(at(50))
	for _, tc := range []struct {
		start, end float64
		want       phase
	}{
		{19.9, 25, phaseRestart}, // starts inside
		{20, 25, phaseSteady},
		{30, 31, phaseSteady},
		{39, 60, phaseRestart}, // spans the whole window
		{45, 46, phaseRestart},
		{50.5, 51, phaseSteady},
	} {
		if got := ws.phaseOf(at(tc.start), at(tc.end)); got != tc.want {
			t.Errorf("closed windows, request %v–%v: %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestTallyRows(t *testing.T) {
	tl := newTally()
	tl.add(phaseRestart, kindOwner, outcome{Status: 503, Code: "store_unavailable"})
	tl.add(phaseSteady, kindUnknownToken, outcome{Status: 401, Code: "invalid_token"})
	tl.add(phaseSteady, kindOwner, outcome{Status: 200})
	tl.add(phaseSteady, kindOwner, outcome{Status: 200})
	tl.add(phaseSteady, kindOwner, outcome{Status: 503, Code: "store_unavailable"})
	rows := tl.rows()
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s/%d/%s/%d/%v", r.Phase, r.Kind, r.Outcome, r.Count, r.Expected))
	}
	want := []string{
		"steady/0/200/2/true",
		"steady/0/503 store_unavailable/1/false",
		"steady/3/401 invalid_token/1/true",
		"Redis restart window/0/503 store_unavailable/1/true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := countUnexpected(rows); n != 1 {
		t.Errorf("countUnexpected = %d, want 1", n)
	}
}

func TestErrorCategory(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection refused"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection reset"},
		{fmt.Errorf("Get x: %w", os.ErrDeadlineExceeded), "timeout"},
		{errors.New(`Get "http://x": EOF`), "EOF"},
	} {
		if got := errorCategory(tc.err); got != tc.want {
			t.Errorf("errorCategory(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	id, cred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	forged := forgeCredential(id)
	if !auth.ValidCredential(forged) || !strings.HasPrefix(forged, id+":") || forged == cred {
		t.Errorf("forgeCredential(%s) = %s: want a well-formed credential for the id with another secret", id, forged)
	}
	if m := mistype(cred); auth.ValidCredential(m) || len(m) != len(cred) {
		t.Errorf("mistype(%s) = %s: want the same length and a failing checksum", cred, m)
	}
}

const metricsText = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 23
go_memstats_heap_alloc_bytes 5.791e+06
process_open_fds 19
process_resident_memory_bytes 2.1e+07
tswgate_requests_total{permission="compute.read",role="owner",status="200"} 1234
tswgate_refusals_total{reason="invalid_token"} 56
odd{a="x,y}",b="q\"z"} 7 1700000000000
`

func TestFromMetrics(t *testing.T) {
	samples := devtool.ParseMetrics(metricsText)
	var r resources
	r.fromMetrics(samples)
	if r.Goroutines != 23 || r.Heap != 5.791e6 || r.OpenFDs != 19 || r.RSS != 2.1e7 {
		t.Errorf("fromMetrics: %+v", r)
	}
	r.fromMetrics(nil)
	if r.Goroutines != -1 || r.Heap != -1 {
		t.Errorf("fromMetrics(nil) should mark everything unknown: %+v", r)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatBytes(-1), "?"},
		{formatBytes(512), "512 B"},
		{formatBytes(5.791e6), "5.52 MiB"},
		{formatBytes(3 << 30), "3.00 GiB"},
		{formatCount(23), "23"},
		{formatCount(-1), "?"},
		{formatChange(10, 13, formatCount), "+3"},
		{formatChange(13, 10, formatCount), "−3"},
		{formatChange(10, 10, formatCount), "0"},
		{formatChange(-1, 10, formatCount), "?"},
		{formatChange(1<<20, 3<<20, formatBytes), "+2.00 MiB"},
		{formatOffset(80*time.Second + 340*time.Millisecond), "1m20.3s"},
		{outcome{Status: 401, Code: "invalid_token"}.String(), "401 invalid_token"},
		{outcome{Status: 200}.String(), "200"},
		{outcome{Code: "connection refused"}.String(), "error: connection refused"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// testReport is a small report with one unexpected answer.
func testReport() *report {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tl := newTally()
	for range 90 {
		tl.add(phaseSteady, kindOwner, outcome{Status: 200})
	}
	for range 10 {
		tl.add(phaseSteady, kindAccountingDeny, outcome{Status: 403, Code: "permission_denied"})
	}
	tl.add(phaseSteady, kindOwner, outcome{Status: 503, Code: "store_unavailable"})
	tl.add(phaseRestart, kindOwner, outcome{Status: 401, Code: "invalid_token"})
	tl.add(phaseRestart, kindOwner, outcome{Status: 200})
	start := resources{Goroutines: 16, FDs: 17, OpenFDs: 18, Heap: 5 << 20, RSS: 20 << 20}
	end := resources{Goroutines: 18, FDs: 17, OpenFDs: 18, Heap: 6 << 20, RSS: 21 << 20}
	return &report{
		Command: "go run ./tools/tswsoak -quick",
		Opts:    options{Duration: time.Minute, Rate: 500, RedisRestart: 20 * time.Second, Window: 10 * time.Second, Replicas: 1},
		Facts:   devtool.Facts{NProc: 2, CPUModel: "Test CPU", GoVersion: "go1.26.8 linux/amd64", Kernel: "6.1", Redis: "redis-server 7.0.15"},
		Started: t0,
		Took:    time.Minute,
		Run:     loadStats{Sent: 103, Took: time.Minute},
		Warmup:  loadStats{Sent: 50, Took: 2 * time.Second},
		Restarts: []restartEvent{{
			N: 1, Killed: t0.Add(20 * time.Second), Up: t0.Add(20*time.Second + 25*time.Millisecond),
			Recreated: t0.Add(20*time.Second + 27*time.Millisecond), WindowEnd: t0.Add(30 * time.Second),
			LostRefused: []time.Duration{70 * time.Millisecond},
		}},
		Rows:      tl.rows(),
		Resources: []replicaResources{{Replica: 1, PID: 4242, Start: start, End: end, Peak: end}},
	}
}

func TestMarkdown(t *testing.T) {
	rep := testReport()
	if n := rep.unexpected(); n != 1 {
		t.Errorf("unexpected() = %d, want 1", n)
	}
	md := rep.markdown()
	for _, want := range []string{
		"### Soak: 1 replicas, 500 req/s for 1m0s, Redis restarted every 20s (1 times)",
		"**FAILED: 1 unexpected answers, errors or problems**",
		"| steady | 101 | 90 | 11 | 1 |",
		"| Redis restart window | 2 | 1 | 1 | 0 |",
		"| steady | Accounting, GET /v2/Instance?ProjectId=42 (denied) | 403 permission_denied | 10 | yes |",
		"| steady | Owner, GET /v2/Instance?ProjectId=42 | 503 store_unavailable | 1 | **no** |",
		"| Redis restart window | Owner, GET /v2/Instance?ProjectId=42 | 401 invalid_token | 1 | yes |",
		"| 1 | +20s | +20s (25.0 ms) | +20s (27.0 ms) | 70.0 ms | +20s – +30s |",
		"| 1 (pid 4242) | goroutines (`go_goroutines`) | 16 | 18 | +2 | 18 |",
		"| 1 (pid 4242) | heap (`go_memstats_heap_alloc_bytes`) | 5.00 MiB | 6.00 MiB | +1.00 MiB | 6.00 MiB |",
		"- Command: `go run ./tools/tswsoak -quick`",
		"- Machine: nproc 2, Test CPU, go1.26.8 linux/amd64, Linux 6.1, redis-server 7.0.15",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}
	// 200s are not listed among the non-2xx answers.
	if strings.Contains(md, "| steady | Owner, GET /v2/Instance?ProjectId=42 | 200 |") {
		t.Errorf("a 2xx row is listed:\n%s", md)
	}

	// A clean report passes; a lost token still served is a problem.
	rep.Rows = rep.Rows[:0]
	if n := rep.unexpected(); n != 0 || !strings.Contains(rep.markdown(), "**Passed:**") {
		t.Errorf("clean report: unexpected() = %d", n)
	}
	rep.Restarts[0].LostRefused = []time.Duration{-1}
	rep.Restarts[0].Problems = []string{"replica 1 still answered 200 to a token lost with Redis's data 5s after the restart"}
	md = rep.markdown()
	if rep.unexpected() != 1 || !strings.Contains(md, "**not refused**") || !strings.Contains(md, "**Problem after restart 1:**") {
		t.Errorf("lost token still served:\n%s", md)
	}
}
