package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// The tests cover tswbench's pure helpers only; none starts a server or
// sends load.

func TestSummarize(t *testing.T) {
	s := summarize("x", []loadResult{
		{Requests: 100, RPS: 100, P50: 3 * time.Millisecond, P99: 9 * time.Millisecond},
		{Requests: 300, RPS: 300, P50: 1 * time.Millisecond, P99: 7 * time.Millisecond, Non2xx: 2, FirstError: "status 502 Bad Gateway"},
		{Requests: 200, RPS: 200, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond, Errors: 1},
	})
	if s.RPS != 200 || s.P50 != 2*time.Millisecond || s.P99 != 8*time.Millisecond {
		t.Errorf("medians = %v req/s, p50 %v, p99 %v; want 200, 2ms, 8ms", s.RPS, s.P50, s.P99)
	}
	if s.Non2xx != 2 || s.Errors != 1 || s.FirstError != "status 502 Bad Gateway" {
		t.Errorf("errors = %d non-2xx, %d errors, first %q", s.Non2xx, s.Errors, s.FirstError)
	}

	// A round without a single response is a failure too.
	rep := &report{Rounds: 2, Direct: summarize("d", []loadResult{{Requests: 5, RPS: 5}, {}})}
	if rep.Direct.Empty != 1 || rep.Direct.FirstError != "round 2 got no response at all" || !rep.hasErrors() {
		t.Errorf("empty round: %+v, hasErrors %v", rep.Direct, rep.hasErrors())
	}
}

// wrkOK is the output of wrk 4.1.0 (Debian) with --latency.
const wrkOK = `Running 10s test @ http://127.0.0.1:44919/v2/Instance?ProjectId=42
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   852.02us  216.52us  12.29ms   82.89%
    Req/Sec    76.39k     4.31k   84.91k    66.67%
  Latency Distribution
     50%  791.00us
     75%    0.86ms
     90%    1.02ms
     99%    1.75ms
  760123 requests in 10.01s, 297.07MB read
Requests/sec:  75936.36
Transfer/sec:     29.68MB
`

// wrkErrors is wrk's output for a run with failures, in wrk's format.
const wrkErrors = `Running 2s test @ http://127.0.0.1:8080/v2/Instance?ProjectId=42
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s   300.00ms   2.00s    70.00%
    Req/Sec    40.00     10.00    60.00     70.00%
  Latency Distribution
     50%    1.10s
     75%    1.40s
     90%    1.80s
     99%    2.00s
  80 requests in 2.00m, 30.00KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:      0.67
Transfer/sec:     256.00B
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(wrkOK)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 760123, Seconds: 10.01, RPS: 75936.36, P50: 791 * time.Microsecond, P99: 1750 * time.Microsecond}
	if !closeResults(got, want) {
		t.Errorf("parseWrk(ok) = %+v\nwant %+v", got, want)
	}

	got, err = parseWrk(wrkErrors)
	if err != nil {
		t.Fatal(err)
	}
	want = loadResult{Requests: 80, Seconds: 120, RPS: 0.67, P50: 1100 * time.Millisecond, P99: 2 * time.Second,
		Non2xx: 5, Errors: 10, FirstError: "Socket errors: connect 1, read 2, write 3, timeout 4"}
	if !closeResults(got, want) {
		t.Errorf("parseWrk(errors) = %+v\nwant %+v", got, want)
	}
}

// closeResults compares loadResults, durations to within a nanosecond
// per unit of float rounding.
func closeResults(a, b loadResult) bool {
	near := func(x, y time.Duration) bool { return x-y < 2 && y-x < 2 }
	return a.Requests == b.Requests && a.Seconds-b.Seconds < 1e-9 && b.Seconds-a.Seconds < 1e-9 &&
		a.RPS == b.RPS && near(a.P50, b.P50) && near(a.P99, b.P99) &&
		a.Non2xx == b.Non2xx && a.Errors == b.Errors && a.FirstError == b.FirstError
}

func TestParseWrkIncomplete(t *testing.T) {
	for name, out := range map[string]string{
		"no --latency": strings.Replace(wrkOK, "     50%  791.00us\n", "", 1),
		"empty":        "",
		"refused":      "unable to connect to 127.0.0.1:1 Connection refused\n",
	} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk succeeded, want an error", name)
		}
	}
	if _, err := parseWrk(strings.Replace(wrkOK, "791.00us", "791.00xs", 1)); err == nil || !strings.Contains(err.Error(), "unknown time unit") {
		t.Errorf("unknown unit: err = %v", err)
	}
}

func TestWrkArgs(t *testing.T) {
	got := shellJoin(wrkArgs("wrk", 64, 10*time.Second, "Authorization: Bearer <token>", "http://127.0.0.1:1/v2/Instance?ProjectId=42"))
	want := `wrk -t1 -c64 -d10s --latency -H 'Authorization: Bearer <token>' 'http://127.0.0.1:1/v2/Instance?ProjectId=42'`
	if got != want {
		t.Errorf("wrk command\n got %s\nwant %s", got, want)
	}
	if got := shellJoin([]string{"it's"}); got != `'it'\''s'` {
		t.Errorf("shellJoin quote = %s", got)
	}
}

func TestHistogram(t *testing.T) {
	// Bucket bounds tile the line and hold what they are given.
	prevHi := int64(0)
	for i := 0; i < histNBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d = [%d, %d), previous ended at %d", i, lo, hi, prevHi)
		}
		prevHi = hi
		if i < histNBuckets-1 && (bucketOf(lo) != i || bucketOf(hi-1) != i) {
			t.Fatalf("bucket %d = [%d, %d) but bucketOf(lo)=%d, bucketOf(hi-1)=%d", i, lo, hi, bucketOf(lo), bucketOf(hi-1))
		}
	}
	if bucketOf(-5) != 0 || bucketOf(1<<62) != histNBuckets-1 {
		t.Errorf("out-of-range values are not clamped")
	}

	var h histogram
	if h.quantile(0.5) != 0 {
		t.Errorf("empty quantile = %v, want 0", h.quantile(0.5))
	}
	for i := 1; i <= 1000; i++ { // 1µs .. 1000µs
		h.record(time.Duration(i) * time.Microsecond)
	}
	var h2 histogram
	h2.merge(&h)
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h2.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff > 0.016 || diff < -0.016 {
			t.Errorf("quantile(%v) = %v, want %v ± 1.6%%", tc.q, got, tc.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	rep := &report{
		Command:   "go run ./tools/tswbench -d 10s -rounds 3 -c 64 -gen auto",
		Generator: "wrk debian/4.1.0-3+b2 [epoll]",
		LoadCmd:   "taskset -c 1 wrk -t1 -c64 -d10s --latency -H 'Authorization: Bearer <token>' 'http://127.0.0.1:1/v2/Instance?ProjectId=42'",
		Conns:     64,
		Duration:  10 * time.Second,
		Rounds:    3,
		Pinned:    true,
		Facts:     facts{Facts: devtool.Facts{NProc: 2, CPUModel: "AMD EPYC", GoVersion: "go1.26.8 linux/amd64", Kernel: "6.1.0"}, Busy: 0.02},
		BodyBytes: 309,
		Direct:    summary{Name: "direct upstream", RPS: 80000, P50: 750 * time.Microsecond, P99: 1500 * time.Microsecond},
		Bare:      summary{Name: "bare httputil.ReverseProxy", RPS: 20000, P50: 3 * time.Millisecond, P99: 6 * time.Millisecond},
		Gate:      summary{Name: "tswgate (cached Owner token)", RPS: 16000, P50: 3900 * time.Microsecond, P99: 7200 * time.Microsecond},
	}
	for _, s := range rep.targets() {
		for i := 0; i < 3; i++ {
			s.Rounds = append(s.Rounds, loadResult{Requests: 1, RPS: s.RPS, P50: s.P50, P99: s.P99})
		}
	}
	md := rep.markdown()
	for _, want := range []string{
		"| target | req/s | p50 | p99 | CPU µs/req | non-2xx | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
		"| direct upstream | 80,000 | 750 µs | 1.50 ms | – | 0 | 0 |\n",
		"| bare httputil.ReverseProxy | 20,000 | 3.00 ms | 6.00 ms | – | 0 | 0 |\n",
		"| tswgate (cached Owner token) | 16,000 | 3.90 ms | 7.20 ms | – | 0 | 0 |\n",
		"| tswgate / bare | 0.80× | 1.30× | 1.20× |\n",
		"| bare / direct | 0.25× | 4.00× | 4.00× |\n",
		"Medians of 3 interleaved rounds of 10s per target",
		"- Command: `go run ./tools/tswbench -d 10s -rounds 3 -c 64 -gen auto`\n",
		"- Load generator: wrk debian/4.1.0-3+b2 [epoll] — `taskset -c 1 wrk ",
		"- Machine: nproc 2, AMD EPYC, go1.26.8 linux/amd64, Linux 6.1.0, CPUs 2% busy",
		"| 3 | tswgate (cached Owner token) | 16,000 | 3.90 ms | 7.20 ms | 0 | 0 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q; got:\n%s", want, md)
		}
	}
	for _, bad := range []string{"WARNING", "**Note:**", "first failure"} {
		if strings.Contains(md, bad) {
			t.Errorf("clean run's markdown contains %q:\n%s", bad, md)
		}
	}

	rep.Gate.Non2xx, rep.Gate.FirstError = 12, "status 429 Too Many Requests"
	rep.Facts.Busy = 0.6
	md = rep.markdown()
	for _, want := range []string{
		"**WARNING: errors during the run**",
		"| tswgate (cached Owner token) | 16,000 | 3.90 ms | 7.20 ms | – | 12 | 0 |\n",
		"tswgate (cached Owner token): first failure: `status 429 Too Many Requests`",
		"**Note:** the machine was not idle",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("failed run's markdown lacks %q; got:\n%s", want, md)
		}
	}
	if !rep.hasErrors() {
		t.Error("hasErrors() = false with non-2xx responses")
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatRPS(0), "0"},
		{formatRPS(999.6), "1,000"},
		{formatRPS(1234567), "1,234,567"},
		{formatLatency(0), "–"},
		{formatLatency(42 * time.Microsecond), "42.0 µs"},
		{formatLatency(999 * time.Microsecond), "999 µs"},
		{formatLatency(1234 * time.Microsecond), "1.23 ms"},
		{formatLatency(56780 * time.Microsecond), "56.8 ms"},
		{formatLatency(1500 * time.Millisecond), "1.50 s"},
		{formatRatio(1, 0), "–"},
		{formatRatio(3, 4), "0.75×"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestUpstreamBody(t *testing.T) {
	var v struct {
		Success *bool   `json:"success"`
		Message *string `json:"message"`
		Result  []any   `json:"result"`
	}
	if err := json.Unmarshal([]byte(upstreamBody), &v); err != nil {
		t.Fatalf("upstreamBody is not JSON: %v", err)
	}
	if v.Success == nil || !*v.Success || v.Message == nil || *v.Message != "" || len(v.Result) != 1 {
		t.Errorf("upstreamBody is not a success envelope with one result: %s", upstreamBody)
	}
	if n := len(upstreamBody); n < 250 || n > 350 {
		t.Errorf("upstreamBody is %d bytes, want about 300", n)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick"}, io.Discard)
	if err != nil || o.Duration != 2*time.Second || o.Rounds != 1 || o.Conns != 64 || o.Gen != "auto" {
		t.Errorf("-quick = %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-quick", "-d", "5s"}, io.Discard)
	if err != nil || o.Duration != 5*time.Second || o.Rounds != 1 {
		t.Errorf("-quick -d 5s = %+v, %v", o, err)
	}
	o, err = parseFlags(nil, io.Discard)
	if err != nil || o.Duration != 10*time.Second || o.Rounds != 3 || o.Conns != 64 {
		t.Errorf("defaults = %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-ref", "-gogc", "400"}, io.Discard)
	if err != nil || o.Duration != 5*time.Second || !o.Ref || o.GOGC != "400" || !strings.HasSuffix(o.commandLine(), " -ref -gogc 400") {
		t.Errorf("-ref -gogc 400 = %+v, %v", o, err)
	}
	for _, args := range [][]string{{"-d", "1500ms"}, {"-rounds", "0"}, {"-c", "0"}, {"-gen", "ab"}, {"extra"}, {"-gogc", "lots"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestCheckLoopbackAddr(t *testing.T) {
	if checkLoopbackAddr("127.0.0.1:80") != nil || checkLoopbackAddr("[::1]:80") != nil || checkLoopbackAddr("10.0.0.1:80") == nil {
		t.Error("checkLoopbackAddr accepts a non-loopback address or refuses a loopback one")
	}
}

func TestParseCPUTime(t *testing.T) {
	// A command name with a space and a parenthesis, as the kernel allows.
	stat := "4242 (tsw gate) x) S 1 4242 4242 0 -1 4194560 1869 0 0 0 250 130 0 0 20 0 9 0 1234 0 0"
	got, err := parseCPUTime(stat)
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseCPUTime = %v, %v; want 3.8s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 ten 11"} {
		if _, err := parseCPUTime(bad); err == nil {
			t.Errorf("parseCPUTime(%q) succeeded", bad)
		}
	}
}

func TestRefConfigs(t *testing.T) {
	creds := refCredentials("tsw_a:tswsk_b")
	if len(creds) != refTokens || creds[0] != "Bearer tsw_a:tswsk_b" || creds[1] == creds[2] {
		t.Fatalf("refCredentials: %d entries, first %q", len(creds), creds[0])
	}
	ng := nginxConfig("127.0.0.1:1", "127.0.0.1:2", "/tmp/x", creds)
	for _, want := range []string{"master_process off;", `"Bearer tsw_a:tswsk_b" 1;`, "keepalive 64;", "listen 127.0.0.1:1;",
		"if ($tsw_ok = 0) { return 401; }", "proxy_set_header Connection \"\";", "server 127.0.0.1:2;"} {
		if !strings.Contains(ng, want) {
			t.Errorf("nginx config lacks %q:\n%s", want, ng)
		}
	}
	hp := haproxyConfig("127.0.0.1:1", "127.0.0.1:2", "/tmp/x/tokens.acl")
	for _, want := range []string{"bind 127.0.0.1:1", "-f /tmp/x/tokens.acl", "deny_status 401 unless tsw_ok", "track-sc0", "server up 127.0.0.1:2"} {
		if !strings.Contains(hp, want) {
			t.Errorf("haproxy config lacks %q:\n%s", want, hp)
		}
	}
}

func TestRefMarkdown(t *testing.T) {
	rep := &report{
		Rounds: 1,
		Direct: summary{Name: "direct", RPS: 40000, CPU: 20},
		Bare:   summary{Name: "bare", RPS: 7000, CPU: 90},
		Gate:   summary{Name: "tswgate", RPS: 7000, CPU: 100},
		Refs:   []summary{{Name: "nginx", RPS: 14000, CPU: 40}, {Name: "haproxy", RPS: 14000, CPU: 40}},
		Flood: []summary{{Name: "tswgate", RPS: 20000, CPU: 50, Refusals: true},
			{Name: "nginx", RPS: 40000, CPU: 25, Refusals: true}},
		Half: []summary{{Name: "tswgate", RPS: 3500, P99: 900 * time.Microsecond, BaseP99: 400 * time.Microsecond}},
	}
	md := rep.markdown()
	for _, want := range []string{
		"| × nginx | req/s | CPU µs/req |\n",
		"| tswgate | 0.50× | 2.50× |\n",
		"| haproxy | 1.00× | 1.00× |\n",
		"| tswgate | 20,000 | 50.0 | 0.50× | 2.00× | 0 | 0 |\n",
		"| tswgate | 3,500 | – | 900 µs | 400 µs | 500 µs |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q; got:\n%s", want, md)
		}
	}
	if rep.hasErrors() {
		t.Error("hasErrors() with a clean flood")
	}
	rep.Flood[0].Accepted = 1
	if !rep.hasErrors() {
		t.Error("hasErrors() = false with an accepted invalid token")
	}
}

// The Go floor answers each request head of a pipelined stream with the
// canned refusal, however the heads are split across reads.
func TestServeFloor(t *testing.T) {
	client, server := net.Pipe()
	go serveFloor(server)
	defer client.Close()
	head := "GET /v2/Instance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n"
	go func() {
		_, _ = client.Write([]byte(head + head[:10]))
		_, _ = client.Write([]byte(head[10:]))
	}()
	br := bufio.NewReader(client)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || string(body) != floorBody {
			t.Fatalf("answer %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
}

// The relaying Go floor carries keep-alive requests to the upstream and
// its answers back, unchanged.
func TestRelayFloor(t *testing.T) {
	up := httptest.NewServer(upstreamHandler())
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relayFloor(c, up.Listener.Addr().String())
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://" + ln.Addr().String() + benchPath)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"success":true`) {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
}
