package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/proxy"
)

// TestReadOrCreateSecret: a missing secret file is created once, private,
// and read back the same; one too short is refused with the fix.
func TestReadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "admin.key")
	s, created, err := readOrCreateSecret(path)
	if err != nil || !created || len(s) != 64 {
		t.Fatalf("first read: %q, created %v, %v", s, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	again, created, err := readOrCreateSecret(path)
	if err != nil || created || again != s {
		t.Fatalf("second read: %q, created %v, %v; want the same secret", again, created, err)
	}
	short := filepath.Join(t.TempDir(), "pepper")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readOrCreateSecret(short); err == nil || !strings.Contains(err.Error(), "delete it to have a new one made") {
		t.Errorf("short secret: %v", err)
	}
}

// TestNoGuard: with the failed-authentication limit off, the guard never
// blocks and has nothing to sweep.
func TestNoGuard(t *testing.T) {
	var g authGuard = noGuard{}
	now := time.Now()
	for range 100 {
		g.Failed(netipLoopback, now)
	}
	if _, blocked := g.Blocked(netipLoopback, now); blocked || g.Sweep(now) != 0 {
		t.Error("the disabled guard blocks or keeps state")
	}
}

// TestRouting: /tswgate/… goes to the token API, the console prefix to
// the console (when enabled), everything else to the proxy unchanged.
func TestRouting(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Handler", name) })
	}
	for _, enabled := range []bool{true, false} {
		h := withSelfService(withConsole(enabled, PublicConsolePrefix, named("api")), named("proxy"))
		for path, want := range map[string]string{
			"/v2/Instance":          "proxy",
			"/tswgate":              "proxy",
			"/tswgateway/x":         "proxy",
			"/tswgate/v1/tokens":    "api",
			"/tswgate/console/":     map[bool]string{true: "", false: "api"}[enabled],
			"/tswgate/consolefoo/x": "api",
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if got := rec.Header().Get("X-Handler"); got != want {
				t.Errorf("console %v: %s went to %q, want %q", enabled, path, got, want)
			}
		}
	}
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// TestTrustedProxiesMapped: a load balancer's range written IPv4-mapped
// (::ffff:10.0.0.0/104) is its IPv4 range, as clients' addresses are
// compared as IPv4: written either way, X-Forwarded-For from it is
// believed.
func TestTrustedProxiesMapped(t *testing.T) {
	trusted, err := trustedProxies([]string{"::ffff:10.0.0.0/104", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	if len(trusted) != 2 || trusted[0] != want[0] || trusted[1] != want[1] {
		t.Errorf("trusted %v, want %v", trusted, want)
	}
	for _, peer := range []string{"10.1.2.3:5000", "[::ffff:10.1.2.3]:5000"} {
		if got := proxy.ClientAddr(peer, []string{"203.0.113.7"}, trusted); got != netip.MustParseAddr("203.0.113.7") {
			t.Errorf("client behind %s: %v, want 203.0.113.7", peer, got)
		}
	}
}

// TestKeySourceFileChecked: a key file that cannot be read or holds no
// key list stops the start, naming the setting; a good one, or a URL
// (which may be unreachable for now), does not.
func TestKeySourceFileChecked(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	list, err := json.Marshal(map[string]any{"public_keys": []map[string]string{{
		"key_identifier": "k1", "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(good, list, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src  string
		want string
	}{
		{good, ""},
		{"https://api.github.com/meta/public_keys/secret_scanning", ""},
		{filepath.Join(dir, "missing.json"), "TSWGATE_SECRET_SCANNING_KEYS: "},
		{bad, "TSWGATE_SECRET_SCANNING_KEYS: "},
	} {
		err := checkKeySource(tc.src)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("checkKeySource(%s) = %v, want %q", tc.src, err, tc.want)
		}
	}
}
