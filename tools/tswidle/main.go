// Command tswidle measures what idle tswgate replicas cost their Redis:
// the commands per second that -replicas `tswgate serve` processes send
// while no request and no change happens, with -n tokens in the store.
//
// It builds tswgate (or takes -tswgate), starts a throwaway redis-server
// (a free loopback port, never 6379; no persistence; a temporary
// directory) and the in-process stand-in API, and loads -n token records
// into Redis in pipelines (redisstore.Import; a mix of roles and statuses,
// half of them with an expiry within a year), then runs the one-time index
// reconciliation (redisstore.Reconcile) and times it. Then, for each
// binary (-before first, when given, then the one under test), it starts
// the replicas, lets them settle for -settle (each counts its tokens when
// it starts), reads INFO from Redis, waits -window, reads INFO again and
// reports total_commands_processed's growth per second, with the busiest
// commands (INFO commandstats). The replicas are stopped before the next
// binary starts.
//
// Usage, from the repository root:
//
//	go run ./tools/tswidle [-n 1000000] [-replicas 3] [-settle 30s] [-window 60s] [-before BIN] [-out FILE] [-tswgate BIN]
//
// To compare with another version, build it first, e.g. from a checkout
// of main: go build -o /tmp/tswgate-main ./cmd/tswgate, then pass
// -before /tmp/tswgate-main. The whole run is bounded by -timeout. The
// Markdown report goes to stdout and to -out; progress to stderr. The exit
// status is 1 when the run failed, 2 for a usage mistake.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are tswidle's flags.
type options struct {
	N        int           // tokens in the store
	Replicas int           // tswgate processes
	Settle   time.Duration // wait after the replicas are ready
	Window   time.Duration // the measurement window
	Timeout  time.Duration // bound of the whole run
	Before   string        // a binary to measure first, for comparison
	Out      string        // also write the Markdown here
	Gateway  string        // prebuilt tswgate binary; empty means build ./cmd/tswgate

	Scale bool    // the scale mode instead of the idle one
	Cache int     // TSWGATE_CACHE_MAX_ENTRIES in the scale mode
	Conns int     // closed-loop workers of the scale mode
	ZipfS float64 // the Zipf exponent of the scale mode's token mix
}

// parseFlags parses tswidle's command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := devtool.NewFlagSet("tswidle",
		"Measures the Redis commands per second of idle tswgate replicas with many tokens\n"+
			"(loopback, a throwaway redis-server), and prints them as Markdown.",
		stderr)
	fs.IntVar(&o.N, "n", 1000000, "`tokens` to load into the store")
	fs.IntVar(&o.Replicas, "replicas", 3, "tswgate `replicas` sharing the Redis")
	fs.DurationVar(&o.Settle, "settle", 30*time.Second, "wait this long after the replicas are ready before measuring")
	fs.DurationVar(&o.Window, "window", 60*time.Second, "measure over this `duration`")
	fs.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "stop the whole run after this `duration`")
	fs.StringVar(&o.Before, "before", "", "also measure this tswgate `binary` (another version), first")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown report to `file`")
	devtool.GatewayFlag(fs, &o.Gateway)
	fs.BoolVar(&o.Scale, "scale", false, "scale mode: drive a Zipf mix of the tokens through the replicas for -window (after -settle of warm-up)")
	fs.IntVar(&o.Cache, "cache", 100000, "scale mode: each replica's cache `entries` (TSWGATE_CACHE_MAX_ENTRIES)")
	fs.IntVar(&o.Conns, "c", 32, "scale mode: concurrent `connections`")
	fs.Float64Var(&o.ZipfS, "zipf", 1.1, "scale mode: Zipf `exponent` of the token mix (above 1)")
	if _, err := devtool.ParseFlags(fs, args); err != nil {
		return o, err
	}
	switch {
	case o.N < 0 || o.N > 10000000:
		return o, fmt.Errorf("-n %d: want 0 to 10000000", o.N)
	case o.Replicas < 1 || o.Replicas > 16:
		return o, fmt.Errorf("-replicas %d: want 1 to 16", o.Replicas)
	case o.Settle < 0 || o.Settle > 10*time.Minute:
		return o, fmt.Errorf("-settle %v: want 0 to 10m", o.Settle)
	case o.Window < time.Second || o.Window > 10*time.Minute:
		return o, fmt.Errorf("-window %v: want 1s to 10m", o.Window)
	case o.Timeout < time.Minute || o.Timeout > 2*time.Hour:
		return o, fmt.Errorf("-timeout %v: want 1m to 2h", o.Timeout)
	case o.Scale && (o.N < 2 || o.Before != ""):
		return o, errors.New("-scale: needs -n of 2 or more, and measures one version (no -before)")
	case o.Cache < 1 || o.Conns < 1 || o.Conns > 1024 || o.ZipfS <= 1:
		return o, fmt.Errorf("-cache %d, -c %d, -zipf %v: want -cache of 1 or more, -c 1 to 1024, -zipf above 1", o.Cache, o.Conns, o.ZipfS)
	}
	return o, nil
}

// commandLine renders the options that shape the run as a go run command
// line (-out and -timeout are left out: they do not change the result).
func (o options) commandLine() string {
	s := fmt.Sprintf("go run ./tools/tswidle -n %d -replicas %d -settle %v -window %v", o.N, o.Replicas, o.Settle, o.Window)
	if o.Before != "" {
		s += " -before " + o.Before
	}
	if o.Scale {
		s += fmt.Sprintf(" -scale -cache %d -c %d -zipf %v", o.Cache, o.Conns, o.ZipfS)
	}
	if o.Gateway != "" {
		s += " -tswgate " + o.Gateway
	}
	return s
}

// runMain is tswidle without the process: it returns the exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	return devtool.Tool[options]{
		Name:  "tswidle",
		Parse: parseFlags,
		Out:   func(o options) string { return o.Out },
		Run: func(ctx context.Context, o options, stderr io.Writer) (string, string, error) {
			rep, err := run(ctx, o, stderr)
			if err != nil {
				return "", "", err
			}
			return rep.markdown(), "", nil
		},
		Interrupted: "interrupted; the servers are stopped",
	}.Main(args, stdout, stderr)
}
