package freeport

import (
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
)

func reserve(t *testing.T) *Port {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the reservation relies on Linux's SO_REUSEADDR rules")
	}
	p, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Release() })
	return p
}

// A server told the port binds it, again after a restart, one at a time;
// with none listening, the port refuses connections.
func TestReservedPortServesItsServer(t *testing.T) {
	p := reserve(t)
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing a reserved port nothing listens on: %v, want connection refused", err)
	}
	for run := range 3 {
		ln, err := net.Listen("tcp", p.Addr())
		if err != nil {
			t.Fatalf("run %d: listening on the reserved port: %v", run, err)
		}
		if second, err := net.Listen("tcp", p.Addr()); err == nil {
			second.Close()
			t.Fatalf("run %d: a second listener bound the port while the first listens", run)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				_, _ = c.Write([]byte("up"))
				c.Close()
			}
		}()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("run %d: dialing the server: %v", run, err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "up" {
			t.Fatalf("run %d: the server answered %q, %v", run, got, err)
		}
		ln.Close()
	}
}

// Neither a listen on port 0 nor an outgoing connection gets a reserved
// port. (Ports found by listening on port 0 and closing the listener come
// back to the next such listen at once.)
func TestReservedPortsAreNotHandedOut(t *testing.T) {
	const reserved, listeners, dials = 100, 2000, 500
	held := map[int]bool{}
	for range reserved {
		held[reserve(t).Num()] = true
	}
	if len(held) != reserved {
		t.Fatalf("%d reservations hold %d distinct ports", reserved, len(held))
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		if port := ln.Addr().(*net.TCPAddr).Port; held[port] {
			t.Fatalf("a listen on port 0 got the reserved port %d", port)
		}
	}
	go func() {
		for {
			c, err := lns[0].Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for range dials {
		c, err := net.Dial("tcp", lns[0].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if port := c.LocalAddr().(*net.TCPAddr).Port; held[port] {
			t.Fatalf("an outgoing connection got the reserved port %d", port)
		}
	}
}

func TestReleaseTwice(t *testing.T) {
	p := reserve(t)
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	ports, err := ReserveN(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range ports {
		if err := q.Release(); err != nil {
			t.Fatal(err)
		}
	}
}
