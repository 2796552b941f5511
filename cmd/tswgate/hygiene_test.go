package main

// Suite-wide secret hygiene: every credential the end-to-end tests create
// is remembered, everything the gateways log, every refusal or error body
// and every /metrics page they serve is kept, and once all tests have run
// TestMain fails the run if any secret appears in any of it.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

var hygiene struct {
	mu      sync.Mutex
	secrets map[string]bool
	output  strings.Builder
}

// rememberSecret records a credential the suite created.
func rememberSecret(cred string) {
	hygiene.mu.Lock()
	defer hygiene.mu.Unlock()
	if hygiene.secrets == nil {
		hygiene.secrets = map[string]bool{}
	}
	hygiene.secrets[cred] = true
}

// hygieneSink is where gateways' output is copied for the final check.
type hygieneSink struct{}

func (hygieneSink) Write(p []byte) (int, error) {
	hygiene.mu.Lock()
	defer hygiene.mu.Unlock()
	return hygiene.output.Write(p)
}

// keepForHygiene copies a response body the suite received for the final
// check: refusals and errors, which must never echo a credential.
func keepForHygiene(status int, body []byte) {
	if status >= 400 {
		_, _ = hygieneSink{}.Write(body)
	}
}

// keepMetrics copies a gateway's /metrics page for the final check.
func keepMetrics(metricsURL string) {
	resp, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(hygieneSink{}, resp.Body)
}

func TestMain(m *testing.M) {
	code := m.Run()
	removeBinary()
	hygiene.mu.Lock()
	out := hygiene.output.String()
	n := len(hygiene.secrets)
	var leaked []string
	for cred := range hygiene.secrets {
		if strings.Contains(out, secretOf(cred)) {
			leaked = append(leaked, cred[:8]+"…")
		}
	}
	hygiene.mu.Unlock()
	switch {
	case len(leaked) > 0:
		fmt.Fprintf(os.Stderr, "FAIL: secret hygiene: %d of %d credentials created by the suite appear in gateway logs, error bodies or metrics: %v\n", len(leaked), n, leaked)
		code = 1
	case code == 0 && n > 0 && !testing.Short():
		fmt.Fprintf(os.Stderr, "secret hygiene: none of %d credentials appears in %d bytes of gateway logs, error bodies and metrics\n", n, len(out))
	}
	os.Exit(code)
}
