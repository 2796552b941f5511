package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRateEndToEnd runs the whole measurement for 4 seconds: a real Redis,
// three real tswgate processes sharing it, 100 requests/s offered against
// a limit of 50/s. The bounds are looser than the tool's own (a short run
// on a loaded CI machine running -race); the README's figure comes from
// running the tool itself.
func TestRateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tswgate and starts redis-server and three gateways")
	}
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("redis-server is not on PATH (required when CI=true)")
	}
	o, err := parseFlags([]string{"-duration", "4s", "-rate", "50", "-burst", "50"}, io.Discard)
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

	if len(rep.Loads) != 3 || len(rep.Counters) != 3 {
		t.Fatalf("%d loads, %d counters; want 3 replicas", len(rep.Loads), len(rep.Counters))
	}
	if sent := rep.sent(); sent < 380 || sent > 400 {
		t.Errorf("%d requests sent, want about 400 (100/s for 4s)", sent)
	}
	for _, l := range rep.Loads {
		if l.Sent == 0 || l.Admitted == 0 {
			t.Errorf("replica %d: %d sent, %d admitted; want some of each", l.Replica, l.Sent, l.Admitted)
		}
	}
	if other := rep.other(); other > 0 {
		t.Errorf("%d unexpected answers: %v", other, rep.Loads[0].OtherSeen)
	}
	if ratio := rep.ratio(); ratio < 0.90 || ratio > 1.15 {
		t.Errorf("admitted/ideal = %d/%.1f = %.3f, want 0.90 to 1.15", rep.admitted(), rep.ideal(), ratio)
	}
	if ops := rep.opsPerRequest(); ops > 0.25 {
		t.Errorf("%.3f limiter calls to Redis per request (%.0f leases for %d requests), want at most 0.25",
			ops, rep.budgetCalls(), rep.sent())
	}
	if allowed := rep.sum(func(c counters) float64 { return c.Allowed }); int(allowed) != rep.admitted() {
		t.Errorf("the replicas allowed %.0f requests, the client saw %d admitted", allowed, rep.admitted())
	}
	if got := rep.scriptCalls(); float64(got) < rep.budgetCalls() {
		t.Errorf("Redis saw %d script calls, fewer than the %.0f leases the replicas counted", got, rep.budgetCalls())
	}
	for _, want := range []string{"| **admitted / ideal** |", "| 1 | ", "| 3 | ", "nproc ", "go1.", "-duration 4s"} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q", want)
		}
	}
}

func TestRateFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := options{Replicas: 3, Rate: 50, Burst: 50, Load: 2, Duration: time.Minute}
	if o != want {
		t.Errorf("defaults = %+v, want %+v", o, want)
	}
	if got := o.commandLine(); got != "go run ./tools/tswrate -replicas 3 -rate 50 -burst 50 -load 2 -duration 1m0s" {
		t.Errorf("commandLine = %q", got)
	}
	o, err = parseFlags([]string{"-rate", "12.5", "-lease", "200ms", "-tswgate", "bin/tswgate", "-out", "x.md"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.commandLine(); got != "go run ./tools/tswrate -replicas 3 -rate 12.5 -burst 50 -load 2 -duration 1m0s -lease 200ms -tswgate bin/tswgate" {
		t.Errorf("commandLine = %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-replicas", "0"}, "-replicas 0: want 1 to 16"},
		{[]string{"-replicas", "17"}, "-replicas 17"},
		{[]string{"-rate", "0"}, "-rate 0: want 0.1 to 5000"},
		{[]string{"-rate", "NaN"}, "-rate NaN"},
		{[]string{"-burst", "0"}, "-burst 0"},
		{[]string{"-load", "1"}, "-load 1: want more than 1"},
		{[]string{"-load", "101"}, "-load 101"},
		{[]string{"-rate", "3000"}, "6000 requests per second offered"},
		{[]string{"-duration", "500ms"}, "-duration 500ms"},
		{[]string{"-lease", "500us"}, "-lease 500µs"},
		{[]string{"-lease", "11s"}, "-lease 11s"},
		{[]string{"-load", "1.1", "-duration", "5s"}, "fewer than -burst 50"},
		{[]string{"extra"}, "unexpected arguments: extra"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	var stderr strings.Builder
	if code := runMain([]string{"-rate", "-1"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "tswrate: -rate -1") {
		t.Errorf("runMain(-rate -1) = %d, stderr %q; want 2", code, stderr.String())
	}
}

func TestRateIdealAndLease(t *testing.T) {
	if got := ideal(50, 50, time.Minute); got != 3050 {
		t.Errorf("ideal(50/s, 50, 1m) = %v, want 3050", got)
	}
	if got := ideal(12.5, 10, 1500*time.Millisecond); got != 28.75 {
		t.Errorf("ideal(12.5/s, 10, 1.5s) = %v, want 28.75", got)
	}
	for _, tc := range []struct {
		rate  float64
		burst int
		lease time.Duration
		want  int
	}{
		{50, 50, 0, 5}, // the gateways' default lease, 100ms
		{50, 50, 200 * time.Millisecond, 10},
		{50, 3, 0, 3},    // at most the burst
		{1, 50, 0, 1},    // at least one
		{12.5, 50, 0, 2}, // rounded up
		{1e6, 1e6, time.Second, 1000},
	} {
		if got := leaseSize(tc.rate, tc.burst, tc.lease); got != tc.want {
			t.Errorf("leaseSize(%v, %d, %v) = %d, want %d", tc.rate, tc.burst, tc.lease, got, tc.want)
		}
	}
}

func TestRateCommandStats(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\n" +
		"cmdstat_evalsha:calls=10,usec=100,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n" +
		"cmdstat_info:calls=3,usec=30,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=5,usec=5,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n")
	after := parseCommandStats("# Commandstats\r\n" +
		"cmdstat_evalsha:calls=25,usec=100,usec_per_call=4.00,rejected_calls=2,failed_calls=1\r\n" +
		"cmdstat_eval:calls=1,usec=50,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=4,usec=40,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=5,usec=5,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=2,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"not a stat\r\n")
	if before["evalsha"] != 10 || after["evalsha"] != 27 || after["client|setinfo"] != 2 {
		t.Errorf("parseCommandStats: before %v, after %v", before, after)
	}
	d := commandDelta(before, after)
	want := map[string]int64{"evalsha": 17, "eval": 1, "client|setinfo": 2}
	if len(d) != len(want) {
		t.Errorf("commandDelta = %v, want %v (INFO and unchanged commands left out)", d, want)
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("commandDelta[%s] = %d, want %d", k, d[k], v)
		}
	}
}

func TestRateSplitRedis(t *testing.T) {
	// The commands of a real 60-second run, with the usage recorder's
	// scripts (EVAL; HINCRBY, HGET, HSET, EXISTS, PEXPIRE inside them).
	sp := splitRedis(map[string]int64{"evalsha": 3629, "eval": 37, "time": 3629, "pexpire": 3647, "hmget": 3455, "hset": 3468,
		"zadd": 180, "zcard": 180, "zremrangebyscore": 180, "pubsub|numsub": 179, "hincrby": 45, "hget": 36, "exists": 18,
		"hgetall": 15, "ping": 11})
	if sp.Leases != 3449 || sp.Heartbeats != 180 || sp.OtherScripts != 37 {
		t.Errorf("leases %d, heartbeats %d, other scripts %d; want 3449, 180, 37", sp.Leases, sp.Heartbeats, sp.OtherScripts)
	}
	if got, want := byCalls(sp.Other), "PUBSUB|NUMSUB 179, HINCRBY 45, HGET 36, HSET 19, EXISTS 18, PEXPIRE 18, HGETALL 15, PING 11, HMGET 6"; got != want {
		t.Errorf("other %s, want %s", got, want)
	}
	if got, want := byCalls(sp.Inside), "PEXPIRE 3629, TIME 3629, HMGET 3449, HSET 3449, ZADD 180, ZCARD 180, ZREMRANGEBYSCORE 180"; got != want {
		t.Errorf("inside %s, want %s", got, want)
	}
	sp = splitRedis(map[string]int64{"ping": 2})
	if sp.Leases != 0 || sp.Heartbeats != 0 || sp.OtherScripts != 0 || len(sp.Inside) != 0 || byCalls(sp.Other) != "PING 2" {
		t.Errorf("without scripts: %+v", sp)
	}
}

func TestRateParseCounters(t *testing.T) {
	text := `# TYPE tswgate_ratelimit_budget_calls_total counter
tswgate_ratelimit_budget_calls_total{result="error"} 2
tswgate_ratelimit_budget_calls_total{result="ok"} 120
tswgate_ratelimit_decisions_total{decision="allowed"} 500
tswgate_ratelimit_decisions_total{decision="fallback_allowed"} 3
tswgate_ratelimit_decisions_total{decision="fallback_limited"} 1
tswgate_ratelimit_decisions_total{decision="limited"} 480
tswgate_ratelimit_decisions_total{decision="shadow"} 0
tswgate_ratelimit_decisions_total{decision="unavailable"} 1
`
	c := parseCounters(text)
	if c != (counters{BudgetOK: 120, BudgetError: 2, Allowed: 500, Limited: 480, Fallback: 5}) {
		t.Errorf("parseCounters = %+v", c)
	}
	d := c.minus(counters{BudgetOK: 20, Allowed: 100, Limited: 80, Fallback: 1})
	if d != (counters{BudgetOK: 100, BudgetError: 2, Allowed: 400, Limited: 400, Fallback: 4}) {
		t.Errorf("minus = %+v", d)
	}
	if c := parseCounters("go_goroutines 7\n"); !strings.HasPrefix(c.Err, `no tswgate_ratelimit_budget_calls_total{result="ok"}`) {
		t.Errorf("without the series: Err %q", c.Err)
	}
}

func TestRateRecord(t *testing.T) {
	l := &replicaLoad{Replica: 2}
	t0 := time.Unix(1000, 0)
	l.record(t0, t0.Add(time.Millisecond), 2*time.Millisecond, 200, "", nil)
	l.record(t0.Add(time.Second), t0.Add(time.Second), time.Millisecond, 429, "rate_limited", nil)
	l.record(t0.Add(2*time.Second), t0.Add(2*time.Second+5*time.Millisecond), 0, 0, "", errors.New("connection refused"))
	l.record(t0.Add(3*time.Second), t0.Add(3*time.Second), time.Millisecond, 429, "auth_rate_limited", nil)
	l.record(t0.Add(4*time.Second), t0.Add(4*time.Second), time.Millisecond, 429, "auth_rate_limited", nil)
	if l.Sent != 5 || l.Admitted != 1 || l.Limited != 1 || l.Other != 3 {
		t.Errorf("counts %+v", l)
	}
	if len(l.OtherSeen) != 2 || l.OtherSeen[0] != "connection refused" || l.OtherSeen[1] != "429 auth_rate_limited" {
		t.Errorf("OtherSeen = %q", l.OtherSeen)
	}
	if !l.First.Equal(t0.Add(time.Millisecond)) || !l.Last.Equal(t0.Add(4*time.Second)) || l.MaxLate != 5*time.Millisecond {
		t.Errorf("First %v, Last %v, MaxLate %v", l.First, l.Last, l.MaxLate)
	}
}

// TestRateDrive paces requests at a test server: every request goes out,
// none before it is due, and each answer is counted where it belongs.
// Only lower bounds on times are checked (a request is never sent early);
// how late a loaded machine sends them is not the test's business.
func TestRateDrive(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer cred" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n.Add(1)%2 == 0 {
			w.Header().Set("X-Tsw-Error-Code", "rate_limited")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	const every, d, perURL = 20 * time.Millisecond, 400 * time.Millisecond, 20
	urls := []string{srv.URL + "/a", srv.URL + "/b"}
	before := time.Now()
	loads := drive(context.Background(), urls, "cred", every, d)
	if len(loads) != len(urls) {
		t.Fatalf("%d loads, want %d", len(loads), len(urls))
	}
	total := 0
	for i, l := range loads {
		if l.Sent != perURL || l.Other != 0 || l.Admitted+l.Limited != perURL {
			t.Errorf("replica %d: %+v; want %d sent, all 200 or 429", l.Replica, l, perURL)
		}
		total += l.Admitted
		// The schedule starts 100ms after the call, staggered by
		// every/len(urls) per url; its last request is due perURL-1
		// periods after its first.
		firstDue := 100*time.Millisecond + every*time.Duration(i)/time.Duration(len(urls))
		lastDue := firstDue + (perURL-1)*every
		if got := l.First.Sub(before); got < firstDue {
			t.Errorf("replica %d: first request sent %v after the call, before it was due (%v)", l.Replica, got, firstDue)
		}
		if got := l.Last.Sub(before); got < lastDue {
			t.Errorf("replica %d: last request sent %v after the call, before it was due (%v): not paced", l.Replica, got, lastDue)
		}
		if l.MaxLate < 0 {
			t.Errorf("replica %d: MaxLate %v: a request went out early", l.Replica, l.MaxLate)
		}
	}
	if total != perURL*len(urls)/2 {
		t.Errorf("%d admitted, want %d (every other answer)", total, perURL*len(urls)/2)
	}
	rep := &report{Loads: loads}
	first, last := loads[0].First, loads[0].Last
	for _, l := range loads[1:] {
		first, last = minTime(first, l.First), maxTime(last, l.Last)
	}
	if e := rep.elapsed(); e != last.Sub(first) {
		t.Errorf("elapsed %v, want %v: from the earliest first request to the latest last one", e, last.Sub(first))
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestRateReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	load := func(n, sent, admitted, other int) *replicaLoad {
		return &replicaLoad{Replica: n, Sent: sent, Admitted: admitted, Limited: sent - admitted - other, Other: other,
			AdmittedLatency: []time.Duration{time.Millisecond, 3 * time.Millisecond},
			First:           t0, Last: t0.Add(60 * time.Second)}
	}
	rep := &report{
		Command:  "go run ./tools/tswrate -replicas 2",
		Opts:     options{Replicas: 2, Rate: 50, Burst: 50, Load: 2, Duration: time.Minute},
		Loads:    []*replicaLoad{load(1, 3000, 1520, 0), load(2, 3000, 1510, 0)},
		Counters: []counters{{BudgetOK: 310, Allowed: 1520, Limited: 1480}, {BudgetOK: 300, BudgetError: 1, Allowed: 1510, Limited: 1490}},
		Redis: map[string]int64{"evalsha": 731, "eval": 1, "time": 731, "zcard": 120, "zadd": 120, "zremrangebyscore": 120,
			"pexpire": 731, "hmget": 614, "hset": 611, "pubsub|numsub": 120, "hgetall": 13},
		RedisWindow: 61 * time.Second,
	}
	if got := rep.ideal(); got != 3050 {
		t.Errorf("ideal = %v, want 3050", got)
	}
	if why := rep.failures(); len(why) != 0 {
		t.Errorf("failures = %q, want none", why)
	}
	if ops := rep.opsPerRequest(); math.Abs(ops-611.0/6000) > 1e-9 {
		t.Errorf("opsPerRequest = %v", ops)
	}
	md := rep.markdown()
	for _, want := range []string{
		"| admitted (200) | 3030 |",
		"| ideal (50/s × 60.00 s + 50) | 3050.0 |",
		"| **admitted / ideal** | **99.3%** (goal 95.0%–110.0%: met) |",
		"| limiter calls to Redis (leases) | 611 (1 failed) |",
		"| **limiter calls to Redis per request** | **0.102** (goal ≤ 0.2: met) |",
		"| Redis script calls per request (leases, heartbeats, others) | 0.122 (732 calls) |",
		"| 2 | 3000 | 1510 | 1490 | 0 | 301 | 1.00 ms / 3.00 ms | – | 0 |",
		"732 script calls (EVALSHA 731, EVAL 1): the limiter's leases 611 (the replicas counted 611 in `tswgate_ratelimit_budget_calls_total`), " +
			"heartbeats 120 (one a second per replica), others 1 (other scripts, such as the usage recorder's, and EVALSHA answered NOSCRIPT); " +
			"other commands, sent on their own or run inside those other scripts: PUBSUB|NUMSUB 120, HGETALL 13, HMGET 3; " +
			"run inside the limiter's scripts: PEXPIRE 731, TIME 731, HMGET 611, HSET 611, ZADD 120, ZCARD 120, ZREMRANGEBYSCORE 120.",
		"3030 allowed, 2970 limited, 0 decided without the shared budget.",
		"leases from 5 requests at a time",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "FAILED") {
		t.Errorf("a passing run's Markdown says FAILED:\n%s", md)
	}

	rep.Loads[0].Admitted, rep.Loads[0].Other = 1900, 10 // too many admitted, and errors
	rep.Counters[0].BudgetOK = 2099
	rep.Counters[1].Err = "connection refused"
	why := strings.Join(rep.failures(), "; ")
	for _, want := range []string{"admitted/ideal 111.8% is outside 95.0%–110.0%", "0.400 limiter calls to Redis per request, more than 0.2",
		"10 of 6000 requests answered otherwise", "replica 2's metrics: connection refused"} {
		if !strings.Contains(why, want) {
			t.Errorf("failures %q lack %q", why, want)
		}
	}
	if md := rep.markdown(); !strings.Contains(md, "> **FAILED:** admitted/ideal 111.8%") {
		t.Errorf("a failed run's Markdown does not say so:\n%s", md)
	}
	if why := (&report{Loads: []*replicaLoad{{Replica: 1}}}).failures(); len(why) != 1 || why[0] != "no request was sent" {
		t.Errorf("failures of an empty run = %q", why)
	}
}
