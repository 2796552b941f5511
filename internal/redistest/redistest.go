// Package redistest runs throwaway redis-server processes for tests.
//
// Each Server is a real redis-server bound to a free loopback port, with no
// persistence and its working directory in the test's temporary directory.
// It never uses the default port 6379, so a developer's own Redis is safe.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/internal/freeport"
)

const (
	// startAttempts bounds how often Start tries a new port when the
	// server fails to come up.
	startAttempts = 5
	// readyTimeout bounds how long a started server may take to answer PING.
	readyTimeout = 10 * time.Second
)

// Server is a running redis-server owned by one test.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	// reserved holds port for the whole test, restarts included (see
	// package freeport).
	reserved *freeport.Port

	mu   sync.Mutex
	proc *process // nil when stopped
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{} // closed when cmd.Wait returns
}

// Start starts a redis-server on a free loopback port and stops it when the
// test ends. It fails the test (never skips it) when redis-server is not
// installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (%v): install it, e.g. `apt-get install redis-server`", err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)

	var errs []error
	for range startAttempts {
		port, err := freeport.Reserve()
		if err != nil {
			tb.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = port.Num()
		if err := s.start(); err != nil {
			_ = port.Release()
			errs = append(errs, err)
			continue
		}
		s.reserved = port
		tb.Cleanup(func() { _ = port.Release() })
		return s
	}
	tb.Fatalf("redistest: starting redis-server failed %d times: %v", startAttempts, errors.Join(errs...))
	return nil
}

// Addr returns the server's "127.0.0.1:port" address.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns the server's address as a redis:// URL naming database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a client of the server that is closed when the test ends.
// ContextTimeoutEnabled is set, so context deadlines bound its calls.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  s.Addr(),
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.kill()
	s.proc = nil
}

// Restart stops the server if it runs and starts it again on the same port,
// with an empty data set: clients see an outage and then a fresh server.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	// The port is still reserved for the server: nothing else can have
	// taken it. A start can still fail for other reasons; retry briefly.
	var err error
	for range startAttempts {
		if err = s.start(); err == nil {
			return
		}
	}
	s.tb.Fatalf("redistest: restarting redis-server on port %d: %v", s.port, err)
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing is
// answered, as with a hung server or a network partition.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume thaws a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.tb.Fatalf("redistest: cannot send %v: the server is stopped", sig)
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: sending %v to redis-server: %v", sig, err)
	}
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	if s.port == 6379 {
		return errors.New("refusing to use the default Redis port 6379")
	}
	out := &syncBuffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()

	if err := p.waitReady(s.Addr()); err != nil {
		p.kill()
		return fmt.Errorf("port %d: %w; server output:\n%s", s.port, err, out.String())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls addr with PING until the server answers PONG, exits, or
// readyTimeout passes.
func (p *process) waitReady(addr string) error {
	deadline := time.Now().Add(readyTimeout)
	delay := time.Millisecond
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited: %v", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %s: %w", readyTimeout, err)
		}
		time.Sleep(delay) // bounded backoff between polls
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill() // SIGKILL also ends a SIGSTOPped process
	<-p.exited
}

// ping sends an inline PING to addr and checks for +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
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

// syncBuffer collects a process's output; it is written by exec's copying
// goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
