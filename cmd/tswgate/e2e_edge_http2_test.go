package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tswgate/tswgate/identity"
	"github.com/tswgate/tswgate/proxy"
)

// TestE2EForgedIdentityHeadersOnEveryProtocol: a client's own
// X-Tsw-Assertion (and the other X-Tsw-* identity headers), under any
// spelling an upstream might normalise, never reaches the upstream, on
// each way into the gateway: HTTP/1.1 in clear on the fast path and
// through net/http, h2c, and HTTPS with HTTP/1.1 and HTTP/2. The one
// assertion the upstream gets is the gateway's, for the verified token.
func TestE2EForgedIdentityHeadersOnEveryProtocol(t *testing.T) {
	certPath, keyPath, pool := writeCert(t)
	up := MustStartUpstream(t, nil)
	plain := MustStartGateway(t, up.URL, "TSWGATE_H2C=true")
	slow := MustStartGateway(t, up.URL, "TSWGATE_FAST_PATH=false")
	tlsGW := MustStartGateway(t, up.URL, "TSWGATE_TLS_CERT_FILE="+certPath, "TSWGATE_TLS_KEY_FILE="+keyPath)

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	tlsH2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	tlsH1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	for _, c := range []struct {
		name, proto string
		g           *testGateway
		base        string
		rt          http.RoundTripper
	}{
		{"HTTP/1.1 fast path", "HTTP/1.1", plain, plain.URL, &http.Transport{}},
		{"HTTP/1.1 net/http", "HTTP/1.1", slow, slow.URL, &http.Transport{}},
		{"h2c", "HTTP/2.0", plain, plain.URL, h2c},
		{"HTTPS HTTP/1.1", "HTTP/1.1", tlsGW, "https://" + tlsGW.Addr("public"), tlsH1},
		{"HTTPS HTTP/2", "HTTP/2.0", tlsGW, "https://" + tlsGW.Addr("public"), tlsH2},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := c.g.MustCreateToken(t, testProject, "accounting", "acct")
			client := &http.Client{Transport: c.rt, Timeout: 10 * time.Second}
			resp := MustDo(t, client, MustNewRequest(t, "GET", c.base+"/.well-known/jwks.json", "", nil))
			keys, err := identity.ParseJWKS(resp.Body)
			if err != nil {
				t.Fatalf("JWKS: %v", err)
			}
			req := MustNewRequest(t, "GET", c.base+"/v2/Invoice", tok.Token, nil)
			for _, k := range []string{"X-Tsw-Assertion", "x-tsw-assertion", "X-TSW-ASSERTION",
				"X-Tsw-Token-Id", "X-Tsw-Project-Id", "X-Tsw-Token-Role"} {
				req.Header[k] = []string{"forged", "forged-again"}
			}
			got, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got.Body.Close()
			if got.Proto != c.proto || got.StatusCode != http.StatusOK {
				t.Fatalf("%s %s", got.Proto, got.Status)
			}
			last := up.MustLast(t)
			for k, vs := range last.Header {
				for _, v := range vs {
					if strings.Contains(v, "forged") {
						t.Errorf("the upstream got the client's %s: %q", k, v)
					}
				}
			}
			vs := last.Header.Values(proxy.HeaderAssertion)
			if len(vs) != 1 {
				t.Fatalf("the upstream got %d assertions", len(vs))
			}
			claims, err := identity.Verify(vs[0], keys, "tswgate", up.URL, time.Now(), 5*time.Second)
			if err != nil || claims.Subject != tok.ID || claims.ProjectID != testProject || claims.Role != "accounting" {
				t.Fatalf("assertion %+v, %v", claims, err)
			}
		})
	}
}

// TestE2EHTTP2HeaderLimit: TSWGATE_MAX_HEADER_BYTES bounds a request's
// header block over HTTP/2 (h2c and HTTPS) as over HTTP/1.1: the server
// refuses a 64 KiB block (raw frames, so that no client checks the limit
// first) and the upstream never sees the request.
func TestE2EHTTP2HeaderLimit(t *testing.T) {
	certPath, keyPath, pool := writeCert(t)
	up := MustStartUpstream(t, nil)
	plain := MustStartGateway(t, up.URL, "TSWGATE_H2C=true", "TSWGATE_MAX_HEADER_BYTES=8192")
	tlsGW := MustStartGateway(t, up.URL, "TSWGATE_TLS_CERT_FILE="+certPath, "TSWGATE_TLS_KEY_FILE="+keyPath,
		"TSWGATE_MAX_HEADER_BYTES=8192")
	for name, c := range map[string]struct {
		g    *testGateway
		dial func() (net.Conn, error)
	}{
		"h2c": {plain, func() (net.Conn, error) { return net.Dial("tcp", plain.Addr("public")) }},
		"HTTPS HTTP/2": {tlsGW, func() (net.Conn, error) {
			return tls.Dial("tcp", tlsGW.Addr("public"), &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
		}},
	} {
		t.Run(name, func(t *testing.T) {
			tok := c.g.MustCreateToken(t, testProject, "owner", "big-header")
			before := up.Hits()
			conn, err := c.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fr := startH2(t, conn)
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "gw.test"},
				{":path", "/v2/Instance"}, {"authorization", "Bearer " + tok.Token}, {"x-padding", strings.Repeat("a", 64<<10)}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			b := block.Bytes()
			const chunk = 16 << 10
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:chunk], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			for b = b[chunk:]; len(b) > 0; {
				n := min(chunk, len(b))
				if err := fr.WriteContinuation(1, n == len(b), b[:n]); err != nil {
					break // the server may close first
				}
				b = b[n:]
			}
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("no refusal before the connection ended: %v", err)
				}
				if _, ok := f.(*http2.GoAwayFrame); ok {
					break
				}
				if f.Header().StreamID == 1 {
					if _, ok := f.(*http2.RSTStreamFrame); ok {
						break
					}
					if h, ok := f.(*http2.HeadersFrame); ok {
						var status string
						hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
							if hf.Name == ":status" {
								status = hf.Value
							}
						}).Write(h.HeaderBlockFragment())
						if status != "431" {
							t.Errorf("a 64 KiB header block answered %s, want 431, RST_STREAM or GOAWAY", status)
						}
						break
					}
				}
			}
			if up.Hits() != before {
				t.Errorf("the upstream got the request with a 64 KiB header")
			}
		})
	}
}

// startH2 opens HTTP/2 on conn: the client preface and an empty SETTINGS.
func startH2(t *testing.T, conn net.Conn) *http2.Framer {
	t.Helper()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr
}

// TestE2EHTTP2Settings: the public listener's HTTP/2 (over TLS and h2c)
// advertises the limits docs/edge.md names: 250 concurrent streams per
// connection and a header list bounded near TSWGATE_MAX_HEADER_BYTES.
func TestE2EHTTP2Settings(t *testing.T) {
	certPath, keyPath, pool := writeCert(t)
	up := MustStartUpstream(t, nil)
	plain := MustStartGateway(t, up.URL, "TSWGATE_H2C=true", "TSWGATE_MAX_HEADER_BYTES=8192")
	tlsGW := MustStartGateway(t, up.URL, "TSWGATE_TLS_CERT_FILE="+certPath, "TSWGATE_TLS_KEY_FILE="+keyPath,
		"TSWGATE_MAX_HEADER_BYTES=8192")
	dial := map[string]func() (net.Conn, error){
		"h2c": func() (net.Conn, error) { return net.Dial("tcp", plain.Addr("public")) },
		"HTTPS": func() (net.Conn, error) {
			c, err := tls.Dial("tcp", tlsGW.Addr("public"), &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
			if err == nil && c.ConnectionState().NegotiatedProtocol != "h2" {
				err = fmt.Errorf("ALPN chose %q", c.ConnectionState().NegotiatedProtocol)
			}
			return c, err
		},
	}
	for name, d := range dial {
		t.Run(name, func(t *testing.T) {
			conn, err := d()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fr := startH2(t, conn)
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			sf, ok := f.(*http2.SettingsFrame)
			if !ok {
				t.Fatalf("first frame %v, want SETTINGS", f)
			}
			if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 250 {
				t.Errorf("MAX_CONCURRENT_STREAMS %d (sent %v), want 250", v, ok)
			}
			if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v < 8192 || v > 2*8192+4096 {
				t.Errorf("MAX_HEADER_LIST_SIZE %d (sent %v), want about TSWGATE_MAX_HEADER_BYTES (8192)", v, ok)
			}
		})
	}
}
