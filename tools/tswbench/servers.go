package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// upstreamBody is what the stand-in upstream answers to every request: a
// ~300-byte list of one instance in the TeraSwitch API's envelope, about
// the size of a real GET /v2/Instance answer for a small project.
const upstreamBody = `{"success":true,"message":"","result":[{"id":1048576,"projectId":42,` +
	`"region":{"id":"EWR1","name":"Newark, NJ"},"tier":"m1.small","displayName":"bench-1",` +
	`"hostname":"bench-1.example.net","status":"Running","imageId":"ubuntu-24.04",` +
	`"ipAddresses":["192.0.2.10","2001:db8::10"],"created":"2025-01-01T00:00:00Z"}]}`

// readyPrefix starts the one line a server subcommand prints on stdout once
// it listens; the parent reads the address from it.
const readyPrefix = "listening on "

// upstreamHandler answers every request with upstreamBody. It drains the
// request body so that keep-alive connections are reused.
func upstreamHandler() http.Handler {
	body := []byte(upstreamBody)
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json; charset=utf-8"}
		h["Content-Length"] = []string{length}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// newBareProxy returns the baseline: a plain httputil.ReverseProxy in front
// of upstream, with the same kind of pooled keep-alive transport tswgate
// uses and a buffer pool, and nothing else.
func newBareProxy(upstream *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   512,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
		BufferPool: &bufferPool{},
		ErrorLog:   log.New(os.Stderr, "bareproxy: ", log.LstdFlags),
	}
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

// Get returns a 32 KiB buffer.
func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put returns buf to the pool.
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// runUpstream is the hidden subcommand "upstream -addr ADDR".
func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveUntilSignal("upstream", *addr, upstreamHandler())
}

// runBareProxy is the hidden subcommand
// "bareproxy -addr ADDR -upstream URL".
func runBareProxy(args []string) error {
	fs := flag.NewFlagSet("bareproxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	up := fs.String("upstream", "", "upstream base `URL` (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := loopbackURL(*up)
	if err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	return serveUntilSignal("bareproxy", *addr, newBareProxy(u))
}

// serveUntilSignal listens on the loopback address addr, prints
// "listening on HOST:PORT" on stdout, and serves h until SIGINT or SIGTERM.
func serveUntilSignal(name, addr string, h http.Handler) error {
	if err := checkLoopbackAddr(addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(os.Stderr, name+": ", log.LstdFlags),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("%s%s\n", readyPrefix, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// checkLoopbackAddr accepts only host:port addresses on a loopback IP.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address; tswbench only talks to 127.0.0.1 or [::1]", addr)
	}
	return nil
}

// loopbackURL parses an http:// URL whose host is a loopback address.
func loopbackURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q: want an http://127.0.0.1:PORT URL", s)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "80")
	}
	if err := checkLoopbackAddr(hostport); err != nil {
		return nil, err
	}
	return u, nil
}
