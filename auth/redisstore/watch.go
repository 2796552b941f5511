package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
)

// Bounds of the pause between attempts to reach Redis while the
// subscription is down.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// Watch subscribes to the store's channel and calls fn, from one goroutine,
// for every announced change until ctx is done or the Store is closed:
// EventChanged for a token's, EventPolicyChanged for a project policy's
// (announced on the channel's name + ":policies").
//
// fn gets EventResync each time the subscription is established: first
// when watching starts, then after every outage. When the subscription
// breaks (or cannot be made at the start), fn gets one EventDisconnected,
// whose Err matches auth.ErrUnavailable, and Watch keeps reconnecting with
// a backoff of 50ms doubling up to 1s.
//
// How a break is noticed: go-redis's PubSub reconnects and re-subscribes by
// itself on the Receive after a connection error, and the server's reply to
// that SUBSCRIBE surfaces from Receive as a *redis.Subscription, which is
// what turns into EventResync. A connection that silently stops answering
// (a hung server, a partition) gives no error, so after a quiet
// pingInterval Watch sends a PING; if the reply does not come within
// another pingInterval, the connection is taken as dead and a fresh PubSub
// replaces it.
//
// A subscription can also stay up on a server that no longer hears the
// announcements: after a Sentinel failover the client sends its commands
// to the new master at once, but the subscription stays on the old master
// until Sentinel reconfigures it and drops its clients, which it does some
// 10 s later. So on a *redis.Client (a single server, or Sentinel), Watch
// also subscribes to a channel of its own and asks once a second,
// through the store's client, whether that channel has a subscriber
// (PUBSUB NUMSUB): none means the subscription is elsewhere, and it is
// replaced like a dead one (EventDisconnected, then EventResync once the
// fresh one is up). Cluster clients need no such check: every node passes
// PUBLISH on to the others, so a subscription on any node hears them all.
//
// Watch returns ctx.Err() when ctx is done and ErrClosed when the Store is
// closed.
func (s *Store) Watch(ctx context.Context, fn func(auth.Event)) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	w := &watcher{s: s, fn: fn, backoff: minBackoff}
	if s.checkInterval > 0 {
		w.own = s.channel + ":watch:" + rand.Text()
	}
	for wctx.Err() == nil {
		w.session(wctx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// watcher is the state of one Watch call.
type watcher struct {
	s       *Store
	fn      func(auth.Event)
	down    bool // EventDisconnected was sent and no EventResync since
	backoff time.Duration
	own     string // this Watch's own channel, for checkHeard; "" without the check
}

// session receives from one PubSub until ctx is done or the connection is
// found dead.
func (w *watcher) session(ctx context.Context) {
	s := w.s
	channels := []string{s.channel, s.policyChannel()}
	wait := s.pingInterval // the longest Receive
	if w.own != "" {
		channels = append(channels, w.own)
		wait = min(wait, s.checkInterval)
	}
	// Subscribe's error is not returned: when it fails, the next Receive
	// reconnects and re-subscribes, or reports why it cannot.
	ps := s.client.Subscribe(ctx, channels...)
	defer ps.Close()
	// Receive does not watch ctx; closing the PubSub interrupts it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	var (
		pinged  bool         // a PING is awaiting its reply
		quiet   = time.Now() // since the last message, or the PING
		ownUp   bool         // w.own's subscription is confirmed
		checked = time.Now() // the last checkHeard
	)
	for {
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		if ownUp && time.Since(checked) >= s.checkInterval {
			checked = time.Now()
			if cerr := w.checkHeard(ctx); cerr != nil {
				w.outage(ctx, cerr)
				return // a fresh PubSub connects where the client does now
			}
		}
		if err != nil {
			if isTimeout(err) {
				if time.Since(quiet) < s.pingInterval {
					continue
				}
				if !pinged {
					pinged, quiet = true, time.Now()
					if err = ps.Ping(ctx); err == nil {
						continue
					}
				} else {
					w.outage(ctx, fmt.Errorf("no reply to PING within %s", s.pingInterval))
					return // a fresh PubSub gets a fresh connection
				}
			}
			pinged, ownUp, quiet = false, false, time.Now()
			w.outage(ctx, err)
			continue
		}
		pinged, quiet = false, time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel {
				w.resync()
			}
			if m.Kind == "subscribe" && m.Channel == w.own {
				ownUp, checked = true, time.Now()
			}
		case *redis.Message:
			switch m.Channel {
			case s.channel:
				w.message(m.Payload)
			case s.policyChannel():
				w.policyMessage(m.Payload)
			}
		case *redis.Pong:
			// The connection is alive.
		}
	}
}

// checkHeard reports an error when the store's client reaches a server on
// which w.own has no subscriber: announcements published through the
// client would not reach this Watch. A check that cannot be made is not a
// finding (the PING watches the connection itself).
func (w *watcher) checkHeard(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(w.s.timeout, w.s.checkInterval))
	defer cancel()
	n, err := w.s.client.PubSubNumSub(ctx, w.own).Result()
	if err != nil || n[w.own] > 0 {
		return nil
	}
	return errors.New("the subscription is not on the server the store's client reaches " +
		"(after a failover?): announcements made there are not heard")
}

// outage reports the first error of an outage and pauses before the next
// attempt.
func (w *watcher) outage(ctx context.Context, err error) {
	if !w.down {
		w.down = true
		w.s.log.Warn("redisstore: change announcements are down", "channel", w.s.channel, "err", err)
		w.fn(auth.Event{
			Kind: auth.EventDisconnected,
			Err:  fmt.Errorf("redisstore: watching %s: %w: %w", w.s.channel, auth.ErrUnavailable, err),
		})
	}
	t := time.NewTimer(w.backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	w.backoff = min(2*w.backoff, maxBackoff)
}

// resync reports a (re)established subscription.
func (w *watcher) resync() {
	if w.down {
		w.s.log.Info("redisstore: change announcements are back", "channel", w.s.channel)
	}
	w.down = false
	w.backoff = minBackoff
	w.fn(auth.Event{Kind: auth.EventResync})
}

// message reports one announcement. One that cannot be read may still stand
// for a change, so it is reported as EventResync.
func (w *watcher) message(payload string) {
	id, at, ok := parseMessage(payload)
	if !ok {
		w.s.log.Warn("redisstore: unreadable announcement; resyncing", "channel", w.s.channel, "payload_len", len(payload))
		w.fn(auth.Event{Kind: auth.EventResync})
		return
	}
	w.fn(auth.Event{Kind: auth.EventChanged, ID: id, At: at})
}

// policyMessage reports one announcement of a policy change; one that
// cannot be read is reported as EventResync, like a token change's.
func (w *watcher) policyMessage(payload string) {
	project, at, ok := parsePolicyMessage(payload)
	if !ok {
		w.s.log.Warn("redisstore: unreadable policy announcement; resyncing", "channel", w.s.policyChannel(), "payload_len", len(payload))
		w.fn(auth.Event{Kind: auth.EventResync})
		return
	}
	w.fn(auth.Event{Kind: auth.EventPolicyChanged, Project: project, At: at})
}

// parseMessage reads "<id> <unix nanoseconds>". The time is optional: a
// missing or unreadable one leaves at zero.
func parseMessage(payload string) (id string, at time.Time, ok bool) {
	id, rest, _ := strings.Cut(strings.TrimSpace(payload), " ")
	if !auth.ValidID(id) {
		return "", time.Time{}, false
	}
	if ns, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil && ns > 0 {
		at = time.Unix(0, ns)
	}
	return id, at, true
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
