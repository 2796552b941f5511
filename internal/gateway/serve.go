package gateway

// Phase 5: the listeners — opening them, serving once the store's changes
// are heard, and shutting down.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/edge"
	"github.com/tswgate/tswgate/internal/h1"
	"github.com/tswgate/tswgate/proxy"
)

// subscribeWait bounds how long the public and admin listeners wait for
// the store's change announcements before serving anyway.
const subscribeWait = 10 * time.Second

type server struct {
	role string
	srv  *http.Server
	fast *h1.Server // the public listener's fast path, when on
}

// listen opens addr for one of the gateway's servers.
func (g *Gateway) listen(role, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		env := map[string]string{"public": "TSWGATE_LISTEN_ADDR", "admin": "TSWGATE_ADMIN_ADDR", "metrics": "TSWGATE_METRICS_ADDR"}[role]
		return fmt.Errorf("%s: cannot listen on %q: %w (is another process using it? set %s to another address)", env, addr, err, env)
	}
	c := g.cfg
	if role == "public" {
		m := g.metrics.conns
		ln = edge.LimitConnections(ln, c.MaxConnections, edge.ConnObserver{Opened: m.Opened, Closed: m.Closed, AtLimit: m.AtLimit})
	}
	g.listeners[role] = ln
	var fast *h1.Server
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	switch role {
	case "public":
		if fast, err = g.publicEdge(srv); err != nil {
			return err
		}
	case "admin":
		tlsConf, err := g.adminTLS()
		if err != nil {
			return err
		}
		srv.TLSConfig = tlsConf
		if tlsConf == nil {
			g.watchFraming(role, srv)
		}
	case "metrics":
		g.watchFraming(role, srv)
	}
	g.servers = append(g.servers, server{role: role, srv: srv, fast: fast})
	return nil
}

// publicEdge sets up the public listener's protocols. With TLS: HTTP/2
// and HTTP/1.1 by ALPN. Without: HTTP/1.1 (and h2c with TSWGATE_H2C),
// with the connection's header lines watched, so that requests whose
// framing a front end could read another way are refused, and, with
// TSWGATE_FAST_PATH, the fast path reading the API's requests (it hands
// every connection it does not read to srv). (Behind TLS terminated
// here, no front end reads the client's bytes before the gateway does.)
func (g *Gateway) publicEdge(srv *http.Server) (*h1.Server, error) {
	tlsConf, err := g.serverTLS()
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		srv.TLSConfig = tlsConf
		return nil, nil
	}
	srv.ConnContext = proxy.ConnContext
	// "OPTIONS *" too is answered only on a connection without faulty
	// framing.
	srv.DisableGeneralOptionsHandler = true
	srv.Handler = proxy.ServeOptionsStar(srv.Handler)
	if g.cfg.H2C {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	if !g.cfg.FastPath {
		g.listeners["public"] = proxy.WatchFraming(g.listeners["public"])
		return nil, nil
	}
	return &h1.Server{Fallback: srv, Route: apiTarget, WrapFallback: proxy.WatchFraming, Logger: g.log}, nil
}

// watchFraming makes a clear-text listener served by net/http alone (admin,
// metrics) refuse, as the public one does, the requests of a connection
// where a header block with faulty framing was seen (400 invalid_framing,
// then close), "OPTIONS *" included: a front end that reads such framing
// another way could otherwise pass a request to these endpoints that it
// never saw, on a connection it pools.
func (g *Gateway) watchFraming(role string, srv *http.Server) {
	g.listeners[role] = proxy.WatchFraming(g.listeners[role])
	srv.ConnContext = proxy.ConnContext
	srv.DisableGeneralOptionsHandler = true
	srv.Handler = proxy.ServeOptionsStar(proxy.RefuseFaultyFraming(srv.Handler))
}

// apiTarget reports the request targets of TeraSwitch's API, which the
// fast path serves: the rest (self-service, console, keys) is net/http's.
func apiTarget(target string) bool {
	return strings.HasPrefix(target, "/v1/") || strings.HasPrefix(target, "/v2/")
}

// serveAll starts serving. Health endpoints answer at once (not ready
// until subscribed); the others serve only once changes are heard, so a
// revocation made before this replica listened to them cannot be missed.
func (g *Gateway) serveAll(ctx context.Context, subscribed <-chan struct{}) error {
	g.serve("metrics")
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-subscribed:
	case <-t.C:
		g.log.Warn("not yet subscribed to token changes; serving with the cache TTL as the staleness bound")
	case <-ctx.Done():
		return ctx.Err()
	}
	g.serve("public")
	g.serve("admin")
	return nil
}

// serve starts serving the listener of role, if it is configured.
func (g *Gateway) serve(role string) {
	for _, s := range g.servers {
		if s.role != role {
			continue
		}
		go func() {
			var err error
			if s.fast != nil {
				err = s.fast.Serve(g.listeners[role])
			} else if s.srv.TLSConfig != nil {
				err = s.srv.ServeTLS(g.listeners[role], "", "")
			} else {
				err = s.srv.Serve(g.listeners[role])
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.errc <- fmt.Errorf("%s listener: %w", role, err)
			}
		}()
	}
}

// Addr returns the address a listener ("public", "admin", "metrics") is
// bound to, or "" if it is disabled.
func (g *Gateway) Addr(role string) string {
	if ln := g.listeners[role]; ln != nil {
		return ln.Addr().String()
	}
	return ""
}

// Err delivers a listener's fatal error.
func (g *Gateway) Err() <-chan error { return g.errc }

// Shutdown marks the replica unready, keeps serving for the configured
// shutdown delay (so load balancers polling /readyz stop sending), then
// stops accepting, finishes in-flight requests within ctx, and releases
// everything.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.health.Drain()
	if d := g.cfg.ShutdownDelay; d > 0 {
		g.log.Info("unready; still serving until load balancers notice", slog.Duration("delay", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	var errs []error
	for _, s := range g.servers {
		shutdown := s.srv.Shutdown
		if s.fast != nil {
			shutdown = s.fast.Shutdown // and its fallback, s.srv
		}
		if err := shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down the %s listener: %w", s.role, err))
		}
	}
	g.closeAll()
	return errors.Join(errs...)
}

// closeAll stops the background loops and releases what Start opened, in
// reverse order; it is safe after a partial start.
func (g *Gateway) closeAll() {
	if g.cancel != nil {
		g.cancel()
	}
	for _, ln := range g.listeners {
		_ = ln.Close()
	}
	g.bg.Wait()
	if g.access != nil {
		_ = g.access.Close() // after the servers: in-flight requests' lines are in
	}
	if g.apiConn != nil {
		g.apiConn.Close()
	}
	if err := g.events.close(); err != nil {
		g.log.Warn("closing the webhook queue", slog.String("err", err.Error()))
	}
	if g.valid != nil {
		g.valid.Close()
	}
	if g.store != nil {
		_ = g.store.Close()
	}
	if g.rdb != nil {
		_ = g.rdb.Close()
	}
	if g.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.tracing.Shutdown(ctx); err != nil {
			g.log.Warn("exporting the last traces failed", slog.String("err", err.Error()))
		}
	}
}
