package edge

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
)

// accepted is the outcome of one Accept.
type accepted struct {
	c   net.Conn
	err error
}

// acceptOne accepts on ln in the background and delivers the outcome.
func acceptOne(ln net.Listener) <-chan accepted {
	out := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		out <- accepted{c, err}
	}()
	return out
}

func dial(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLimitConnectionsWaitsForAClose(t *testing.T) {
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	atLimit := make(chan struct{}, 1)
	ln := LimitConnections(base, 2, ConnObserver{
		Opened:  func() { open.Add(1) },
		Closed:  func() { open.Add(-1) },
		AtLimit: func() { atLimit <- struct{}{} },
	})
	defer ln.Close()
	var held []net.Conn
	for range 2 {
		dial(t, ln)
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	dial(t, ln) // waits in the kernel's queue
	third := acceptOne(ln)
	<-atLimit // Accept is waiting for a slot
	select {
	case a := <-third:
		t.Fatalf("a third connection was accepted at a limit of 2 (%v)", a.err)
	default:
	}
	if open.Load() != 2 {
		t.Fatalf("open = %d, want 2", open.Load())
	}
	held[0].Close()
	held[0].Close() // a second Close gives nothing back twice
	a := <-third
	if a.err != nil {
		t.Fatalf("after a close: %v", a.err)
	}
	a.c.Close()
	held[1].Close()
	if open.Load() != 0 {
		t.Fatalf("open = %d after every connection closed, want 0", open.Load())
	}
}

func TestLimitConnectionsCloseEndsAWaitingAccept(t *testing.T) {
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	atLimit := make(chan struct{}, 1)
	ln := LimitConnections(base, 1, ConnObserver{AtLimit: func() { atLimit <- struct{}{} }})
	dial(t, ln)
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waiting := acceptOne(ln)
	<-atLimit
	ln.Close()
	if a := <-waiting; !errors.Is(a.err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", a.err)
	}
}

func TestLimitConnectionsZeroCountsWithoutLimit(t *testing.T) {
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	ln := LimitConnections(base, 0, ConnObserver{Opened: func() { open.Add(1) }, Closed: func() { open.Add(-1) }})
	defer ln.Close()
	var conns []net.Conn
	for range 5 {
		dial(t, ln)
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if open.Load() != 5 {
		t.Fatalf("open = %d, want 5", open.Load())
	}
	for _, c := range conns {
		c.Close()
	}
	if open.Load() != 0 {
		t.Fatalf("open = %d, want 0", open.Load())
	}
	if _, ok := conns[0].(interface{ CloseWrite() error }); !ok {
		t.Fatal("a limited connection hides CloseWrite, which the servers use to linger")
	}
}
