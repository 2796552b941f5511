package devtool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tswgate/tswgate/internal/freeport"
)

// Procs starts a tool's child processes and makes sure none outlives the
// tool: each child leads its own process group, which StopAll signals as a
// whole, and gets SIGKILL from the kernel if the tool dies without
// cleaning up (Pdeathsig), e.g. on a crash or SIGKILL.
type Procs struct {
	dir string // where the children's logs go

	mu       sync.Mutex
	children map[*Child]struct{}
	ports    []*freeport.Port // reserved by FreePorts, until StopAll
}

// Child is a started process.
type Child struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string        // its stdout and stderr; "" for Procs.Run's children
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
}

// NewProcs returns a Procs that keeps its children's logs in dir.
func NewProcs(dir string) *Procs {
	return &Procs{dir: dir, children: map[*Child]struct{}{}}
}

// sysProcAttr puts a child in its own process group and has the kernel
// kill it when the tool dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Start starts a long-running child with its stdout and stderr in
// DIR/NAME.log. env nil means the tool's environment.
func (p *Procs) Start(name string, env []string, argv ...string) (*Child, error) {
	logPath := filepath.Join(p.dir, name+".log")
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
	c := &Child{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	p.add(c)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Run runs a short-lived child, bounded by timeout, and returns its
// stdout. On failure the error includes the end of its stderr.
func (p *Procs) Run(ctx context.Context, name string, timeout time.Duration, argv ...string) ([]byte, error) {
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
	c := &Child{Name: name, Cmd: cmd, done: make(chan struct{})}
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
		return nil, fmt.Errorf("%s (%s): %v\n%s", name, strings.Join(argv, " "), err, Tail(stderr.String(), 20))
	}
	return stdout.Bytes(), nil
}

func (p *Procs) add(c *Child) {
	p.mu.Lock()
	p.children[c] = struct{}{}
	p.mu.Unlock()
}

func (p *Procs) remove(c *Child) {
	p.mu.Lock()
	delete(p.children, c)
	p.mu.Unlock()
}

// Kill ends one child with SIGKILL to its process group and waits for it.
func (p *Procs) Kill(c *Child) {
	_ = killGroup(c.Cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	p.remove(c)
}

// FreePorts returns n distinct free loopback addresses for children to
// listen on, reserved (see package freeport) until StopAll: no other
// process gets them meanwhile, and a child may be started again on them.
// The children must listen with SO_REUSEADDR, as Go programs,
// redis-server, nginx and haproxy do.
func (p *Procs) FreePorts(n int) ([]string, error) {
	ports, err := freeport.ReserveN(n)
	if err != nil {
		return nil, fmt.Errorf("finding a free loopback port: %w", err)
	}
	addrs := make([]string, len(ports))
	for i, port := range ports {
		addrs[i] = port.Addr()
	}
	p.mu.Lock()
	p.ports = append(p.ports, ports...)
	p.mu.Unlock()
	return addrs, nil
}

// StopAll ends every child still running: SIGTERM to its process group,
// then SIGKILL for those not gone within grace; then it gives back the
// ports of FreePorts. It is safe to call more than once.
func (p *Procs) StopAll(grace time.Duration) {
	p.mu.Lock()
	list := make([]*Child, 0, len(p.children))
	for c := range p.children {
		list = append(list, c)
	}
	p.children = map[*Child]struct{}{}
	ports := p.ports
	p.ports = nil
	p.mu.Unlock()
	defer func() {
		for _, port := range ports {
			_ = port.Release()
		}
	}()

	for _, c := range list {
		_ = killGroup(c.Cmd.Process.Pid, syscall.SIGTERM)
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
		_ = killGroup(c.Cmd.Process.Pid, syscall.SIGKILL)
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

// Pid is the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited reports whether c has exited, with a description when it has.
func (c *Child) Exited() (bool, string) {
	select {
	case <-c.done:
		return true, fmt.Sprintf("%s exited (%v); its log %s ends with:\n%s", c.Name, c.err, c.LogPath, c.LogTail(20))
	default:
		return false, ""
	}
}

// LogTail returns the last n lines of c's log.
func (c *Child) LogTail(n int) string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return Tail(string(b), n)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// poll calls try every interval until it returns true or an error, c
// exits, timeout passes (then it returns late()), or ctx is done.
func poll(ctx context.Context, c *Child, timeout, interval time.Duration, try func() (bool, error), late func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := try(); ok || err != nil {
			return err
		}
		if gone, why := c.Exited(); gone {
			return errors.New(why)
		}
		if time.Now().After(deadline) {
			return late()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(interval):
		}
	}
}

// WaitLogLine waits, up to timeout, for c to print a line starting with
// prefix in its log, and returns the rest of that line, trimmed.
func (c *Child) WaitLogLine(ctx context.Context, prefix string, timeout time.Duration) (string, error) {
	var rest string
	err := poll(ctx, c, timeout, 20*time.Millisecond, func() (bool, error) {
		if f, err := os.Open(c.LogPath); err == nil {
			rest = scanPrefix(f, prefix)
			f.Close()
		}
		return rest != "", nil
	}, func() error {
		return fmt.Errorf("%s did not start listening within %v; its log ends with:\n%s", c.Name, timeout, c.LogTail(20))
	})
	return rest, err
}

// scanPrefix returns the rest, trimmed, of the first line of r that
// starts with prefix, or "".
func scanPrefix(r io.Reader, prefix string) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
