package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// TransportOptions configure NewClient and NewTransport. Zero fields take
// the defaults given in each comment.
type TransportOptions struct {
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers; past it the client gets 504. Default 60s.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds connecting to the upstream. Default 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake with an https
	// upstream. Default 10s.
	TLSHandshakeTimeout time.Duration
	// IdleConnTimeout is how long a keep-alive connection may wait for
	// its next request. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool size. Default 512.
	MaxIdleConnsPerHost int
	// TLS configures https upstreams (CA bundle, client certificate);
	// nil means the system's roots and no client certificate.
	TLS *tls.Config
}

func (o TransportOptions) withDefaults() TransportOptions {
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
	return o
}

// NewTransport returns net/http's pooled keep-alive transport with the same
// settings as NewClient, which the gateway uses instead; it remains for
// comparisons (benchmarks) and for callers that need HTTP/2 upstream. It
// leaves content coding to the client and the upstream
// (DisableCompression).
func NewTransport(o TransportOptions) *http.Transport {
	o = o.withDefaults()
	return &http.Transport{
		Proxy:             nil, // the upstream is reached directly, never via $HTTP_PROXY
		TLSClientConfig:   o.TLS,
		DialContext:       (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2: true,
		// The client's own Accept-Encoding goes upstream and the answer
		// comes back as sent: without this, a request that asked for no
		// compression would have the upstream gzip and the gateway gunzip.
		DisableCompression:    true,
		MaxIdleConns:          o.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
	}
}
