package h1

import (
	"sync"
	"time"
)

// Noticing a client that leaves.
//
// net/http reads each connection in the background while a handler runs,
// so that a client's leaving cancels its request's context at once (and
// with it the upstream call). The fast path does the same for requests
// that take long: after watchAfter, a request without a body has its
// connection watched by one goroutine until the handler returns; if the
// client closes the connection, the connection's context (the request's)
// is cancelled. Quick requests, nearly all, pay for a timer reset only.

// watchAfter is how long a request runs before its client is watched.
const watchAfter = 500 * time.Millisecond

// aLongTimeAgo is a read deadline that stops a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

type watchState int

const (
	unarmed  watchState = iota
	armed               // the timer runs
	watching            // a goroutine reads the connection
)

// watch is a connection's watch on its client.
type watch struct {
	mu    sync.Mutex
	state watchState
	timer *time.Timer
	done  chan struct{} // the watching read returned
}

// arm starts the timer for the request about to be served.
func (c *conn) arm() {
	if c.body != nil {
		return // the handler reads the connection itself
	}
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = armed
	if w.timer == nil {
		w.done = make(chan struct{}, 1)
		w.timer = time.AfterFunc(watchAfter, c.watchClient)
		return
	}
	w.timer.Reset(watchAfter)
}

// watchClient reads the connection until the client sends more (a
// pipelined request, left buffered) or leaves, or disarm stops it.
func (c *conn) watchClient() {
	w := &c.watch
	w.mu.Lock()
	if w.state != armed {
		w.mu.Unlock()
		return
	}
	w.state = watching
	// Without deadline, as net/http's background read: the head's may
	// have passed, which would end the watch at once. Under the lock, so
	// that disarm's deadline comes after this one.
	_ = c.nc.SetReadDeadline(time.Time{})
	w.mu.Unlock()
	if _, err := c.br.Peek(1); err != nil && !isTimeout(err) {
		c.cancel() // gone: end the request's work
	}
	w.done <- struct{}{}
}

// disarm ends the watch when the handler has returned.
func (c *conn) disarm() {
	w := &c.watch
	w.mu.Lock()
	st := w.state
	w.state = unarmed
	w.mu.Unlock()
	switch st {
	case armed:
		w.timer.Stop() // if it fired already, watchClient sees unarmed
	case watching:
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		<-w.done
		c.rd = aLongTimeAgo // the next wait sets its own
	}
}
