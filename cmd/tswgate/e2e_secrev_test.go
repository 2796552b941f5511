package main

// Adversarial review of the proxied request path, against the built binary
// (`tswgate serve`) in front of a recording upstream: what the gateway
// tells the upstream about the request must be what it checked, on every
// protocol a client can choose.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2cRequest sends one request over a new h2c connection to addr, with the
// given header fields (pseudo-header fields first) and no body, and
// returns the answer's status and refusal code; status 0 when the server
// reset the stream or the connection.
func h2cRequest(t *testing.T, addr string, fields [][2]string) (status int, code string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fr := startH2(t, conn)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
		switch hf.Name {
		case ":status":
			status, _ = strconv.Atoi(hf.Value)
		case "x-tsw-error-code":
			code = hf.Value
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if err == io.EOF {
				return 0, ""
			}
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			return 0, ""
		case *http2.RSTStreamFrame:
			return 0, ""
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			return status, code
		}
	}
}

// TestSecrevHostIsOneAuthority: the upstream is told the client's Host as
// X-Forwarded-Host. A Host that is no single authority is refused
// invalid_header and never reaches the upstream: a list ("a,b", which
// net/http takes as an HTTP/1.1 Host and an X-Forwarded-Host reader splits
// into several proxies' hosts), and whatever HTTP/2's :authority carries
// unchecked (white space, a path, bytes above 0x7E). A request with no
// Host (HTTP/1.0) reaches the upstream without an empty X-Forwarded-Host.
func TestSecrevHostIsOneAuthority(t *testing.T) {
	b := startBinGateway(t, "TSWGATE_H2C=true")
	h2 := func(authority string) [][2]string {
		return [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", authority},
			{":path", "/v2/Invoice"}, {"authorization", "Bearer " + b.acct.Token}}
	}
	for _, c := range []struct {
		name   string
		send   func() (int, string)
		status int
		code   string
		xfh    []string // X-Forwarded-Host at the upstream, when forwarded
	}{
		{"HTTP/1.1 Host list", func() (int, string) {
			return b.raw(t, "GET /v2/Invoice HTTP/1.1\r\nHost: a,b\r\nAuthorization: Bearer "+b.acct.Token+"\r\nConnection: close\r\n\r\n")
		}, 400, "invalid_header", nil},
		{"h2c :authority list", func() (int, string) { return h2cRequest(t, b.Public, h2("a,b")) }, 400, "invalid_header", nil},
		{"h2c :authority with a space", func() (int, string) { return h2cRequest(t, b.Public, h2("a b")) }, 400, "invalid_header", nil},
		{"h2c :authority with a path", func() (int, string) { return h2cRequest(t, b.Public, h2("x/v2/Instance?")) }, 400, "invalid_header", nil},
		{"h2c :authority not ASCII", func() (int, string) { return h2cRequest(t, b.Public, h2("\xc3\xa9")) }, 400, "invalid_header", nil},
		{"h2c :authority with a port", func() (int, string) { return h2cRequest(t, b.Public, h2("api.example:8443")) }, 200, "", []string{"api.example:8443"}},
		{"HTTP/1.0 without Host", func() (int, string) {
			return b.raw(t, "GET /v2/Invoice HTTP/1.0\r\nAuthorization: Bearer "+b.acct.Token+"\r\n\r\n")
		}, 200, "", nil},
	} {
		hits := b.up.Hits()
		status, code := c.send()
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, code, c.status, c.code)
			continue
		}
		got := b.up.Hits() - hits
		if c.code != "" {
			if got != 0 {
				t.Errorf("%s: refused, yet the upstream got %d requests", c.name, got)
			}
			continue
		}
		if got != 1 {
			t.Errorf("%s: the upstream got %d requests, want 1", c.name, got)
			continue
		}
		if xfh := b.up.MustLast(t).Header["X-Forwarded-Host"]; fmt.Sprintf("%q", xfh) != fmt.Sprintf("%q", c.xfh) {
			t.Errorf("%s: the upstream got X-Forwarded-Host %q, want %q", c.name, xfh, c.xfh)
		}
	}
}

// TestSecrevMethodOverrideQuery: frameworks take a method override from
// the query as well as from a header. The header forms are dropped; a
// query parameter cannot be, so a request naming one is refused
// invalid_query and never reaches the upstream, in any spelling.
func TestSecrevMethodOverrideQuery(t *testing.T) {
	b := startBinGateway(t)
	body := []byte(`{"name":"k","key":"ssh-ed25519 AAAA","projectId":42}`)
	jsonType := []string{"Content-Type: application/json"}
	for _, c := range []securityCase{
		{"Accounting GET, _method", "GET", "/v2/Invoice?_method=DELETE", true, nil, nil, 400, "invalid_query"},
		{"Accounting HEAD, escaped _method", "HEAD", "/v2/Usage?projectId=42&%5FMETHOD=DELETE", true, nil, nil, 400, "invalid_query"},
		{"Owner POST, X-HTTP-Method-Override", "POST", "/v2/SshKey?x_http_method_override=GET", false, jsonType, body, 400, "invalid_query"},
		{"Owner POST, padded _method", "POST", "/v2/SshKey?+_method+=PUT", false, jsonType, body, 400, "invalid_query"},
		{"_method as a value", "GET", "/v2/Invoice?Tag=_method", true, nil, nil, 200, ""},
		{"Owner POST, no override", "POST", "/v2/SshKey?projectId=42", false, jsonType, body, 200, ""},
	} {
		b.check(t, c)
	}
}

// TestSecrevClientCertHeadersDropped: headers that a front end uses to
// pass a TLS client certificate to the API (ASP.NET Core's certificate
// forwarding reads X-Client-Cert by default) never reach the upstream from
// a client, in any spelling: the API may take them for the certificate
// the gateway authenticates with.
func TestSecrevClientCertHeadersDropped(t *testing.T) {
	b := startBinGateway(t)
	b.check(t, securityCase{"client certificate headers", "GET", "/v2/Invoice", true, []string{
		"X-Client-Cert: forged", "X-ARR-ClientCert: forged",
		"MS-ASPNETCORE-CLIENTCERT: forged", "Ssl-Client-Cert: forged", "X-SSL-Client-Cert: forged",
		"X-Client-Certificate: forged", "X-Forwarded-Client-Cert: forged",
	}, nil, 200, ""})
	for k, vs := range b.up.MustLast(t).Header {
		for _, v := range vs {
			if strings.Contains(v, "forged") {
				t.Errorf("the upstream got the client's %s: %q", k, v)
			}
		}
	}
}
