// Command tswrate measures how closely tswgate replicas sharing one Redis
// hold a token to its own rate limit, and what that costs Redis: the
// cluster accuracy figure of the README.
//
// It builds tswgate, starts a throwaway redis-server (a free loopback port,
// never 6379; no persistence; a temporary directory), an in-process
// stand-in of the TeraSwitch API, and -replicas `tswgate serve` processes
// sharing that Redis (cluster rate-limit scope, the default; access log
// off). It creates one Owner token through replica 1's admin API and gives
// it its own limit, -rate requests per second with a burst of -burst
// (PATCH /v1/tokens/{id}). Each replica is then called once with the token
// and another project's id, which it refuses (403 project_mismatch) after
// reading the token but before the rate limiter: the token is cached
// everywhere and its bucket is still full.
//
// Then it offers -load × -rate requests per second for -duration, open
// loop: the offered rate is split evenly over the replicas, each paced on
// a fixed schedule (staggered between replicas) and sent by a pool of
// workers, so that a slow answer does not delay the next request. Every
// request is GET /v2/Instance?ProjectId=42 with the token. The ideal is
// what one token bucket would admit from the first request sent to the
// last: rate × elapsed + burst. Redis's INFO commandstats before and after
// the load, and each replica's tswgate_ratelimit_budget_calls_total, say
// how many calls the limiter made to Redis (leases) and how many the
// replicas made besides (heartbeats, usage recording, token reads).
//
// Usage, from the repository root:
//
//	go run ./tools/tswrate [-replicas 3] [-rate 50] [-burst 50] [-load 2] [-duration 60s] [-lease 0] [-out FILE] [-tswgate BIN]
//
// The Markdown report (admitted against the ideal, refusals, Redis calls
// per request, per replica, with the command and machine facts) goes to
// stdout and to -out; progress goes to stderr. The exit status is 1 when
// admitted/ideal is outside 95–110%, the limiter made more than one Redis
// call per five requests, more than 0.1% of the requests got an answer
// other than 200 or 429 rate_limited (project_rate_limited with -project,
// which measures a project-wide limit set by the project's policy instead
// of the token's own), or a replica's rate-limit counters
// could not be read; 2 for a usage mistake. Every child process is
// stopped before tswrate exits, and all traffic stays on 127.0.0.1.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are tswrate's flags.
type options struct {
	Replicas int           // tswgate processes
	Rate     float64       // the token's limit, requests per second
	Burst    int           // the token's burst
	Load     float64       // offered load, as a multiple of Rate
	Duration time.Duration // how long the load lasts
	Lease    time.Duration // TSWGATE_RATELIMIT_LEASE; 0 leaves the gateways' default
	Out      string        // also write the Markdown here
	Gateway  string        // prebuilt tswgate binary; empty means build ./cmd/tswgate
	Project  bool          // the limit is the project's (its policy), not the token's own
}

// maxOffered bounds the offered load (requests per second, all replicas):
// beyond it the tool, not the gateways, would be what is measured.
const maxOffered = 5000

// parseFlags parses tswrate's command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := devtool.NewFlagSet("tswrate",
		"Offers tswgate replicas sharing one Redis (loopback, a throwaway redis-server) a multiple of a token's\n"+
			"rate limit, and prints admitted/ideal and Redis calls per request as Markdown.",
		stderr)
	fs.IntVar(&o.Replicas, "replicas", 3, "tswgate `replicas` sharing the Redis")
	fs.Float64Var(&o.Rate, "rate", 50, "the token's own limit, in `requests/s`")
	fs.IntVar(&o.Burst, "burst", 50, "the token's own `burst`")
	fs.Float64Var(&o.Load, "load", 2, "offered load, as a `multiple` of -rate (split evenly over the replicas)")
	fs.DurationVar(&o.Duration, "duration", time.Minute, "how long the load lasts")
	fs.DurationVar(&o.Lease, "lease", 0, "TSWGATE_RATELIMIT_LEASE of the replicas (0: their default, 100ms)")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown report to `file`")
	fs.BoolVar(&o.Project, "project", false, "make -rate and -burst the project's shared limit (its policy) instead of the token's own")
	devtool.GatewayFlag(fs, &o.Gateway)
	if _, err := devtool.ParseFlags(fs, args); err != nil {
		return o, err
	}
	return o, o.validate()
}

// validate checks the ranges of the options.
func (o options) validate() error {
	switch {
	case o.Replicas < 1 || o.Replicas > 16:
		return fmt.Errorf("-replicas %d: want 1 to 16", o.Replicas)
	case !(o.Rate >= 0.1 && o.Rate <= maxOffered):
		return fmt.Errorf("-rate %g: want 0.1 to %d requests per second", o.Rate, maxOffered)
	case o.Burst < 1 || o.Burst > 1_000_000:
		return fmt.Errorf("-burst %d: want 1 to 1000000", o.Burst)
	case !(o.Load > 1 && o.Load <= 100):
		return fmt.Errorf("-load %g: want more than 1 (the limit must be exceeded) and at most 100", o.Load)
	case o.Load*o.Rate > maxOffered:
		return fmt.Errorf("-load %g × -rate %g = %g requests per second offered: want at most %d", o.Load, o.Rate, o.Load*o.Rate, maxOffered)
	case o.Duration < time.Second || o.Duration > time.Hour:
		return fmt.Errorf("-duration %v: want 1s to 1h", o.Duration)
	case o.Lease != 0 && (o.Lease < time.Millisecond || o.Lease > 10*time.Second):
		return fmt.Errorf("-lease %v: want 0 (the gateways' default) or 1ms to 10s", o.Lease)
	}
	// The load must outrun the bucket: the offered requests beyond the
	// rate must exceed the burst, or admitted/ideal measures the load.
	if excess := (o.Load - 1) * o.Rate * o.Duration.Seconds(); excess < float64(o.Burst) {
		return fmt.Errorf("-load %g for -duration %v offers only %.0f requests beyond -rate, fewer than -burst %d: "+
			"the limit would not be reached; raise -duration or -load", o.Load, o.Duration, excess, o.Burst)
	}
	return nil
}

// commandLine renders the options that shape the run as a go run command
// line (-out is left out: it does not change the result).
func (o options) commandLine() string {
	s := fmt.Sprintf("go run ./tools/tswrate -replicas %d -rate %s -burst %d -load %s -duration %v",
		o.Replicas, strconv.FormatFloat(o.Rate, 'g', -1, 64), o.Burst, strconv.FormatFloat(o.Load, 'g', -1, 64), o.Duration)
	if o.Lease > 0 {
		s += fmt.Sprintf(" -lease %v", o.Lease)
	}
	if o.Project {
		s += " -project"
	}
	if o.Gateway != "" {
		s += " -tswgate " + o.Gateway
	}
	return s
}

// runMain is tswrate without the process: it returns the exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	return devtool.Tool[options]{
		Name:  "tswrate",
		Parse: parseFlags,
		Out:   func(o options) string { return o.Out },
		Run: func(ctx context.Context, o options, stderr io.Writer) (string, string, error) {
			rep, err := run(ctx, o, stderr)
			if err != nil {
				return "", "", err
			}
			if why := rep.failures(); len(why) > 0 {
				return rep.markdown(), "FAILED: " + strings.Join(why, "; ") + "; see the report", nil
			}
			return rep.markdown(), "", nil
		},
		Interrupted: "interrupted; the servers are stopped",
	}.Main(args, stdout, stderr)
}
