package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// TransportOptions configure NewTransport. Zero fields take the defaults
// given in each comment.
type TransportOptions struct {
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers; past it the client gets 504. Default 60s.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds connecting to the upstream. Default 5s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool size. Default 512.
	MaxIdleConnsPerHost int
	// TLS configures https upstreams (CA bundle, client certificate);
	// nil means the system's roots and no client certificate.
	TLS *tls.Config
}

// NewTransport returns the pooled keep-alive transport the gateway uses to
// reach the upstream. It leaves content coding to the client and the
// upstream (DisableCompression).
func NewTransport(o TransportOptions) *http.Transport {
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
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
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
	}
}
