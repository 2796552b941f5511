package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/devtool"
)

// Shape of the load.
const (
	soakProject = 42
	loadWorkers = 256                   // concurrent requests at most
	loadTick    = 10 * time.Millisecond // the pacer's period
	sampleEvery = 5 * time.Second       // resource sampling during the run, for the peaks
	lostTimeout = 5 * time.Second       // how long a replica may serve a token lost with Redis's data
)

// replica is a running `tswgate serve`.
type replica struct {
	N int // 1-based
	*devtool.Gateway
	admin *tokenapi.Client
}

// creds are the credentials the load uses; they are replaced after each
// Redis restart.
type creds struct {
	Gen         int    // 1, then +1 per Redis restart
	Owner       string // Owner token for soakProject
	Accounting  string // Accounting token for soakProject
	WrongSecret string // the Owner id with another secret, checksum valid
	Malformed   string // the Owner token with one character changed
}

// restartEvent is the timeline of one Redis restart.
type restartEvent struct {
	N         int
	Killed    time.Time // redis-server killed
	Up        time.Time // the new one answers PING
	Recreated time.Time // tokens created again through the admin API
	WindowEnd time.Time
	Err       string
	// LostRefused is, per replica, when it first refused the previous
	// Owner token (lost with Redis's data) as invalid_token, from the
	// kill; -1 if it did not within lostTimeout.
	LostRefused []time.Duration
	Problems    []string
}

// soak is one run.
type soak struct {
	opts     options
	logw     io.Writer
	procs    *devtool.Procs
	redis    *devtool.RedisServer
	replicas []*replica
	creds    atomic.Pointer[creds]
	windows  windows
	client   *http.Client // the load's
}

func (s *soak) logf(format string, args ...any) {
	fmt.Fprintf(s.logw, "tswsoak: "+format+"\n", args...)
}

// run sets everything up, soaks, and returns the report. Every child is
// stopped before it returns.
func run(ctx context.Context, o options, logw io.Writer) (_ *report, err error) {
	s := &soak{opts: o, logw: logw}
	facts := devtool.MachineFacts() // before the build: its load average is the machine's own
	tmp, err := os.MkdirTemp("", "tswsoak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	s.procs = devtool.NewProcs(tmp)
	defer s.procs.StopAll(3 * time.Second)
	stopUp, err := s.startAll(ctx, tmp)
	if stopUp != nil {
		defer stopUp()
	}
	if err != nil {
		return nil, err
	}
	facts.Redis = s.redis.Version
	rep := &report{Command: o.commandLine(), Opts: o, Facts: facts}
	if err := s.warmUp(ctx, rep); err != nil {
		return nil, err
	}
	if err := s.measure(ctx, rep); err != nil {
		return nil, err
	}
	for _, r := range s.replicas {
		if gone, why := r.Proc.Exited(); gone {
			rep.Problems = append(rep.Problems, why)
		}
	}
	return rep, nil
}

// startAll builds the gateway and starts Redis, the stand-in API (stopped
// by the function it returns) and the replicas, and creates the first
// tokens.
func (s *soak) startAll(ctx context.Context, tmp string) (stopUp func(), err error) {
	o := s.opts
	bin, err := devtool.GatewayBinary(ctx, "tswsoak", o.Gateway, tmp, s.logf)
	if err != nil {
		return nil, err
	}
	redisDir := filepath.Join(tmp, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		return nil, err
	}
	if s.redis, err = devtool.StartRedis(ctx, s.procs, redisDir); err != nil {
		return nil, err
	}
	s.logf("redis-server on %s", s.redis.URL())

	// A short idle timeout, so that the gateways' idle upstream connections
	// are gone when resources are measured.
	upURL, stopUp, err := devtool.StartStandin(time.Second)
	if err != nil {
		return nil, err
	}
	adminKey, pepper := devtool.RandomHex(32), devtool.RandomHex(32)
	shared := []string{
		"TSWGATE_REDIS_URL=" + s.redis.URL(),
		"TSWGATE_ADMIN_KEY=" + adminKey,
		"TSWGATE_PEPPER=" + pepper,
		"TSWGATE_UPSTREAM_URL=" + upURL,
		"TSWGATE_LOG_LEVEL=warn",
	}
	for i := range o.Replicas {
		r, err := startReplica(ctx, s.procs, bin, i+1, filepath.Join(tmp, fmt.Sprintf("data-%d", i+1)), shared, adminKey)
		if err != nil {
			return stopUp, err
		}
		s.logf("replica %d: pid %d, public %s, admin %s, metrics %s", r.N, r.Proc.Pid(), r.Public, r.Admin, r.Metrics)
		s.replicas = append(s.replicas, r)
	}
	c, err := s.createCreds(ctx, 1, 10*time.Second)
	if err != nil {
		return stopUp, err
	}
	s.creds.Store(c)
	s.client = devtool.LoopbackClient(loadWorkers)
	return stopUp, nil
}

// warmUp runs the load for a tenth of the soak (2s to 10s), then measures
// each replica's resources at the start.
func (s *soak) warmUp(ctx context.Context, rep *report) error {
	o := s.opts
	warmup := min(10*time.Second, max(2*time.Second, o.Duration/10))
	s.logf("warming up: %v at %d req/s", warmup, o.Rate)
	wt := newTally()
	ws := s.load(ctx, warmup, wt, &windows{})
	rep.Warmup = ws
	rep.WarmupUnexpected = countUnexpected(wt.rows())
	if err := ctx.Err(); err != nil {
		return err
	}

	s.logf("measuring resources at the start (load paused, idle connections closed)")
	start := s.quietSnapshot(ctx)
	rep.Resources = make([]replicaResources, len(s.replicas))
	for i, r := range s.replicas {
		rep.Resources[i] = replicaResources{Replica: r.N, PID: r.Proc.Pid(), Start: start[i], Peak: start[i]}
	}
	return nil
}

// measure runs the soak with its Redis restarts and peak sampling, then
// measures each replica's resources at the end.
func (s *soak) measure(ctx context.Context, rep *report) error {
	o := s.opts
	s.logf("soaking: %v at %d req/s, Redis restarted every %v", o.Duration, o.Rate, o.RedisRestart)
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	tl := newTally()
	runStart := time.Now()
	rep.Started = runStart
	var bg sync.WaitGroup
	var restarts []restartEvent
	bg.Go(func() { restarts = s.restartRedis(runCtx, cancelRun, runStart) })
	bg.Go(func() { s.samplePeaks(runCtx, runStart.Add(o.Duration), rep.Resources) })
	rep.Run = s.load(runCtx, o.Duration, tl, &s.windows)
	rep.Took = time.Since(runStart)
	cancelRun(nil)
	bg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	rep.Restarts = restarts
	rep.Rows = tl.rows()

	s.logf("measuring resources at the end (load stopped, idle connections closed)")
	end := s.quietSnapshot(ctx)
	for i := range s.replicas {
		rep.Resources[i].End = end[i]
		rep.Resources[i].Peak = rep.Resources[i].Peak.max(end[i])
	}
	return nil
}

// loadStats counts what the pacer did.
type loadStats struct {
	Sent    int64         // requests started
	Skipped int64         // requests due that no worker was free to send
	Took    time.Duration // how long the load ran
}

// load sends o.Rate requests per second, spread over the replicas, for d
// (or until ctx is done), and counts each answer in t by the phase ws
// gives it.
func (s *soak) load(ctx context.Context, d time.Duration, t *tally, ws *windows) loadStats {
	var st loadStats
	var seq atomic.Uint64
	jobs := make(chan uint64, s.opts.Rate) // up to a second of backlog
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for i := range jobs {
				s.one(ctx, i, t, ws)
			}
		})
	}
	tick := time.NewTicker(loadTick)
	defer tick.Stop()
	start := time.Now()
	end := start.Add(d)
	var issued int64
pace:
	for {
		select {
		case <-ctx.Done():
			break pace
		case now := <-tick.C:
			if !now.Before(end) {
				break pace
			}
			due := int64(float64(s.opts.Rate) * now.Sub(start).Seconds())
			for ; issued < due; issued++ {
				select {
				case jobs <- seq.Add(1) - 1:
					st.Sent++
				default:
					st.Skipped++
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	st.Took = time.Since(start)
	return st
}

// one sends request number i and counts its answer.
func (s *soak) one(ctx context.Context, i uint64, t *tally, ws *windows) {
	n := uint64(len(s.replicas))
	r := s.replicas[i%n]
	k := kindOf(i / n) // each replica gets the whole mix
	c := s.creds.Load()
	var cred string
	switch k {
	case kindOwner:
		cred = c.Owner
	case kindAccountingRead, kindAccountingDeny:
		cred = c.Accounting
	case kindUnknownToken:
		_, cred, _ = auth.NewCredential()
	case kindWrongSecret:
		cred = c.WrongSecret
	case kindMalformed:
		cred = c.Malformed
	}
	start := time.Now()
	status, code, err := devtool.Call(ctx, s.client, "http://"+r.Public+k.path(), cred)
	end := time.Now()
	if ctx.Err() != nil {
		return // cut short by the end of the run: not an answer
	}
	o := outcome{Status: status, Code: code}
	if err != nil {
		o = outcome{Code: errorCategory(err)}
	}
	t.add(ws.phaseOf(start, end), k, o)
}

// restartRedis kills and restarts Redis every RedisRestart from runStart
// while the run lasts, recreates the tokens after each restart, and
// returns the timeline. A restart that fails ends the run (cancel).
func (s *soak) restartRedis(ctx context.Context, cancel context.CancelCauseFunc, runStart time.Time) []restartEvent {
	o := s.opts
	var events []restartEvent
	if o.RedisRestart <= 0 {
		return nil
	}
	for n := 1; ; n++ {
		at := runStart.Add(time.Duration(n) * o.RedisRestart)
		if !at.Before(runStart.Add(o.Duration)) {
			return events
		}
		select {
		case <-ctx.Done():
			return events
		case <-time.After(time.Until(at)):
		}
		ev := restartEvent{N: n, Killed: time.Now()}
		s.windows.open(ev.Killed) // before the kill: every answer it causes is in the window
		s.logf("Redis restart %d at +%v: killing redis-server", n, ev.Killed.Sub(runStart).Round(time.Millisecond))
		err := s.redis.Restart(ctx)
		ev.Up = time.Now()
		var c *creds
		if err == nil {
			c, err = s.createCreds(ctx, n+1, 30*time.Second)
		}
		ev.Recreated = time.Now()
		ev.WindowEnd = ev.Killed.Add(o.Window)
		if e := ev.Recreated.Add(time.Second); e.After(ev.WindowEnd) {
			ev.WindowEnd = e
		}
		s.windows.closeAt(ev.WindowEnd)
		if err != nil {
			ev.Err = err.Error()
			events = append(events, ev)
			if ctx.Err() == nil {
				s.logf("Redis restart %d failed: %v", n, err)
				cancel(fmt.Errorf("redis restart %d: %w", n, err))
			}
			return events
		}
		prev := s.creds.Swap(c)
		s.logf("  back after %v, tokens recreated after %v", ev.Up.Sub(ev.Killed).Round(time.Millisecond), ev.Recreated.Sub(ev.Killed).Round(time.Millisecond))
		// The previous Owner token is gone with the data: every replica
		// must notice (it drops its cache when its subscription comes
		// back) well before the cache TTL would expire it.
		ev.LostRefused, ev.Problems = s.awaitLostRefused(ctx, prev.Owner, ev.Killed)
		events = append(events, ev)
	}
}

// awaitLostRefused calls every replica with cred, a token lost with
// Redis's data, until it answers 401 invalid_token, for up to lostTimeout
// (half the cache TTL), and returns when each did, from since.
func (s *soak) awaitLostRefused(ctx context.Context, cred string, since time.Time) ([]time.Duration, []string) {
	out := make([]time.Duration, len(s.replicas))
	problems := make([]string, len(s.replicas))
	var wg sync.WaitGroup
	for i, r := range s.replicas {
		wg.Go(func() {
			c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
			defer c.CloseIdleConnections()
			deadline := time.Now().Add(lostTimeout)
			last := "no answer"
			for ctx.Err() == nil {
				status, code, err := devtool.Call(ctx, c, "http://"+r.Public+kindOwner.path(), cred)
				if err == nil && status == http.StatusUnauthorized && code == "invalid_token" {
					out[i] = time.Since(since)
					return
				}
				if err != nil {
					last = err.Error()
				} else {
					last = outcome{Status: status, Code: code}.String()
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			out[i] = -1
			if ctx.Err() == nil {
				problems[i] = fmt.Sprintf("replica %d still answered %s to a token lost with Redis's data %v after the restart", r.N, last, lostTimeout)
			}
		})
	}
	wg.Wait()
	var ps []string
	for _, p := range problems {
		if p != "" {
			ps = append(ps, p)
		}
	}
	return out, ps
}

// createCreds creates an Owner and an Accounting token through the
// replicas' admin APIs (replica 1 first), retrying while the store is
// unavailable, for up to timeout.
func (s *soak) createCreds(ctx context.Context, gen int, timeout time.Duration) (*creds, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	create := func(role string) (tokenapi.Token, error) {
		var last error
		for attempt := 0; ; attempt++ {
			admin := s.replicas[attempt%len(s.replicas)].admin
			t, err := admin.Create(ctx, tokenapi.CreateRequest{ProjectID: soakProject, Role: role, Name: fmt.Sprintf("soak-%s-%d", role, gen)})
			if err == nil {
				return t, nil
			}
			last = err
			select {
			case <-ctx.Done():
				return t, fmt.Errorf("creating the %s token: %w (last error: %v)", role, ctx.Err(), last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	owner, err := create("owner")
	if err != nil {
		return nil, err
	}
	acct, err := create("accounting")
	if err != nil {
		return nil, err
	}
	return &creds{
		Gen:         gen,
		Owner:       owner.Token,
		Accounting:  acct.Token,
		WrongSecret: forgeCredential(owner.ID),
		Malformed:   mistype(owner.Token),
	}, nil
}

// forgeCredential returns a credential for id with a random secret and a
// correct checksum: well-formed, but not the token's secret.
func forgeCredential(id string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	_, other, _ := auth.NewCredential() // for 30 random base62 characters
	_, secret, _ := strings.Cut(other, ":")
	body := id + ":" + secret[:len(secret)-6]
	v := crc32.ChecksumIEEE([]byte(body))
	var sum [6]byte
	for i := len(sum) - 1; i >= 0; i-- {
		sum[i] = alphabet[v%62]
		v /= 62
	}
	return body + string(sum[:])
}

// mistype changes the last character before cred's checksum, which the
// checksum then catches.
func mistype(cred string) string {
	if len(cred) < 7 {
		return cred + "x"
	}
	b := []byte(cred)
	i := len(b) - 7
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	return string(b)
}

// quietSnapshot measures every replica with the load paused: the load's
// idle connections are closed first and the gateways' idle upstream
// connections time out (1s), so that start and end compare like with
// like.
func (s *soak) quietSnapshot(ctx context.Context) []resources {
	s.client.CloseIdleConnections()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	out := make([]resources, len(s.replicas))
	for i, r := range s.replicas {
		out[i] = measure(ctx, r)
	}
	return out
}

// samplePeaks measures every replica every sampleEvery until ctx is done
// or until, and keeps the maxima in res[i].Peak.
func (s *soak) samplePeaks(ctx context.Context, until time.Time, res []replicaResources) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.After(until) {
				return
			}
			for i, r := range s.replicas {
				res[i].Peak = res[i].Peak.max(measure(ctx, r))
			}
		}
	}
}

// measure reads r's resources: /proc/PID/fd and its /metrics.
func measure(ctx context.Context, r *replica) resources {
	res := resources{Goroutines: -1, FDs: -1, OpenFDs: -1, Heap: -1, RSS: -1}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.Proc.Pid())); err == nil {
		res.FDs = float64(len(ents))
	}
	text, err := devtool.FetchMetrics(ctx, "http://"+r.Metrics+"/metrics")
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.fromMetrics(devtool.ParseMetrics(text))
	return res
}

// startReplica starts `tswgate serve` number n on free loopback ports and
// waits until its /readyz answers 200.
func startReplica(ctx context.Context, p *devtool.Procs, bin string, n int, dataDir string, shared []string, adminKey string) (*replica, error) {
	g, err := devtool.StartGateway(ctx, p, devtool.GatewaySpec{
		Name: fmt.Sprintf("tswgate-%d", n), Argv: []string{bin, "serve"}, DataDir: dataDir, Env: shared,
	})
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return &replica{N: n, Gateway: g, admin: g.AdminClient(adminKey, hc)}, nil
}
