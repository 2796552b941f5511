package filestore

import (
	"context"

	"github.com/tswgate/tswgate/auth"
)

// defaultWatchBuffer is how many events a watcher may fall behind before it
// is sent EventResync in place of the events it missed.
const defaultWatchBuffer = 64

// watcher is one Watch call's mailbox.
type watcher struct {
	events chan auth.Event
	// lost holds a token when events were dropped because events was full.
	lost chan struct{}
}

// Watch calls fn, from one goroutine, with EventResync once and then with
// EventChanged for every Create, Revoke and Update made through this Store
// (EventPolicyChanged for every SetProjectPolicy), until ctx is done (it
// returns ctx.Err()) or the Store is closed (ErrClosed).
// The writer never waits for fn: a watcher that falls more than a buffer
// behind gets EventResync in place of the events it missed.
func (s *Store) Watch(ctx context.Context, fn func(auth.Event)) error {
	w := &watcher{
		events: make(chan auth.Event, s.watchBuffer),
		lost:   make(chan struct{}, 1),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()

	fn(auth.Event{Kind: auth.EventResync})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-w.lost:
			// Every dropped event happened before this point.
			fn(auth.Event{Kind: auth.EventResync})
		case ev := <-w.events:
			fn(ev)
		}
	}
}

// notify sends EventChanged for id to every watcher without waiting.
// s.mu must be held.
func (s *Store) notify(id string) {
	s.announce(auth.Event{Kind: auth.EventChanged, ID: id, At: s.now()})
}

// announce sends ev to every watcher without waiting. s.mu must be held.
func (s *Store) announce(ev auth.Event) {
	for w := range s.watchers {
		select {
		case w.events <- ev:
		default:
			select {
			case w.lost <- struct{}{}:
			default: // a resync is already pending
			}
		}
	}
}
