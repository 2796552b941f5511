package edge

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkEdge measures a small request's round trip on loopback over
// each protocol the public listener speaks: what TLS, a TLS handshake and
// HTTP/2 add to plain HTTP/1.1 (client and server in one process).
func BenchmarkEdge(b *testing.B) {
	certPath, keyPath, err := SelfSigned(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath})
	if err != nil {
		b.Fatal(err)
	}
	pemData, _ := os.ReadFile(certPath)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"success":true}`)) })
	plain := httptest.NewServer(ok)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(ok)
	secure.TLS = ServerConfig(cf.GetCertificate, false)
	secure.EnableHTTP2 = true
	secure.StartTLS()
	defer secure.Close()
	tlsConf := func() *tls.Config { return &tls.Config{RootCAs: pool, ServerName: "localhost"} }
	for _, c := range []struct {
		name string
		url  string
		tr   *http.Transport
	}{
		{"http1", plain.URL, &http.Transport{}},
		{"https1", secure.URL, &http.Transport{TLSClientConfig: tlsConf(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		{"https2", secure.URL, &http.Transport{TLSClientConfig: tlsConf(), ForceAttemptHTTP2: true}},
		{"https1-handshake-each", secure.URL, &http.Transport{TLSClientConfig: tlsConf(), DisableKeepAlives: true,
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: c.tr}
			defer c.tr.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(c.url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
