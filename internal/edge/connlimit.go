package edge

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// ConnObserver hears what a connection-limited listener does; nil
// methods are not called.
type ConnObserver struct {
	Opened  func() // a connection was accepted
	Closed  func() // an accepted connection was closed
	AtLimit func() // Accept waited: the limit was reached
}

// LimitConnections returns a listener that keeps at most max of ln's
// connections open at once. At the limit, Accept waits until one closes:
// new clients wait in the kernel's accept queue rather than taking the
// process's file descriptors, which the upstream and the store need too.
// Closing the listener ends a waiting Accept. With max 0 there is no
// limit; the observer still hears connections open and close.
func LimitConnections(ln net.Listener, max int, obs ConnObserver) net.Listener {
	l := &limitListener{Listener: ln, done: make(chan struct{}), obs: obs}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	return l
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one entry per open connection; nil: no limit
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	obs       ConnObserver
}

// Accept takes a slot, waiting for one when all are in use, then accepts.
func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.free()
		return nil, err
	}
	if l.obs.Opened != nil {
		l.obs.Opened()
	}
	return &limitConn{Conn: c, release: l.release}, nil
}

// acquire takes a slot; false when the listener was closed first.
func (l *limitListener) acquire() bool {
	if l.slots == nil {
		return true
	}
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	if l.obs.AtLimit != nil {
		l.obs.AtLimit()
	}
	select {
	case l.slots <- struct{}{}:
		return true
	case <-l.done:
		return false
	}
}

// free gives a slot back.
func (l *limitListener) free() {
	if l.slots != nil {
		<-l.slots
	}
}

// release gives a closed connection's slot back.
func (l *limitListener) release() {
	l.free()
	if l.obs.Closed != nil {
		l.obs.Closed()
	}
}

// Close closes the listener and ends any waiting Accept.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when first closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite closes the sending side, as *net.TCPConn does: the servers
// do it before closing a connection with request body unread, so that the
// client reads the answer rather than a reset.
func (c *limitConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("closing the sending side of a %T: %w", c.Conn, errors.ErrUnsupported)
	}
	return cw.CloseWrite()
}
