package main

// A rolling restart of two real `tswgate serve` processes sharing Redis,
// under steady traffic through a client-side balancer that models a load
// balancer: not one request may be lost.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/teraswitch"
)

// Shape of the restart test's traffic.
const (
	restartWorkers      = 8                      // clients sending sequential requests
	restartReadyEvery   = 20 * time.Millisecond  // the balancer's /readyz polling period
	restartMinPerWindow = 50                     // requests that must be served while a replica restarts
	restartDowntime     = 300 * time.Millisecond // between a replica's exit and its new start
	restartPath         = "/v2/Instance?ProjectId=42"
)

// restartBinary is the tswgate binary the restart test runs, built once
// per test binary run (and again only if its directory was removed, as
// with -count=N, since it lives in the first caller's TempDir).
var restartBinary struct {
	mu   sync.Mutex
	path string
}

// restartGatewayBinary builds ./cmd/tswgate (this package) with go build,
// or returns the binary built earlier in this run.
func restartGatewayBinary(t *testing.T) string {
	t.Helper()
	restartBinary.mu.Lock()
	defer restartBinary.mu.Unlock()
	if restartBinary.path != "" {
		if _, err := os.Stat(restartBinary.path); err == nil {
			return restartBinary.path
		}
	}
	path := filepath.Join(t.TempDir(), "tswgate")
	args := []string{"build", "-o", path}
	// Under -race, so is the gateway: its shutdown is race-checked (a race
	// makes it exit 66), and the build reuses the packages this test
	// binary was compiled from.
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s . (the tswgate binary): %v\n%s", strings.Join(args, " "), err, out)
	}
	restartBinary.path = path
	return path
}

// restartProc is one run of a `tswgate serve` child process.
type restartProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer // its stdout and stderr
	done chan struct{}
	err  error // cmd.Wait's result, once done is closed
}

// restartReplica is a replica slot: fixed addresses and settings, run by
// one process at a time.
type restartReplica struct {
	name                   string
	public, admin, metrics string // host:port
	env                    []string
	bin                    string

	mu   sync.Mutex
	proc *restartProc
}

// newRestartReplica reserves free loopback ports for a replica, for the
// whole test: each of its processes listens on them in turn.
func newRestartReplica(t *testing.T, name, bin string, shared []string) *restartReplica {
	t.Helper()
	r := &restartReplica{name: name, bin: bin, public: MustReserveAddr(t), admin: MustReserveAddr(t), metrics: MustReserveAddr(t)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TSWGATE_") && !strings.HasPrefix(kv, "GORACE=") {
			r.env = append(r.env, kv)
		}
	}
	// A race-built gateway would sleep 1s on exit by default.
	r.env = append(r.env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	r.env = append(r.env, shared...)
	r.env = append(r.env,
		"TSWGATE_LISTEN_ADDR="+r.public,
		"TSWGATE_ADMIN_ADDR="+r.admin,
		"TSWGATE_METRICS_ADDR="+r.metrics,
		"TSWGATE_DATA_DIR="+t.TempDir(),
	)
	t.Cleanup(r.kill)
	return r
}

// start runs a new process in r's slot and waits until its /readyz
// answers 200.
func (r *restartReplica) start(t *testing.T) *restartProc {
	t.Helper()
	p := &restartProc{log: newSyncBuffer(), done: make(chan struct{})}
	p.cmd = exec.Command(r.bin, "serve")
	p.cmd.Env = r.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Its own process group, and SIGKILL if the test binary dies first.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", r.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()

	client := &http.Client{Timeout: 500 * time.Millisecond}
	MustPoll(t, 20*time.Second, r.name+" answering /readyz with 200", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v); its log:\n%s", r.name, p.err, p.log)
		default:
		}
		resp, err := client.Get("http://" + r.metrics + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
	})
	return p
}

// kill ends r's current process, if any, with SIGKILL.
func (r *restartReplica) kill() {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// restartBalancer spreads requests over the replicas whose /readyz
// answered 200 at its last check, as a load balancer does.
type restartBalancer struct {
	replicas []*restartReplica
	ready    []atomic.Bool
	next     atomic.Uint64
}

// poll checks every replica's /readyz every restartReadyEvery until ctx
// is done; an answer other than 200, or none within 250ms, is unready.
func (b *restartBalancer) poll(ctx context.Context, wg *sync.WaitGroup) {
	for i, r := range b.replicas {
		wg.Go(func() {
			client := &http.Client{Timeout: 250 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
			for ctx.Err() == nil {
				ok := false
				if req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.metrics+"/readyz", nil); err == nil {
					if resp, err := client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						ok = resp.StatusCode == http.StatusOK
					}
				}
				b.ready[i].Store(ok)
				select {
				case <-ctx.Done():
				case <-time.After(restartReadyEvery):
				}
			}
		})
	}
}

// pick returns a ready replica other than not (-1: any), round robin,
// waiting up to 2s for one to be ready.
func (b *restartBalancer) pick(ctx context.Context, not int) (int, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := len(b.replicas)
		start := int(b.next.Add(1))
		for k := range n {
			i := (start + k) % n
			if i != not && b.ready[i].Load() {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, errors.New("no ready replica for 2s")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// isDialError reports whether err happened while connecting, before the
// request was sent (connection refused by a replica that stopped
// listening).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// restartTraffic is the outcome of the workers' requests.
type restartTraffic struct {
	served   atomic.Int64   // 200 with the upstream's body
	byServer []atomic.Int64 // served, by the replica that answered
	retries  atomic.Int64   // dial errors retried on the other replica
	failed   atomic.Int64
	mu       sync.Mutex
	failures []string // the first few
}

func (tr *restartTraffic) fail(format string, args ...any) {
	tr.failed.Add(1)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) < 10 {
		tr.failures = append(tr.failures, fmt.Sprintf(format, args...))
	}
}

// TestRestartNoLostRequest restarts both replicas of a pair, one after the
// other (SIGTERM, wait for the exit, start again on the same ports), while
// 8 clients send requests through a balancer that follows /readyz and
// retries a refused connection once on the other replica. Every request
// must succeed, traffic must keep flowing while each replica is down, and
// a slow request in flight at SIGTERM must complete on the draining
// replica.
func TestRestartNoLostRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tswgate and runs it as child processes")
	}
	bin := restartGatewayBinary(t)
	srv := redistest.Start(t)

	standin := teraswitch.NewStandin()
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case reached <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		standin.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	var releaseOnce sync.Once
	releaseFn := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseFn) // runs before up.Close

	wantBody := restartGet(t, up.URL+restartPath, "")
	shared := []string{
		"TSWGATE_REDIS_URL=" + srv.URL(),
		"TSWGATE_ADMIN_KEY=" + testAdminKey,
		"TSWGATE_PEPPER=" + testPepper,
		"TSWGATE_UPSTREAM_URL=" + up.URL,
		"TSWGATE_SHUTDOWN_TIMEOUT=5s",
		"TSWGATE_STORE_TIMEOUT=1s", // a loaded machine running -race
		"TSWGATE_LOG_LEVEL=info",
		"TSWGATE_LOG_FORMAT=json",
	}
	replicas := []*restartReplica{
		newRestartReplica(t, "replica 1", bin, shared),
		newRestartReplica(t, "replica 2", bin, shared),
	}
	for _, r := range replicas {
		r.start(t)
	}
	admin := &tokenapi.Client{BaseURL: "http://" + replicas[0].admin, AdminKey: testAdminKey, HTTP: &http.Client{Timeout: 10 * time.Second}}
	tok, err := admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "restart"})
	if err != nil {
		t.Fatalf("creating a token: %v", err)
	}
	for _, r := range replicas {
		if got := restartGet(t, "http://"+r.public+restartPath, tok.Token); !bytes.Equal(got, wantBody) {
			t.Fatalf("%s does not proxy the token: %s", r.name, got)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	b := &restartBalancer{replicas: replicas, ready: make([]atomic.Bool, len(replicas))}
	b.poll(ctx, &bg)
	MustPoll(t, 5*time.Second, "the balancer seeing both replicas ready", func() (bool, string) {
		return b.ready[0].Load() && b.ready[1].Load(), fmt.Sprintf("ready: %v, %v", b.ready[0].Load(), b.ready[1].Load())
	})

	tr := &restartTraffic{byServer: make([]atomic.Int64, len(replicas))}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: restartWorkers,
			DisableCompression:  true,
		},
	}
	send := func(i int) (status int, body []byte, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+replicas[i].public+restartPath, nil)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return resp.StatusCode, body, err
	}
	for range restartWorkers {
		bg.Go(func() {
			for ctx.Err() == nil {
				i, err := b.pick(ctx, -1)
				if err != nil {
					if ctx.Err() == nil {
						tr.fail("balancer: %v", err)
					}
					return
				}
				status, body, err := send(i)
				if err != nil && isDialError(err) && ctx.Err() == nil {
					// Refused before anything was sent: the load
					// balancer tries the other replica, once.
					tr.retries.Add(1)
					if j, perr := b.pick(ctx, i); perr == nil {
						i = j
						status, body, err = send(i)
					}
				}
				switch {
				case ctx.Err() != nil:
					return // the test is over; this one does not count
				case err != nil:
					tr.fail("%s: %v", replicas[i].name, err)
				case status != http.StatusOK || !bytes.Equal(body, wantBody):
					tr.fail("%s: %d %.200s", replicas[i].name, status, body)
				default:
					tr.served.Add(1)
					tr.byServer[i].Add(1)
				}
			}
		})
	}
	MustPoll(t, 5*time.Second, "traffic through both replicas", func() (bool, string) {
		return tr.byServer[0].Load() > 20 && tr.byServer[1].Load() > 20, fmt.Sprintf("served %d, %d", tr.byServer[0].Load(), tr.byServer[1].Load())
	})

	for idx, r := range replicas {
		r.mu.Lock()
		old := r.proc
		r.mu.Unlock()

		// Replica 1 has a slow request in flight when it gets SIGTERM.
		slow := idx == 0
		type slowResult struct {
			status int
			body   []byte
			err    error
		}
		slowDone := make(chan slowResult, 1)
		if slow {
			go func() {
				c := &http.Client{Timeout: 20 * time.Second}
				req, _ := http.NewRequest(http.MethodGet, "http://"+r.public+"/v2/Instance/slow", nil)
				req.Header.Set("Authorization", "Bearer "+tok.Token)
				resp, err := c.Do(req)
				if err != nil {
					slowDone <- slowResult{err: err}
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				slowDone <- slowResult{status: resp.StatusCode, body: body, err: err}
			}()
			select {
			case <-reached:
			case res := <-slowDone:
				t.Fatalf("the slow request ended before reaching the upstream: %+v", res)
			case <-time.After(10 * time.Second):
				t.Fatal("the slow request never reached the upstream")
			}
		}

		servedBefore := tr.served.Load()
		sigterm := time.Now()
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM to %s: %v", r.name, err)
		}
		if slow {
			// Draining: unready, still running, the slow request held.
			metrics := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			MustPoll(t, 5*time.Second, r.name+"'s /readyz answering 503 while it drains", func() (bool, string) {
				resp, err := metrics.Get("http://" + r.metrics + "/readyz")
				if err != nil {
					return false, err.Error()
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", resp.StatusCode, body)
			})
			time.Sleep(200 * time.Millisecond) // traffic goes on meanwhile
			select {
			case <-old.done:
				t.Fatalf("%s exited (%v) with a request in flight; its log:\n%s", r.name, old.err, old.log)
			default:
			}
			releaseFn()
			select {
			case res := <-slowDone:
				if res.err != nil || res.status != http.StatusOK || !bytes.Contains(res.body, []byte(`"success":true`)) {
					t.Errorf("the request in flight at SIGTERM: %d %.200s, %v; want 200 with the upstream's body", res.status, res.body, res.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the request in flight at SIGTERM did not complete")
			}
		}
		select {
		case <-old.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not exit within 10s of SIGTERM; its log:\n%s", r.name, old.log)
		}
		if old.err != nil || old.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("%s exited with %v after SIGTERM, want status 0; its log:\n%s", r.name, old.err, old.log)
		}
		if logs := old.log.String(); !strings.Contains(logs, `"msg":"stopped"`) {
			t.Errorf("%s did not log that it stopped; its log:\n%s", r.name, logs)
		}
		exited := time.Since(sigterm)

		// Down for a while, as a real restart is, while the other
		// replica takes all the traffic.
		time.Sleep(restartDowntime)
		r.start(t)
		MustPoll(t, 5*time.Second, "the balancer seeing the new "+r.name+" ready", func() (bool, string) {
			return b.ready[idx].Load(), "not ready"
		})
		window := tr.served.Load() - servedBefore
		t.Logf("%s: exited %v after SIGTERM, back in the balancer %v after it; %d requests served meanwhile, %d dial errors retried so far",
			r.name, exited.Round(time.Millisecond), time.Since(sigterm).Round(time.Millisecond), window, tr.retries.Load())
		if window < restartMinPerWindow {
			t.Errorf("only %d requests were served while %s restarted, want at least %d", window, r.name, restartMinPerWindow)
		}
		// The new process takes traffic.
		before := tr.byServer[idx].Load()
		MustPoll(t, 5*time.Second, "the new "+r.name+" serving traffic", func() (bool, string) {
			n := tr.byServer[idx].Load() - before
			return n >= 20, fmt.Sprintf("%d requests", n)
		})
	}

	cancel()
	bg.Wait()
	t.Logf("%d requests served (%d by replica 1, %d by replica 2), %d dial errors retried, %d failed",
		tr.served.Load(), tr.byServer[0].Load(), tr.byServer[1].Load(), tr.retries.Load(), tr.failed.Load())
	if n := tr.failed.Load(); n > 0 {
		t.Errorf("%d requests failed during the rolling restart; the first:\n%s", n, strings.Join(tr.failures, "\n"))
	}
}

// restartGet sends GET url (with the credential, if any) and returns the
// body of a 200 answer; anything else fails the test.
func restartGet(t *testing.T, url, cred string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s (%v)", url, resp.StatusCode, body, err)
	}
	return body
}
