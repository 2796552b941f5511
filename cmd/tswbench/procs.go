package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts the benchmark's child processes and makes sure none outlives
// tswbench. Each child leads its own process group, which stopAll signals
// as a whole; and each gets SIGKILL from the kernel if tswbench dies
// without cleaning up (Pdeathsig), e.g. on a crash or SIGKILL.
type procs struct {
	pin     bool   // wrap commands in taskset
	taskset string // path of taskset when pin is set
	dir     string // where the children's logs go

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

// newProcs returns a procs that pins children when pin is set (taskset must
// be on PATH then) and keeps their logs in dir.
func newProcs(pin bool, dir string) (*procs, error) {
	p := &procs{pin: pin, dir: dir, children: map[*child]struct{}{}}
	if pin {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, errors.New("taskset is not installed (Debian package util-linux); it pins the servers and the load generator to CPUs")
		}
		p.taskset = ts
	}
	return p, nil
}

// command returns argv, prefixed with `taskset -c cpu` when pinning.
func (p *procs) command(cpu int, argv []string) []string {
	if !p.pin {
		return argv
	}
	return append([]string{p.taskset, "-c", strconv.Itoa(cpu)}, argv...)
}

// sysProcAttr puts a child in its own process group and has the kernel
// kill it when tswbench dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// startServer starts a long-running child on CPU cpu with its stdout and
// stderr in DIR/NAME.log. env nil means tswbench's environment.
func (p *procs) startServer(name string, cpu int, env []string, argv ...string) (*child, error) {
	argv = p.command(cpu, argv)
	logPath := p.dir + "/" + name + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.add(c)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// runToCompletion runs a short-lived child on CPU cpu, bounded by timeout,
// and returns its stdout. On failure the error includes its stderr.
func (p *procs) runToCompletion(ctx context.Context, name string, cpu int, timeout time.Duration, argv ...string) ([]byte, error) {
	argv = p.command(cpu, argv)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	p.add(c)
	err := cmd.Wait()
	close(c.done)
	p.remove(c)
	if ctx.Err() != nil {
		if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: %w", name, parent)
		}
		return nil, fmt.Errorf("%s did not finish within %v", name, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %v\n%s", name, strings.Join(argv, " "), err, tail(stderr.String(), 20))
	}
	return stdout.Bytes(), nil
}

func (p *procs) add(c *child) {
	p.mu.Lock()
	p.children[c] = struct{}{}
	p.mu.Unlock()
}

func (p *procs) remove(c *child) {
	p.mu.Lock()
	delete(p.children, c)
	p.mu.Unlock()
}

// stopAll ends every child still running: SIGTERM to its process group,
// then SIGKILL for those not gone within grace. It is safe to call more
// than once.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := make([]*child, 0, len(p.children))
	for c := range p.children {
		list = append(list, c)
	}
	p.children = map[*child]struct{}{}
	p.mu.Unlock()

	for _, c := range list {
		_ = killGroup(c.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, c := range list {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	for _, c := range list {
		// The group may still hold grandchildren even when the leader is
		// gone; SIGKILL to an empty group just fails with ESRCH.
		_ = killGroup(c.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, c := range list {
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
	}
}

// killGroup sends sig to the process group led by pid.
func killGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return errors.New("no process")
	}
	return syscall.Kill(-pid, sig)
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
	return tail(string(b), n)
}

// waitListening waits, up to timeout, for c to print "listening on ADDR"
// in its log, and returns ADDR.
func (c *child) waitListening(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if f, err := os.Open(c.logPath); err == nil {
			addr := scanListening(f)
			f.Close()
			if addr != "" {
				return addr, nil
			}
		}
		if gone, why := c.exited(); gone {
			return "", errors.New(why)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not start listening within %v; its log ends with:\n%s", c.name, timeout, c.logTail(20))
		}
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// scanListening returns the address from the first "listening on ADDR"
// line of r, or "".
func scanListening(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
			return strings.TrimSpace(addr)
		}
	}
	return ""
}
