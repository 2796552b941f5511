// Command tswbench measures, in one run on loopback, the throughput and
// latency of three targets serving the same request:
//
//  1. direct: a stand-in TeraSwitch upstream answering ~300 bytes of JSON;
//  2. bare: a plain net/http/httputil.ReverseProxy in front of it (the fair
//     baseline: Rewrite with SetURL, a pooled keep-alive transport and a
//     buffer pool);
//  3. tswgate: the gateway in front of the same upstream, every request
//     carrying a cached Owner token for project 42.
//
// The servers run pinned to CPU 0 and the load generator (wrk, or a
// built-in Go closed-loop generator) to CPU 1. Rounds are interleaved
// (direct, bare, tswgate, direct, ...) and the report gives the medians as
// a Markdown table, with the tswgate/bare and bare/direct ratios and each
// server's CPU time per request (from /proc/PID/stat).
//
// With -ref, nginx and haproxy join as reference targets (installed with
// apt-get when missing and root), each a token gateway with a 1,000-entry
// token map and a keep-alive upstream pool; the run then also floods the
// gateways with an unknown token and measures each proxy's p99 at half its
// capacity (paced by the Go generator) beside the upstream's at the same
// rate, and reports every figure as a ratio to nginx.
//
// Usage, from the repository root:
//
//	go run ./tools/tswbench [-d 10s] [-rounds 3] [-c 64] [-gen auto|wrk|go] [-ref] [-gogc N] [-out FILE] [-quick] [-tswgate BIN]
//
// The Markdown goes to stdout (and to -out); progress goes to stderr. The
// exit status is 1 when the benchmark failed or saw errors, 2 for a usage
// mistake.
//
// With -ref, two Go floors join too, servers on the standard net package
// that parse no HTTP: a TCP relay to the upstream (a connection to it per
// client connection) among the targets of valid requests, and, for the
// flood, a server writing a canned refusal of tswgate's size for each
// request head: the least any Go front end does.
//
// The subcommands upstream, bareproxy, floor and load are tswbench's own child
// processes, not meant to be run by hand.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/devtool"
)

// The request every target serves.
const (
	benchPath      = "/v2/Instance?ProjectId=42"
	benchProjectID = 42
)

// CPUs the servers and the load generator are pinned to.
const (
	serverCPU = 0
	loadCPU   = 1
)

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "upstream":
			err = runUpstream(os.Args[2:])
		case "bareproxy":
			err = runBareProxy(os.Args[2:])
		case "floor":
			err = runFloor(os.Args[2:])
		case "load":
			err = runLoadCommand(os.Args[2:])
		default:
			os.Exit(runBench(os.Args[1:], os.Stdout, os.Stderr))
		}
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(2)
			}
			fmt.Fprintf(os.Stderr, "tswbench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	os.Exit(runBench(nil, os.Stdout, os.Stderr))
}

// options are tswbench's flags.
type options struct {
	Duration time.Duration
	Rounds   int
	Conns    int
	Out      string
	Gen      string
	Quick    bool
	Gateway  string // prebuilt tswgate binary; empty means build ./cmd/tswgate
	// Redis runs the gateway on a throwaway redis-server (the cluster rate
	// limiter, the Redis store) instead of the embedded store.
	Redis bool
	// Ref adds nginx and haproxy as reference targets, the invalid-token
	// flood and the p99 at half capacity.
	Ref bool
	// Settings are extra TSWGATE_* settings for the gateway under test.
	Settings settingList
	// GOGC, when not empty, is the GOGC of both Go proxies (bare and
	// tswgate), for measuring what the garbage collector costs.
	GOGC string
}

// settingList collects repeated -set NAME=VALUE flags.
type settingList []string

func (l *settingList) String() string { return strings.Join(*l, " ") }

func (l *settingList) Set(v string) error {
	if !strings.HasPrefix(v, "TSWGATE_") || !strings.Contains(v, "=") {
		return fmt.Errorf("%q: want TSWGATE_NAME=value", v)
	}
	*l = append(*l, v)
	return nil
}

// parseFlags parses tswbench's command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := devtool.NewFlagSet("tswbench",
		"Measures the direct upstream, a bare httputil.ReverseProxy and tswgate on loopback,\n"+
			"and prints the medians as Markdown.",
		stderr)
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "`duration` of each measured run (whole seconds)")
	fs.IntVar(&o.Rounds, "rounds", 3, "interleaved `rounds` over the three targets")
	fs.IntVar(&o.Conns, "c", 64, "concurrent keep-alive `connections`")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown result to `file`")
	fs.StringVar(&o.Gen, "gen", "auto", "load generator: wrk, go, or auto (wrk, installing it when root, else go)")
	fs.BoolVar(&o.Quick, "quick", false, "smoke test: -d 2s -rounds 1 unless given")
	fs.BoolVar(&o.Redis, "redis", false, "run tswgate on a throwaway redis-server (Redis store, cluster-scope rate limits) instead of the embedded store")
	fs.BoolVar(&o.Ref, "ref", false, "add nginx and haproxy as reference targets (apt-get installs them when root), an invalid-token flood and the p99 at half capacity; -d 5s unless given")
	fs.StringVar(&o.GOGC, "gogc", "", "run the bare proxy and tswgate with GOGC=`value` (e.g. 400 or off)")
	fs.Var(&o.Settings, "set", "extra gateway setting `TSWGATE_NAME=value` (repeatable), e.g. -set TSWGATE_ACCESS_LOG=false")
	devtool.GatewayFlag(fs, &o.Gateway)
	set, err := devtool.ParseFlags(fs, args)
	if err != nil {
		return o, err
	}
	if o.Ref && !set["d"] {
		o.Duration = 5 * time.Second
	}
	if o.Quick {
		if !set["d"] {
			o.Duration = 2 * time.Second
		}
		if !set["rounds"] {
			o.Rounds = 1
		}
	}
	switch {
	case o.Duration < time.Second || o.Duration > 10*time.Minute || o.Duration%time.Second != 0:
		return o, fmt.Errorf("-d %v: want whole seconds from 1s to 10m", o.Duration)
	case o.Rounds < 1 || o.Rounds > 20:
		return o, fmt.Errorf("-rounds %d: want 1 to 20", o.Rounds)
	case o.Conns < 1 || o.Conns > 4096:
		return o, fmt.Errorf("-c %d: want 1 to 4096", o.Conns)
	case o.Gen != "auto" && o.Gen != "wrk" && o.Gen != "go":
		return o, fmt.Errorf("-gen %q: want wrk, go or auto", o.Gen)
	case o.GOGC != "" && o.GOGC != "off" && !validGOGC(o.GOGC):
		return o, fmt.Errorf("-gogc %q: want a percentage such as 400, or off", o.GOGC)
	}
	return o, nil
}

// commandLine renders the flags as a go run command line.
func (o options) commandLine() string {
	s := fmt.Sprintf("go run ./tools/tswbench -d %v -rounds %d -c %d -gen %s", o.Duration, o.Rounds, o.Conns, o.Gen)
	if o.Out != "" {
		s += " -out " + shellJoin([]string{o.Out})
	}
	if o.Redis {
		s += " -redis"
	}
	if o.Ref {
		s += " -ref"
	}
	if o.GOGC != "" {
		s += " -gogc " + o.GOGC
	}
	for _, kv := range o.Settings {
		s += " -set " + shellJoin([]string{kv})
	}
	if o.Gateway != "" {
		s += " -tswgate " + shellJoin([]string{o.Gateway})
	}
	return s
}

// runBench is tswbench without the process: it returns the exit status.
func runBench(args []string, stdout, stderr io.Writer) int {
	return devtool.Tool[options]{
		Name:        "tswbench",
		Parse:       parseFlags,
		Out:         func(o options) string { return o.Out },
		Run:         runOnce,
		Interrupted: "interrupted; stopping the servers",
	}.Main(args, stdout, stderr)
}

// runOnce runs the benchmark and returns its report and, when it saw
// errors, why.
func runOnce(ctx context.Context, o options, stderr io.Writer) (md, failure string, err error) {
	b := &bench{opts: o, log: stderr}
	defer func() {
		// Children die with us on every path: return, error, panic.
		if b.procs != nil {
			b.procs.StopAll(3 * time.Second)
		}
		if b.tmp != "" {
			os.RemoveAll(b.tmp)
		}
		if r := recover(); r != nil {
			panic(r)
		}
	}()
	rep, err := b.run(ctx)
	if err != nil {
		return "", "", err
	}
	if rep.hasErrors() {
		failure = "the run saw errors or non-2xx responses; see the table"
	}
	return rep.markdown(), failure, nil
}

// bench is one benchmark run.
type bench struct {
	opts  options
	log   io.Writer
	tmp   string
	procs *devtool.Procs
	pin   pinner
	self  string // this executable, re-run for the child subcommands

	wrk       string // wrk's path, when it is the generator
	generator string // the generator's description
	notes     []string
}

// target is one server under load.
type target struct {
	name  string
	url   string
	auth  bool           // it checks tokens, so the invalid-token flood applies
	child *devtool.Child // its process, whose CPU time is measured
}

// logf prints progress on stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "tswbench: "+format+"\n", args...)
}

// run sets everything up, measures, and returns the report.
func (b *bench) run(ctx context.Context) (*report, error) {
	o := b.opts
	var err error
	if b.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("cannot find my own executable to start the servers: %w", err)
	}
	if b.tmp, err = os.MkdirTemp("", "tswbench-"); err != nil {
		return nil, err
	}
	pin := runtime.NumCPU() >= 2
	if !pin {
		b.notes = append(b.notes, "Only one CPU: servers and load generator share it, so the numbers understate every target.")
	}
	if b.pin, err = newPinner(pin); err != nil {
		return nil, err
	}
	b.procs = devtool.NewProcs(b.tmp)

	// Build tswgate first: it is the likeliest step to fail.
	gateBin, err := devtool.GatewayBinary(ctx, "tswbench", o.Gateway, b.tmp, b.logf)
	if err != nil {
		return nil, err
	}
	if err := b.chooseGenerator(ctx); err != nil {
		return nil, err
	}
	st, err := b.startServers(ctx, gateBin)
	if err != nil {
		return nil, err
	}
	facts, err := b.prepare(ctx, st)
	if err != nil {
		return nil, err
	}
	results, err := b.measure(ctx, st, st.targets, st.header)
	if err != nil {
		return nil, err
	}
	var flood, half []summary
	if o.Ref {
		if flood, half, err = b.measureRef(ctx, st, results); err != nil {
			return nil, err
		}
	}
	if o.GOGC != "" {
		b.notes = append(b.notes, "Both Go proxies (bare and tswgate) ran with GOGC="+o.GOGC+".")
	}
	if note := cacheNote(ctx, "http://"+st.metricsAddr+"/metrics"); note != "" {
		b.notes = append(b.notes, note)
	}

	redacted := "Authorization: Bearer <token>"
	rep := &report{
		Command:   o.commandLine(),
		Generator: b.generator,
		LoadCmd:   shellJoin(b.displayArgs(b.pin.command(loadCPU, b.loadArgs(st.targets[2], o.Duration, redacted, 0)))),
		Conns:     o.Conns,
		Duration:  o.Duration,
		Rounds:    o.Rounds,
		Pinned:    pin,
		Facts:     facts,
		BodyBytes: len(upstreamBody),
		Direct:    summarize(st.targets[0].name, results[0]),
		Bare:      summarize(st.targets[1].name, results[1]),
		Gate:      summarize(st.targets[2].name, results[2]),
		Flood:     flood,
		Half:      half,
		Notes:     b.notes,
	}
	for i := 3; i < len(st.targets); i++ {
		rep.Refs = append(rep.Refs, summarize(st.targets[i].name, results[i]))
	}
	return rep, nil
}

// stand is the servers under test: the upstream, the bare proxy,
// tswgate and, with -ref, nginx and haproxy, and their targets in that
// order.
type stand struct {
	servers     []*devtool.Child
	targets     []target
	token       string
	header      string
	badHeader   string  // a well-formed credential no target knows
	floor       *target // the Go floor, flooded only
	metricsAddr string
}

// startServers starts the servers, all on CPU 0.
func (b *bench) startServers(ctx context.Context, gateBin string) (*stand, error) {
	up, err := b.startServer("upstream", b.self, "upstream", "-addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	upAddr, err := up.WaitLogLine(ctx, readyPrefix, 10*time.Second)
	if err != nil {
		return nil, err
	}
	upURL := "http://" + upAddr
	var bareEnv []string // nil: tswbench's own
	if b.opts.GOGC != "" {
		bareEnv = append(os.Environ(), "GOGC="+b.opts.GOGC)
	}
	bare, err := b.procs.Start("bareproxy", bareEnv, b.pin.command(serverCPU, []string{b.self, "bareproxy", "-addr", "127.0.0.1:0", "-upstream", upURL})...)
	if err != nil {
		return nil, err
	}
	bareAddr, err := bare.WaitLogLine(ctx, readyPrefix, 10*time.Second)
	if err != nil {
		return nil, err
	}
	gate, gateAddr, metricsAddr, token, err := b.startGateway(ctx, gateBin, upURL)
	if err != nil {
		return nil, err
	}
	st := &stand{
		servers: []*devtool.Child{up, bare, gate},
		targets: []target{
			{name: "direct upstream", url: upURL + benchPath, child: up},
			{name: "bare httputil.ReverseProxy", url: "http://" + bareAddr + benchPath, child: bare},
			{name: "tswgate (cached Owner token)", url: "http://" + gateAddr + benchPath, auth: true, child: gate},
		},
		token:       token,
		header:      "Authorization: Bearer " + token,
		metricsAddr: metricsAddr,
	}
	if b.opts.Ref {
		_, bad, err := auth.NewCredential()
		if err != nil {
			return nil, err
		}
		st.badHeader = "Authorization: Bearer " + bad
		refs, targets, err := b.startRefs(ctx, upAddr, token)
		if err != nil {
			return nil, err
		}
		st.servers = append(st.servers, refs...)
		st.targets = append(st.targets, targets...)
		if st.floor, err = b.startFloor(ctx, ""); err != nil {
			return nil, err
		}
		relay, err := b.startFloor(ctx, upAddr)
		if err != nil {
			return nil, err
		}
		st.servers = append(st.servers, st.floor.child, relay.child)
		st.targets = append(st.targets, *relay)
	}
	return st, nil
}

// startFloor starts a Go floor on CPU 0: with relay (the upstream's
// host:port), the TCP relay a valid request goes through; without, the
// canned refusal the flood gets.
func (b *bench) startFloor(ctx context.Context, relay string) (*target, error) {
	argv := []string{b.self, "floor", "-addr", "127.0.0.1:0"}
	name, auth := "Go floor (no HTTP parsing, canned refusal)", true
	if relay != "" {
		argv = append(argv, "-relay", relay)
		name, auth = "Go floor (TCP relay, no HTTP parsing)", false
	}
	fl, err := b.startServer("floor", argv...)
	if err != nil {
		return nil, err
	}
	addr, err := fl.WaitLogLine(ctx, readyPrefix, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &target{name: name, url: "http://" + addr + benchPath, auth: auth, child: fl}, nil
}

// prepare checks that every target answers 200 (which also fills
// tswgate's cache) and that tswgate refuses a bad token, measures how busy
// the idle machine is, then loads each target for an unmeasured second.
func (b *bench) prepare(ctx context.Context, st *stand) (facts, error) {
	for _, t := range st.targets {
		if err := checkTarget(ctx, t, st.token); err != nil {
			return facts{}, err
		}
	}
	for _, t := range st.targets {
		if !t.auth {
			continue
		}
		if err := checkRefuses(ctx, t); err != nil {
			return facts{}, err
		}
	}
	// With the servers idle, anything using the CPUs now is someone else.
	b.logf("measuring how busy the CPUs are with other work (1s)")
	mf := machineFacts()
	mf.Busy = devtool.MeasureBusy(time.Second)
	if mf.Busy > busyWarn {
		b.logf("warning: the CPUs are %.0f%% busy with other work; the results will be disturbed", 100*mf.Busy)
	}
	b.logf("warming up (1s per target)")
	for _, t := range st.targets {
		if _, err := b.load(ctx, t, time.Second, st.header, 0); err != nil {
			return facts{}, fmt.Errorf("warm-up of %s: %w", t.name, err)
		}
	}
	return mf, nil
}

// measure loads each of targets with header for the run's duration,
// interleaved, for every round, and returns the results by target.
func (b *bench) measure(ctx context.Context, st *stand, targets []target, header string) ([][]loadResult, error) {
	o := b.opts
	results := make([][]loadResult, len(targets))
	for r := 0; r < o.Rounds; r++ {
		for i, t := range targets {
			b.logf("round %d/%d: %s for %v", r+1, o.Rounds, t.name, o.Duration)
			res, err := b.measured(ctx, t, o.Duration, header, 0)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, t.name, err)
			}
			b.logf("  %s req/s, p50 %s, p99 %s, CPU %.1f µs/req, non-2xx %d, errors %d",
				formatRPS(res.RPS), formatLatency(res.P50), formatLatency(res.P99), res.CPUPerReq, res.Non2xx, res.Errors)
			results[i] = append(results[i], res)
			for _, s := range st.servers {
				if gone, why := s.Exited(); gone {
					return nil, errors.New(why)
				}
			}
		}
	}
	return results, nil
}

// displayArgs shortens the paths of tswbench, taskset and wrk in argv to
// their names, for the report.
func (b *bench) displayArgs(argv []string) []string {
	out := slices.Clone(argv)
	for i, a := range out {
		switch a {
		case b.self:
			out[i] = "tswbench"
		case b.pin.taskset, b.wrk:
			out[i] = filepath.Base(a)
		}
	}
	return out
}

// chooseGenerator settles -gen: wrk when asked for or available (auto
// installs it when root), else the built-in Go generator.
func (b *bench) chooseGenerator(ctx context.Context) error {
	const goGen = "built-in Go closed-loop generator (net/http, one keep-alive connection per worker)"
	switch b.opts.Gen {
	case "go":
		b.generator = goGen
		return nil
	case "wrk":
		p, err := findWrk(ctx, false, b.log)
		if err != nil {
			return fmt.Errorf("-gen wrk: %w", err)
		}
		b.wrk = p
	default:
		p, err := findWrk(ctx, true, b.log)
		if err != nil {
			b.logf("%v; using the built-in Go generator", err)
			b.generator = goGen
			b.notes = append(b.notes, "wrk was not available ("+err.Error()+"); the Go generator costs more CPU per request than wrk, so absolute numbers are lower.")
			return nil
		}
		b.wrk = p
	}
	b.generator = wrkVersion(ctx, b.wrk)
	return nil
}

// loadArgs returns the load generator's command line for one run; a
// paced run (rate > 0) always uses the Go generator.
func (b *bench) loadArgs(t target, d time.Duration, header string, rate float64) []string {
	if b.wrk != "" && rate <= 0 {
		return wrkArgs(b.wrk, b.opts.Conns, d, header, t.url)
	}
	args := []string{b.self, "load", "-url", t.url, "-c", fmt.Sprint(b.opts.Conns), "-d", d.String(), "-H", header}
	if rate > 0 {
		args = append(args, "-rate", strconv.FormatFloat(rate, 'f', 0, 64))
	}
	return args
}

// load runs the generator against t for d, pinned to CPU 1, paced at rate
// requests per second when rate > 0.
func (b *bench) load(ctx context.Context, t target, d time.Duration, header string, rate float64) (loadResult, error) {
	out, err := b.procs.Run(ctx, "load generator", d+30*time.Second, b.pin.command(loadCPU, b.loadArgs(t, d, header, rate))...)
	if err != nil {
		return loadResult{}, err
	}
	if b.wrk != "" && rate <= 0 {
		return parseWrk(string(out))
	}
	var res loadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("load generator output: %v: %q", err, out)
	}
	return res, nil
}

// startServer starts a long-running child on the servers' CPU, with
// tswbench's environment.
func (b *bench) startServer(name string, argv ...string) (*devtool.Child, error) {
	return b.procs.Start(name, nil, b.pin.command(serverCPU, argv)...)
}

// startGateway starts `tswgate serve` on CPU 0 in front of upURL, waits
// until it is ready, creates an Owner token for project 42 through the
// admin API, and returns the process, its listen and metrics addresses and
// the token.
func (b *bench) startGateway(ctx context.Context, bin, upURL string) (gate *devtool.Child, listen, metrics, token string, err error) {
	fail := func(err error) (*devtool.Child, string, string, string, error) { return nil, "", "", "", err }
	dataDir := filepath.Join(b.tmp, "data")
	env := append([]string{"TSWGATE_UPSTREAM_URL=" + upURL, "TSWGATE_LOG_LEVEL=warn"}, b.opts.Settings...)
	if b.opts.GOGC != "" {
		env = append(env, "GOGC="+b.opts.GOGC)
	}
	adminKey := ""
	if b.opts.Redis {
		dir := filepath.Join(b.tmp, "redis")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fail(err)
		}
		redis, err := devtool.StartRedis(ctx, b.procs, dir)
		if err != nil {
			return fail(err)
		}
		b.logf("redis-server on %s", redis.URL())
		adminKey = devtool.RandomHex(24)
		env = append(env, "TSWGATE_REDIS_URL="+redis.URL(), "TSWGATE_ADMIN_KEY="+adminKey, "TSWGATE_PEPPER="+devtool.RandomHex(24))
	}
	b.logf("starting tswgate")
	g, err := devtool.StartGateway(ctx, b.procs, devtool.GatewaySpec{
		Name: "tswgate", Argv: b.pin.command(serverCPU, []string{bin, "serve"}), DataDir: dataDir, Env: env,
	})
	if err != nil {
		return fail(err)
	}
	b.logf("tswgate on %s (admin %s, metrics %s)", g.Public, g.Admin, g.Metrics)
	if adminKey == "" {
		key, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
		if err != nil {
			return fail(fmt.Errorf("tswgate is ready but its admin key is not readable: %w", err))
		}
		adminKey = strings.TrimSpace(string(key))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t, err := devtool.CreateToken(ctx, g.AdminClient(adminKey, nil), benchProjectID, "owner", "bench")
	if err != nil {
		return fail(fmt.Errorf("create token: %w", err))
	}
	return g.Proc, g.Public, g.Metrics, t.Token, nil
}

// checkRefuses makes sure t really authenticates: a request without a
// token must get 401.
func checkRefuses(ctx context.Context, t target) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("request without a token to %s: %w", t.name, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%s answered a request without a token with %s, want 401 (is it authenticating?):\n%s",
			t.name, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// cacheNote reads tswgate's token cache counters from its metrics page and
// describes them, or returns "" when they are unavailable.
func cacheNote(ctx context.Context, url string) string {
	text, err := devtool.FetchMetrics(ctx, url)
	if err != nil {
		return ""
	}
	hits, ok1 := devtool.PromValue(text, `tswgate_cache_lookups_total{result="hit"}`)
	misses, ok2 := devtool.PromValue(text, `tswgate_cache_lookups_total{result="miss"}`)
	if !ok1 || !ok2 {
		return ""
	}
	return fmt.Sprintf("tswgate's token cache over the whole run, warm-up included: %.0f hits, %.0f misses.", hits, misses)
}

// checkTarget sends a few requests to t and fails, with the answer, unless
// each is a 200 in the API's success envelope.
func checkTarget(ctx context.Context, t target, token string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 20; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("warm-up request to %s (GET %s): %w", t.name, t.url, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("warm-up request to %s (GET %s): reading the body: %w", t.name, t.url, err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"success":true`)) {
			return fmt.Errorf("warm-up request to %s (GET %s) answered %s, want 200 with the upstream's body:\n%s",
				t.name, t.url, resp.Status, bytes.TrimSpace(body))
		}
	}
	return nil
}

// validGOGC reports whether s is a GOGC percentage.
func validGOGC(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n <= 100000
}

// shellJoin renders argv for a shell, quoting where needed.
func shellJoin(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
		}) < 0 {
			parts[i] = a
		} else {
			parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}
