package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/secretscan"
)

// githubKey is a stand-in for GitHub's secret scanning signing key, with
// its published key list written to a file.
type githubKey struct {
	id   string
	key  *ecdsa.PrivateKey
	file string
}

func newGitHubKey(t *testing.T) *githubKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	g := &githubKey{id: "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a", key: k,
		file: filepath.Join(t.TempDir(), "github-keys.json")}
	list, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": g.id, "is_current": true,
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}}})
	if err := os.WriteFile(g.file, list, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// report returns a signed secret scanning report of creds, as GitHub
// posts it.
func (g *githubKey) report(t *testing.T, url string, creds ...string) *http.Request {
	t.Helper()
	var rs []secretscan.Report
	for _, c := range creds {
		rs = append(rs, secretscan.Report{Token: c, Type: "tswgate_api_token", URL: "https://github.com/octo/app/blob/1/.env", Source: "content"})
	}
	body, _ := json.Marshal(rs)
	d := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, g.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(secretscan.HeaderKeyIdentifier, g.id)
	req.Header.Set(secretscan.HeaderKeySignature, base64.StdEncoding.EncodeToString(sig))
	return req
}

// TestE2ESecretScanningAcrossReplicas: a signed report to one replica
// revokes the token on another that has it cached; a report with a forged
// signature revokes nothing. It logs the time from the report to the
// other replica's first token_revoked, over 100 reports.
func TestE2ESecretScanningAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	gh := newGitHubKey(t)
	env := redisEnv(srv, "TSWGATE_SECRET_SCANNING_KEYS="+gh.file, "TSWGATE_CACHE_TTL=1m")
	a, b := MustStartGateway(t, up.URL, env...), MustStartGateway(t, up.URL, env...)
	reportURL := a.URL + "/tswgate/v1/secret-scanning/github"

	// A forged signature: refused, and the token still works.
	tok := a.MustCreateToken(t, testProject, "owner", "forged")
	forger := &githubKey{id: gh.id, key: newGitHubKey(t).key}
	if r := MustDo(t, a.HTTP, forger.report(t, reportURL, tok.Token)); r.Status == http.StatusOK {
		t.Fatalf("a forged report was accepted: %s", r)
	}
	MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))

	const n = 100
	lags := make([]time.Duration, 0, n)
	for i := range n {
		tok := a.MustCreateToken(t, testProject, "owner", "leaked")
		MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)) // cached on b
		start := time.Now()
		if r := MustDo(t, a.HTTP, gh.report(t, reportURL, tok.Token)); r.Status != http.StatusOK ||
			!bytes.Contains(r.Body, []byte(`"true_positive"`)) {
			t.Fatalf("report %d: %s", i, r)
		}
		for deadline := start.Add(10 * time.Second); ; {
			r := b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
			if r.Header.Get("X-Tsw-Error-Code") == auth.CodeTokenRevoked.String() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("report %d: the other replica still answers %s", i, r)
			}
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	t.Logf("report to revoked on the other replica, %d reports: p50 %v, p99 %v, max %v",
		n, lags[n/2], lags[n*99/100-1], lags[n-1])
}
