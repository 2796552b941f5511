// Command tswlag measures revocation lag across tswgate replicas on
// loopback: how long after a revocation returns every replica refuses the
// revoked token.
//
// It builds tswgate, starts a throwaway redis-server (a free loopback port,
// never 6379; no persistence; a temporary directory), an in-process
// stand-in of the TeraSwitch API, and -replicas `tswgate serve` processes
// sharing that Redis. It creates -n Owner tokens through replica 1's admin
// API and warms each on every replica, so that every replica has it cached.
// Then it revokes the tokens one at a time, through the admin API of
// replica 1, 2, 3, 1, … in turn, while one poller per replica calls
// GET /v2/Instance?ProjectId=42 with that token in a loop. The lag of a
// (token, replica) pair is the time from the DELETE /v1/tokens/{id} call
// returning to the poller receiving that replica's first
// 401 token_revoked; a refusal received before the call returned counts
// as 0. The replica that performs a revocation drops its own cached copy
// before answering; the others learn of it through Redis pub/sub.
//
// Usage, from the repository root:
//
//	go run ./tools/tswlag [-n 200] [-replicas 3] [-interval 200µs] [-timeout 5s] [-out FILE] [-tswgate BIN]
//
// The Markdown report (p50, p99 and max over all pairs and per replica,
// with the command and machine facts) goes to stdout and to -out; progress
// goes to stderr. The exit status is 1 when a replica failed to refuse a
// revoked token within -timeout, served it again after refusing it, or
// answered anything unexpected; 2 for a usage mistake. Every child process
// is stopped before tswlag exits, and all traffic stays on 127.0.0.1.
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

// options are tswlag's flags.
type options struct {
	N        int           // tokens revoked
	Replicas int           // tswgate processes
	Interval time.Duration // pause between a poller's calls
	Timeout  time.Duration // how long each replica may take to refuse
	Out      string        // also write the Markdown here
	Gateway  string        // prebuilt tswgate binary; empty means build ./cmd/tswgate
}

// parseFlags parses tswlag's command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := devtool.NewFlagSet("tswlag",
		"Measures how long after a revocation returns every tswgate replica refuses the token\n"+
			"(loopback, a throwaway redis-server), and prints p50/p99/max as Markdown.",
		stderr)
	fs.IntVar(&o.N, "n", 200, "`tokens` to create, warm and revoke")
	fs.IntVar(&o.Replicas, "replicas", 3, "tswgate `replicas` sharing the Redis")
	fs.DurationVar(&o.Interval, "interval", 200*time.Microsecond, "`pause` between a poller's calls (0: back to back)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "how long each replica may take to refuse a revoked token")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown report to `file`")
	devtool.GatewayFlag(fs, &o.Gateway)
	if _, err := devtool.ParseFlags(fs, args); err != nil {
		return o, err
	}
	switch {
	case o.N < 1 || o.N > 100000:
		return o, fmt.Errorf("-n %d: want 1 to 100000", o.N)
	case o.Replicas < 1 || o.Replicas > 16:
		return o, fmt.Errorf("-replicas %d: want 1 to 16", o.Replicas)
	case o.Interval < 0 || o.Interval > time.Second:
		return o, fmt.Errorf("-interval %v: want 0 to 1s", o.Interval)
	case o.Timeout < 100*time.Millisecond || o.Timeout > time.Minute:
		return o, fmt.Errorf("-timeout %v: want 100ms to 1m", o.Timeout)
	}
	return o, nil
}

// commandLine renders the options that shape the run as a go run command
// line (-out is left out: it does not change the result).
func (o options) commandLine() string {
	s := fmt.Sprintf("go run ./tools/tswlag -n %d -replicas %d -interval %v -timeout %v", o.N, o.Replicas, o.Interval, o.Timeout)
	if o.Gateway != "" {
		s += " -tswgate " + o.Gateway
	}
	return s
}

// runMain is tswlag without the process: it returns the exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	return devtool.Tool[options]{
		Name:  "tswlag",
		Parse: parseFlags,
		Out:   func(o options) string { return o.Out },
		Run: func(ctx context.Context, o options, stderr io.Writer) (string, string, error) {
			rep, err := run(ctx, o, stderr)
			if err != nil {
				return "", "", err
			}
			if !rep.ok() {
				return rep.markdown(), "FAILED: some replica did not refuse a revoked token in time, served one again, or answered unexpectedly; see the report", nil
			}
			return rep.markdown(), "", nil
		},
		Interrupted: "interrupted; the servers are stopped",
	}.Main(args, stdout, stderr)
}
