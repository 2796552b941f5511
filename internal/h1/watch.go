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
// is cancelled. Quick requests, nearly all, pay for a lock only (see
// watch).

// watchAfter is how long a request runs before its client is watched.
const watchAfter = 500 * time.Millisecond

// aLongTimeAgo is a read deadline that stops a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

type watchState int

const (
	unarmed  watchState = iota
	armed               // a request runs, not yet watched
	watching            // a goroutine reads the connection
)

// watch is a connection's watch on its client. Its timer is not reset
// and stopped for each request: once set, it is left to fire, and then
// waits on for the request running, if any (from since), or stops until
// the next request. A busy connection's timer so fires about twice a
// second, instead of being reset and stopped a thousand times.
type watch struct {
	mu      sync.Mutex
	state   watchState
	since   time.Time // when the armed request started
	pending bool      // the timer is set
	timer   *time.Timer
	done    chan struct{} // the watching read returned
}

// arm starts the watch of the request about to be served, which started
// at c.start.
func (c *conn) arm() {
	if c.body != nil {
		return // the handler reads the connection itself
	}
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state, w.since = armed, c.start
	if w.pending {
		return // it fires early, and waits on for this request
	}
	w.pending = true
	if w.timer == nil {
		w.done = make(chan struct{}, 1)
		w.timer = time.AfterFunc(watchAfter, c.watchClient)
		return
	}
	w.timer.Reset(watchAfter)
}

// watchClient reads the connection, once the request armed has run
// watchAfter, until the client sends more (a pipelined request, left
// buffered) or leaves, or disarm stops it.
func (c *conn) watchClient() {
	w := &c.watch
	w.mu.Lock()
	if w.state != armed {
		w.pending = false
		w.mu.Unlock()
		return
	}
	if left := watchAfter - time.Since(w.since); left > 0 {
		w.timer.Reset(left) // set for an earlier request
		w.mu.Unlock()
		return
	}
	w.pending = false
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

// disarm ends the watch when the handler has returned. An armed watch's
// timer is left to fire: it finds nothing armed, or the next request.
func (c *conn) disarm() {
	w := &c.watch
	w.mu.Lock()
	st := w.state
	w.state = unarmed
	w.mu.Unlock()
	if st == watching {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		<-w.done
		c.rd = aLongTimeAgo // the next wait sets its own
	}
}
