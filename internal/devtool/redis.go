package devtool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// RedisServer is a throwaway redis-server on a loopback port (never 6379)
// with no persistence, which can be killed and started again on the same
// port: it comes back empty.
type RedisServer struct {
	Addr    string // 127.0.0.1:port
	Version string // such as "redis-server 7.0.15"

	procs *Procs
	bin   string
	dir   string
	runs  int
	proc  *Child
}

// StartRedis starts a redis-server on a free loopback port, its working
// directory in dir, under p, and waits until it answers PING.
func StartRedis(ctx context.Context, p *Procs, dir string) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: install it, e.g. `apt-get install redis-server`")
	}
	r := &RedisServer{procs: p, bin: bin, dir: dir}
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		r.Version = strings.TrimSpace(string(out))
		if f := strings.Fields(r.Version); len(f) >= 3 && strings.HasPrefix(f[2], "v=") {
			r.Version = "redis-server " + strings.TrimPrefix(f[2], "v=")
		}
	}
	var errs []error
	for range 3 {
		addrs, err := p.FreePorts(1)
		if err != nil {
			return nil, err
		}
		if _, port, _ := net.SplitHostPort(addrs[0]); port == "6379" {
			continue // never the default port: a developer's own Redis may want it
		}
		r.Addr = addrs[0]
		if err := r.start(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		return r, nil
	}
	return nil, fmt.Errorf("starting redis-server: %w", errors.Join(errs...))
}

// URL is the server's redis:// URL.
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// start runs redis-server on r.Addr and waits until it answers PING.
func (r *RedisServer) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.Addr)
	if port == "6379" {
		return errors.New("refusing to use the default Redis port 6379")
	}
	r.runs++
	c, err := r.procs.Start("redis-"+strconv.Itoa(r.runs), nil, r.bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	if err != nil {
		return err
	}
	if err := waitPong(ctx, c, r.Addr, 10*time.Second); err != nil {
		r.procs.Kill(c)
		return err
	}
	r.proc = c
	return nil
}

// Restart kills the server (SIGKILL, as a crash) and starts it again on
// the same port, empty. It returns when the new one answers PING; the
// port may be briefly held, so it tries a few times.
func (r *RedisServer) Restart(ctx context.Context) error {
	if r.proc != nil {
		r.procs.Kill(r.proc)
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
	return fmt.Errorf("restarting redis-server on %s: %w", r.Addr, err)
}

// waitPong polls addr with an inline PING until it answers +PONG.
func waitPong(ctx context.Context, c *Child, addr string, timeout time.Duration) error {
	var last error
	return poll(ctx, c, timeout, 20*time.Millisecond, func() (bool, error) {
		last = ping(addr)
		return last == nil, nil
	}, func() error {
		return fmt.Errorf("redis-server on %s: no PONG within %v: %w", addr, timeout, last)
	})
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
