package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts tswsoak's child processes (redis-server, the tswgate
// replicas) and makes sure none outlives tswsoak: each child leads its own
// process group, which stopAll signals as a whole, and gets SIGKILL from
// the kernel if tswsoak dies without cleaning up (Pdeathsig).
type procs struct {
	dir string // where the children's logs go

	mu       sync.Mutex
	children map[*child]struct{}
}

// child is a started process.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
}

func newProcs(dir string) *procs {
	return &procs{dir: dir, children: map[*child]struct{}{}}
}

// start starts a long-running child with its stdout and stderr in
// DIR/NAME.log. env nil means tswsoak's environment.
func (p *procs) start(name string, env []string, argv ...string) (*child, error) {
	logPath := filepath.Join(p.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.mu.Lock()
	p.children[c] = struct{}{}
	p.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stopAll ends every child: SIGTERM to its process group, then SIGKILL for
// those not gone within grace. It is safe to call more than once.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := make([]*child, 0, len(p.children))
	for c := range p.children {
		list = append(list, c)
	}
	p.children = map[*child]struct{}{}
	p.mu.Unlock()

	for _, c := range list {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, c := range list {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	for _, c := range list {
		// SIGKILL to an empty group just fails with ESRCH.
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
	}
}

// kill ends one child with SIGKILL to its process group and waits for it.
func (p *procs) kill(c *child) {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	p.mu.Lock()
	delete(p.children, c)
	p.mu.Unlock()
}

// exited reports whether c has exited, with a description when it has.
func (c *child) exited() (bool, string) {
	select {
	case <-c.done:
		return true, fmt.Sprintf("%s exited (%v); its log %s ends with:\n%s", c.name, c.err, c.logPath, c.logTail(20))
	default:
		return false, ""
	}
}

// logTail returns the last n lines of c's log.
func (c *child) logTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// redisServer is a throwaway redis-server on a loopback port (never 6379)
// with no persistence, which can be killed and started again on the same
// port: it comes back empty.
type redisServer struct {
	procs   *procs
	bin     string
	dir     string
	addr    string // 127.0.0.1:port
	version string // such as "redis-server 7.0.15"
	runs    int
	proc    *child
}

// startRedis starts a redis-server on a free loopback port, its working
// directory in dir, and waits until it answers PING.
func startRedis(ctx context.Context, p *procs, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: install it, e.g. `apt-get install redis-server`")
	}
	r := &redisServer{procs: p, bin: bin, dir: dir}
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		r.version = strings.TrimSpace(string(out))
		if f := strings.Fields(r.version); len(f) >= 3 && strings.HasPrefix(f[2], "v=") {
			r.version = "redis-server " + strings.TrimPrefix(f[2], "v=")
		}
	}
	var errs []error
	for range 3 {
		addrs, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		if _, port, _ := net.SplitHostPort(addrs[0]); port == "6379" {
			continue // never the default port: a developer's own Redis may want it
		}
		r.addr = addrs[0]
		if err := r.start(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		return r, nil
	}
	return nil, fmt.Errorf("starting redis-server: %w", errors.Join(errs...))
}

// URL is the server's redis:// URL.
func (r *redisServer) URL() string { return "redis://" + r.addr + "/0" }

// start runs redis-server on r.addr and waits until it answers PING.
func (r *redisServer) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	if port == "6379" {
		return errors.New("refusing to use the default Redis port 6379")
	}
	r.runs++
	c, err := r.procs.start("redis-"+strconv.Itoa(r.runs), nil, r.bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	if err != nil {
		return err
	}
	if err := waitPong(ctx, c, r.addr, 10*time.Second); err != nil {
		r.procs.kill(c)
		return err
	}
	r.proc = c
	return nil
}

// restart kills the server (SIGKILL, as a crash) and starts it again on
// the same port, empty. It returns when the new one answers PING; the
// port may be briefly held, so it tries a few times.
func (r *redisServer) restart(ctx context.Context) error {
	if r.proc != nil {
		r.procs.kill(r.proc)
		r.proc = nil
	}
	var err error
	for range 5 {
		if err = r.start(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restarting redis-server on %s: %w", r.addr, err)
}

// waitPong polls addr with an inline PING until it answers +PONG.
func waitPong(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if gone, why := c.exited(); gone {
			return errors.New(why)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s: no PONG within %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends an inline PING to addr and checks for +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply to PING: %q", line)
	}
	return nil
}

// moduleRoot returns the directory of the go.mod of the current directory,
// where `go build ./cmd/tswgate` must run.
func moduleRoot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (is the go command on PATH?)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run tswsoak from the tswgate repository")
	}
	root := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(root, "cmd", "tswgate")); err != nil {
		return "", fmt.Errorf("%s has no cmd/tswgate: run tswsoak from the tswgate repository", root)
	}
	return root, nil
}

// buildGateway runs `go build -o out ./cmd/tswgate` in the module root,
// bounded to 5 minutes.
func buildGateway(ctx context.Context, out string) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tswgate")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tswgate failed (%v):\n%s", err, bytes.TrimSpace(msg))
	}
	return nil
}

// freePorts returns n distinct free loopback addresses. They are free when
// returned; one could be taken before the child binds it, in which case the
// child fails to start and says so.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// environWithout returns the environment less the variables whose names
// start with prefix, so that settings in the caller's shell cannot change
// the gateways under test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
