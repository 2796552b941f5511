// Command tswsoak is a bounded soak test of tswgate on loopback: steady
// load through two replicas sharing one Redis, with Redis killed and
// restarted (empty) at intervals.
//
// It builds tswgate, starts a throwaway redis-server (a free loopback port,
// never 6379; no persistence; a temporary directory), an in-process
// stand-in of the TeraSwitch API and -replicas `tswgate serve` processes,
// creates an Owner and an Accounting token for project 42, and sends -rate
// requests per second, spread over the replicas, for -d. The mix: 50%
// Owner (200), 20% Accounting on a billing route (200), 10% Accounting on
// a compute route (403 permission_denied), 10% tokens never issued, 5%
// the Owner id with a wrong secret (401 invalid_token), and 5% malformed
// tokens (401 malformed_token).
//
// Every -redis-restart, redis-server is killed and started again on the
// same port. It comes back empty, so the tokens are created again through
// the admin API and the load switches to them. A request that overlaps the
// span from the kill to -window later (or to 1s after the tokens are
// recreated, if later) is in that restart's window, where 401
// invalid_token and 503 store_unavailable are also expected; outside
// them, each kind has exactly one right answer.
//
// The report gives, for each replica at the start and the end (both taken
// with the load paused and the client's idle connections closed) and at
// its peak: goroutines, open files (/proc/PID/fd and process_open_fds),
// heap (go_memstats_heap_alloc_bytes) and resident memory; and every
// non-2xx answer and error with its count, by phase and request kind.
//
// Usage, from the repository root:
//
//	go run ./tools/tswsoak [-d 10m] [-rate 500] [-redis-restart 2m] [-window 10s] [-replicas 2] [-quick] [-out FILE] [-tswgate BIN]
//
// -quick is -d 60s -redis-restart 20s unless those are given. The
// Markdown report goes to stdout and to -out; progress goes to stderr. The
// exit status is 1 when any answer was unexpected or the run failed, 2 for
// a usage mistake. Every child process is stopped before tswsoak exits, and
// all traffic stays on 127.0.0.1.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are tswsoak's flags.
type options struct {
	Duration     time.Duration // measured run
	Rate         int           // requests per second, all replicas together
	RedisRestart time.Duration // period of the Redis restarts
	Window       time.Duration // how long after a restart refusals are expected
	Replicas     int
	Quick        bool
	Out          string
	Gateway      string // prebuilt tswgate binary; empty means build ./cmd/tswgate
}

// parseFlags parses tswsoak's command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := devtool.NewFlagSet("tswsoak",
		"Soaks tswgate on loopback: steady load through replicas sharing one Redis, which is\n"+
			"restarted at intervals; reports resources and every non-2xx answer as Markdown.",
		stderr)
	fs.DurationVar(&o.Duration, "d", 10*time.Minute, "`duration` of the measured run")
	fs.IntVar(&o.Rate, "rate", 500, "requests per `second`, all replicas together")
	fs.DurationVar(&o.RedisRestart, "redis-restart", 2*time.Minute, "restart Redis (empty) every `period`; 0 never")
	fs.DurationVar(&o.Window, "window", 10*time.Second, "how long after a Redis restart 401 invalid_token and 503 are expected")
	fs.IntVar(&o.Replicas, "replicas", 2, "tswgate `replicas` sharing the Redis")
	fs.BoolVar(&o.Quick, "quick", false, "short run: -d 60s -redis-restart 20s unless given")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown report to `file`")
	devtool.GatewayFlag(fs, &o.Gateway)
	set, err := devtool.ParseFlags(fs, args)
	if err != nil {
		return o, err
	}
	if o.Quick {
		if !set["d"] {
			o.Duration = time.Minute
		}
		if !set["redis-restart"] {
			o.RedisRestart = 20 * time.Second
		}
	}
	switch {
	case o.Duration < 5*time.Second || o.Duration > 24*time.Hour:
		return o, fmt.Errorf("-d %v: want 5s to 24h", o.Duration)
	case o.Rate < 1 || o.Rate > 20000:
		return o, fmt.Errorf("-rate %d: want 1 to 20000", o.Rate)
	case o.RedisRestart != 0 && o.RedisRestart < 5*time.Second:
		return o, fmt.Errorf("-redis-restart %v: want 0 (never) or at least 5s", o.RedisRestart)
	case o.Window < time.Second || (o.RedisRestart != 0 && o.Window >= o.RedisRestart):
		return o, fmt.Errorf("-window %v: want at least 1s and less than -redis-restart", o.Window)
	case o.Replicas < 1 || o.Replicas > 8:
		return o, fmt.Errorf("-replicas %d: want 1 to 8", o.Replicas)
	}
	return o, nil
}

// commandLine renders the options that shape the run as a go run command
// line (-out is left out: it does not change the result).
func (o options) commandLine() string {
	s := fmt.Sprintf("go run ./tools/tswsoak -d %v -rate %d -redis-restart %v -window %v -replicas %d",
		o.Duration, o.Rate, o.RedisRestart, o.Window, o.Replicas)
	if o.Quick {
		s += " -quick"
	}
	if o.Gateway != "" {
		s += " -tswgate " + o.Gateway
	}
	return s
}

// runMain is tswsoak without the process: it returns the exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	return devtool.Tool[options]{
		Name:  "tswsoak",
		Parse: parseFlags,
		Out:   func(o options) string { return o.Out },
		Run: func(ctx context.Context, o options, stderr io.Writer) (md, failure string, err error) {
			rep, err := run(ctx, o, stderr)
			if err != nil {
				return "", "", err
			}
			if n := rep.unexpected(); n > 0 {
				failure = fmt.Sprintf("FAILED: %d unexpected answers or errors; see the report", n)
			}
			return rep.markdown(), failure, nil
		},
		Interrupted: "interrupted; the servers are stopped",
	}.Main(args, stdout, stderr)
}
