package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/internal/edge"
)

// TestCLIServeCheckFiles: serve --check reads the files the configuration
// names (certificates, keys, CA bundles), so that a path or a pair that
// would stop the gateway at start fails the check, naming the setting and
// the fix, instead of passing it.
func TestCLIServeCheckFiles(t *testing.T) {
	certA, keyA, err := edge.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := edge.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_ADMIN_ADDR=127.0.0.1:0", "TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_UPSTREAM_URL=http://127.0.0.1:1", "TSWGATE_DATA_DIR=" + t.TempDir(), "TSWGATE_LOG_LEVEL=error",
	}
	for _, tc := range []struct {
		name string
		env  []string
		want []string // in stderr; none: the check passes
	}{
		{"a valid pair", []string{"TSWGATE_TLS_CERT_FILE=" + certA, "TSWGATE_TLS_KEY_FILE=" + keyA}, nil},
		{"no certificate file", []string{"TSWGATE_TLS_CERT_FILE=" + missing, "TSWGATE_TLS_KEY_FILE=" + keyA},
			[]string{"TSWGATE_TLS_CERT_FILE", missing}},
		{"no key file", []string{"TSWGATE_TLS_CERT_FILE=" + certA, "TSWGATE_TLS_KEY_FILE=" + missing},
			[]string{"TSWGATE_TLS_KEY_FILE", missing}},
		{"a key of another certificate", []string{"TSWGATE_TLS_CERT_FILE=" + certA, "TSWGATE_TLS_KEY_FILE=" + keyB},
			[]string{"TSWGATE_TLS_KEY_FILE", "TSWGATE_TLS_CERT_FILE", "does not match"}},
		{"the certificate as the key", []string{"TSWGATE_TLS_CERT_FILE=" + certA, "TSWGATE_TLS_KEY_FILE=" + certA},
			[]string{"TSWGATE_TLS_KEY_FILE"}},
		{"an upstream client key of another certificate", []string{"TSWGATE_UPSTREAM_CLIENT_CERT_FILE=" + certA, "TSWGATE_UPSTREAM_CLIENT_KEY_FILE=" + keyB},
			[]string{"TSWGATE_UPSTREAM_CLIENT_KEY_FILE", "does not match"}},
		{"an upstream CA bundle without a certificate", []string{"TSWGATE_UPSTREAM_CA_FILE=" + notPEM},
			[]string{"TSWGATE_UPSTREAM_CA_FILE", notPEM}},
		{"no admin client CA file", []string{"TSWGATE_TLS_CERT_FILE=" + certA, "TSWGATE_TLS_KEY_FILE=" + keyA,
			"TSWGATE_ADMIN_MTLS=with_key", "TSWGATE_ADMIN_CLIENT_CA=" + missing},
			[]string{"TSWGATE_ADMIN_CLIENT_CA", missing}},
		{"no assertion key file", []string{"TSWGATE_ASSERTION_KEY_FILES=" + missing},
			[]string{"TSWGATE_ASSERTION_KEY_FILES", missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := MustRun(t, append(append([]string{}, tc.env...), base...), "serve", "--check")
			if tc.want == nil {
				if res.code != 0 {
					t.Fatalf("want the check to pass: %v", res)
				}
				return
			}
			if res.code != 1 || strings.Contains(res.stdout, "valid") {
				t.Fatalf("want exit 1 and no \"valid\": %v", res)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, res.stderr)
				}
			}
		})
	}
}
