package main

// The public edge end to end: the identity assertion and its JWKS, TLS
// with HTTP/2 (and h2c), and events — webhooks of token changes and the
// public revoke-by-value endpoint.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/identity"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/proxy"
	"github.com/tswgate/tswgate/webhook"
	"github.com/tswgate/tswgate/webhook/webhookapi"
)

// TestE2EIdentityAssertion: every forwarded request carries an assertion
// of its token that the gateway's published JWKS verifies; a client's own
// is dropped.
func TestE2EIdentityAssertion(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_ASSERTION_ISSUER=https://gw.example")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")
	resp := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.URL+"/.well-known/jwks.json", "", nil))
	if resp.Status != 200 {
		t.Fatalf("JWKS: %s", resp)
	}
	keys, err := identity.ParseJWKS(resp.Body)
	if err != nil || len(keys) != 1 {
		t.Fatalf("JWKS keys %d, %v", len(keys), err)
	}
	req := MustNewRequest(t, "GET", g.URL+"/v2/Invoice", acct.Token, nil)
	req.Header.Set(proxy.HeaderAssertion, "forged")
	MustBeProxied(t, MustDo(t, g.HTTP, req))
	vs := up.MustLast(t).Header.Values(proxy.HeaderAssertion)
	if len(vs) != 1 {
		t.Fatalf("upstream got %q", vs)
	}
	c, err := identity.Verify(vs[0], keys, "https://gw.example", up.URL, time.Now(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != acct.ID || c.ProjectID != testProject || c.Role != "accounting" || c.Scope != "" {
		t.Fatalf("claims %+v", c)
	}

	// A scoped token's assertion lists its permissions.
	scoped, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: testProject, Role: "owner",
		Name: "ci", Scopes: []string{"compute.read", "billing.read"}})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(scoped.Token)
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", scoped.Token, nil))
	c, err = identity.Verify(up.MustLast(t).Header.Get(proxy.HeaderAssertion), keys, "https://gw.example", up.URL, time.Now(), 5*time.Second)
	if err != nil || c.Subject != scoped.ID || c.Scope != "billing.read compute.read" {
		t.Fatalf("scoped token's claims %+v, %v", c, err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tswgate test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestE2ETLSAndHTTP2: with a certificate the public listener speaks TLS,
// HTTP/2 by ALPN (and HTTP/1.1), sends HSTS, and refuses alike on both.
func TestE2ETLSAndHTTP2(t *testing.T) {
	certPath, keyPath, pool := writeCert(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_TLS_CERT_FILE="+certPath, "TSWGATE_TLS_KEY_FILE="+keyPath,
		"TSWGATE_HSTS_MAX_AGE=8760h")
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	base := "https://" + g.Addr("public")
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	cases := []struct {
		method, path, cred, ctype string
		body                      []byte
		code                      string // "" when proxied
	}{
		{"GET", "/v2/Instance?ProjectId=42", owner.Token, "", nil, ""},
		{"GET", "/v2/Instance?ProjectId=43", owner.Token, "", nil, "project_mismatch"},
		{"GET", "/v2/Instance?ProjectId=%zz", owner.Token, "", nil, "invalid_query"},
		{"GET", "/v2/Instance", "", "", nil, "missing_token"},
		{"POST", "/v2/SshKey", owner.Token, "application/x-www-form-urlencoded", []byte("projectId=43"), "unsupported_media_type"},
		{"POST", "/v2/SshKey", owner.Token, "application/json", []byte(`{"projectId":42,"service":{"projectId":43}}`), "project_mismatch"},
	}
	for _, c := range cases {
		for name, client := range map[string]*http.Client{"HTTP/2.0": h2, "HTTP/1.1": h1} {
			req := MustNewRequest(t, c.method, base+c.path, c.cred, c.body)
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s over %s: %v", c.method, c.path, name, err)
			}
			resp.Body.Close()
			if resp.Proto != name {
				t.Errorf("%s: spoke %s", name, resp.Proto)
			}
			if got := resp.Header.Get(proxy.HeaderErrorCode); got != c.code {
				t.Errorf("%s %s over %s: code %q, want %q", c.method, c.path, name, got, c.code)
			}
			if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
				t.Errorf("%s: Strict-Transport-Security %q", name, resp.Header.Get("Strict-Transport-Security"))
			}
		}
	}
	if last := up.MustLast(t); last.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", last.Header.Get("X-Forwarded-Proto"))
	}
}

// TestE2EH2C: with TSWGATE_H2C a load balancer may speak HTTP/2 in clear.
func TestE2EH2C(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_H2C=true")
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(
		MustNewRequest(t, "GET", g.URL+"/v2/Instance?ProjectId=43", owner.Token, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.Header.Get(proxy.HeaderErrorCode) != "project_mismatch" {
		t.Fatalf("%s %s %q", resp.Proto, resp.Status, resp.Header.Get(proxy.HeaderErrorCode))
	}
}

// receiver records verified webhook deliveries.
type receiver struct {
	mu     sync.Mutex
	secret string
	types  []string
	got    chan string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	rc.got <- ev.Type
}

// await returns when the receiver got an event of type typ.
func (rc *receiver) await(t *testing.T, typ string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case got := <-rc.got:
			if got == typ {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event within 20s", typ)
		}
	}
}

// TestE2EWebhooksAndPublicRevoke: the operator's endpoint gets signed
// events of token changes; a token revoked by its value through the
// public endpoint stops working and raises token.leaked.
func TestE2EWebhooksAndPublicRevoke(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	rc := &receiver{got: make(chan string, 64)}
	srv := &http.Server{Handler: rc}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hooks := &webhookapi.Client{API: g.Admin}
	ep, err := hooks.Create(context.Background(), webhookapi.CreateRequest{URL: "http://" + ln.Addr().String() + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.secret = ep.Secret
	rc.mu.Unlock()

	tok := g.MustCreateToken(t, testProject, "owner", "leaky")
	rc.await(t, webhook.TypeTokenCreated)

	body, _ := json.Marshal(map[string]any{"credentials": []string{tok.Token}})
	req, _ := http.NewRequest("POST", g.URL+"/tswgate/v1/credentials/revoke", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp := MustDo(t, g.HTTP, req)
	if resp.Status != http.StatusOK && resp.Status != http.StatusAccepted {
		t.Fatalf("revoke: %s", resp)
	}
	rc.await(t, webhook.TypeTokenLeaked)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil), auth.CodeTokenRevoked)
}

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ops CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &testCA{cert: cert, key: key, file: file}
}

// client returns a TLS client certificate signed by the CA.
func (ca *testCA) client(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestE2EAdminMTLS: the admin listener may require client certificates,
// in addition to the admin key or instead of it.
func TestE2EAdminMTLS(t *testing.T) {
	certPath, keyPath, pool := writeCert(t)
	ca := newTestCA(t)
	up := MustStartUpstream(t, nil)
	get := func(t *testing.T, addr string, cert *tls.Certificate, key string) (int, error) {
		t.Helper()
		conf := &tls.Config{RootCAs: pool}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
		req, _ := http.NewRequest("GET", "https://"+addr+"/v1/tokens?project_id=42", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	good := ca.client(t, "ops-laptop")
	for _, mode := range []string{"with_key", "instead_of_key"} {
		t.Run(mode, func(t *testing.T) {
			g := MustStartGateway(t, up.URL, "TSWGATE_TLS_CERT_FILE="+certPath, "TSWGATE_TLS_KEY_FILE="+keyPath,
				"TSWGATE_ADMIN_MTLS="+mode, "TSWGATE_ADMIN_CLIENT_CA="+ca.file)
			addr := g.Addr("admin")
			if _, err := get(t, addr, nil, g.AdminKey()); err == nil {
				t.Error("a client without a certificate was served")
			}
			other := newTestCA(t).client(t, "stranger")
			if _, err := get(t, addr, &other, g.AdminKey()); err == nil {
				t.Error("a certificate of another CA was accepted")
			}
			if code, err := get(t, addr, &good, g.AdminKey()); err != nil || code != 200 {
				t.Errorf("certificate and key: %d, %v", code, err)
			}
			code, err := get(t, addr, &good, "")
			want := map[string]int{"with_key": 401, "instead_of_key": 200}[mode]
			if err != nil || code != want {
				t.Errorf("certificate alone: %d, %v; want %d", code, err, want)
			}
		})
	}
}

// TestE2EAssertionKeySharedOnRedis: replicas on one Redis with no key
// files share one assertion key, stored sealed (not readable from Redis).
func TestE2EAssertionKeySharedOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a, b := MustStartGateway(t, up.URL, redisEnv(srv)...), MustStartGateway(t, up.URL, redisEnv(srv)...)
	jwks := func(g *testGateway) string {
		r := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.URL+"/.well-known/jwks.json", "", nil))
		if r.Status != 200 {
			t.Fatalf("JWKS: %s", r)
		}
		return string(r.Body)
	}
	if ja, jb := jwks(a), jwks(b); ja != jb {
		t.Fatalf("the replicas publish different keys:\n%s\n%s", ja, jb)
	}
	keys, err := identity.ParseJWKS([]byte(jwks(a)))
	if err != nil {
		t.Fatal(err)
	}
	owner := a.MustCreateToken(t, testProject, "owner", "shared")
	MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance", owner.Token, nil))
	if _, err := identity.Verify(up.MustLast(t).Header.Get(proxy.HeaderAssertion), keys, "tswgate", up.URL, time.Now(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	raw, err := srv.Client(t).Get(context.Background(), "tswgate:assertion:key:v1").Bytes()
	if err != nil || bytes.Contains(raw, []byte("PRIVATE KEY")) || len(raw) < 100 {
		t.Fatalf("the key in Redis: %d bytes, %v (it must be sealed)", len(raw), err)
	}
}

// TestE2EUpstreamMTLS: toward an HTTPS API that requires a client
// certificate, the gateway verifies the API's certificate against the
// configured CA bundle and presents its own.
func TestE2EUpstreamMTLS(t *testing.T) {
	certPath, keyPath, _ := writeCert(t) // the API's server certificate, self-signed
	ca := newTestCA(t)                   // the CA the API trusts for clients
	client := ca.client(t, "tswgate")
	dir := t.TempDir()
	clientCert, clientKey := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	kder, _ := x509.MarshalPKCS8PrivateKey(client.PrivateKey)
	os.WriteFile(clientCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: client.Certificate[0]}), 0o600)
	os.WriteFile(clientKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	serverPair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(ca.cert)
	var mu sync.Mutex
	var seen string
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.TLS.PeerCertificates[0].Subject.CommonName
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true}`)
	}))
	api.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	api.StartTLS()
	defer api.Close()
	apiURL := "https://" + api.Listener.Addr().String()

	g := MustStartGateway(t, apiURL, "TSWGATE_UPSTREAM_CA_FILE="+certPath,
		"TSWGATE_UPSTREAM_CLIENT_CERT_FILE="+clientCert, "TSWGATE_UPSTREAM_CLIENT_KEY_FILE="+clientKey)
	owner := g.MustCreateToken(t, testProject, "owner", "mtls")
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", owner.Token, nil))
	mu.Lock()
	defer mu.Unlock()
	if seen != "tswgate" {
		t.Fatalf("the API saw client certificate %q", seen)
	}

	// Without the CA bundle the API's certificate is not trusted: 502.
	g2 := MustStartGateway(t, apiURL)
	owner2 := g2.MustCreateToken(t, testProject, "owner", "untrusted")
	if r := g2.MustCall(t, "GET", "/v2/Instance", owner2.Token, nil); r.Status != http.StatusBadGateway {
		t.Fatalf("an untrusted upstream certificate: %s", r)
	}
}
