package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// waitTimeout bounds every wait for a signal.
const waitTimeout = 30 * time.Second

// store is what the tests need of a token store.
type store interface {
	auth.Store
	Auditor
	ReadAudit(ctx context.Context, q auth.AuditQuery) (auth.AuditPage, error)
}

var prefixes atomic.Int64

func openStores(t *testing.T) map[string]func(t *testing.T) store {
	return map[string]func(t *testing.T) store{
		"file": func(t *testing.T) store {
			s, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		"redis": func(t *testing.T) store { return redisStore(t, redistest.Start(t)) },
	}
}

func redisStore(t testing.TB, srv *redistest.Server) store {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{Client: srv.Client(t), Timeout: 10 * time.Second,
		Prefix: fmt.Sprintf("sstest%d:", prefixes.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// addToken stores a fresh token of project 42 and returns it with its
// credential.
func addToken(t testing.TB, s auth.Store) (*auth.Token, string) {
	t.Helper()
	tok, cred := storetest.NewToken(t, 42, auth.RoleOwner)
	if err := s.Create(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return tok, cred
}

// withChecksum completes "tsw_<id>:tswsk_<30>" with its checksum, as
// the token format says (CRC32 IEEE, 6 base62 digits).
func withChecksum(body string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	v := crc32.ChecksumIEEE([]byte(body))
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = digits[v%62]
		v /= 62
	}
	return body + string(sum)
}

// wrongSecret is a well-formed credential of id with another secret.
func wrongSecret(id string) string {
	return withChecksum(id + ":tswsk_" + strings.Repeat("x", 30))
}

// signer is a key pair as GitHub holds one, and its published list.
type signer struct {
	id  string
	key *ecdsa.PrivateKey
}

func newSigner(t testing.TB, id string) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{id: id, key: k}
}

func (s *signer) sign(t testing.TB, body []byte) string {
	t.Helper()
	d := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// keyList is the JSON GitHub publishes for signers.
func keyList(t testing.TB, signers ...*signer) []byte {
	t.Helper()
	type entry struct {
		ID      string `json:"key_identifier"`
		Key     string `json:"key"`
		Current bool   `json:"is_current"`
	}
	var list struct {
		Keys []entry `json:"public_keys"`
	}
	for i, s := range signers {
		der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		list.Keys = append(list.Keys, entry{ID: s.id, Key: pemText, Current: i == len(signers)-1})
	}
	data, _ := json.Marshal(list)
	return data
}

// keyServer serves a key list over HTTP and counts its fetches.
type keyServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	list    []byte
	down    bool
	fetches atomic.Int64
}

func newKeyServer(t testing.TB, signers ...*signer) *keyServer {
	t.Helper()
	ks := &keyServer{list: keyList(t, signers...)}
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if ks.down {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ks.list)
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keyServer) set(list []byte, down bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.list, ks.down = list, down
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is an Observer and an OnLeak that remember everything.
type recorder struct {
	mu      sync.Mutex
	refused map[string]int
	leaks   []Leak
	checked chan Label
	dropped chan struct{}
}

func newRecorder() *recorder {
	return &recorder{refused: map[string]int{}, checked: make(chan Label, 100000), dropped: make(chan struct{}, 100)}
}

func (r *recorder) Refused(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused[code]++
}

func (r *recorder) Checked(_ string, l Label)   { r.checked <- l }
func (r *recorder) Answered(int, time.Duration) {}
func (r *recorder) Dropped()                    { r.dropped <- struct{}{} }
func (r *recorder) onLeak(_ context.Context, l Leak) {
	r.mu.Lock()
	r.leaks = append(r.leaks, l)
	r.mu.Unlock()
}

func (r *recorder) refusals(code string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[code]
}

func (r *recorder) leaked() []Leak {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Leak(nil), r.leaks...)
}

// waitChecked waits for n decided credentials.
func (r *recorder) waitChecked(t *testing.T, n int) []Label {
	t.Helper()
	var out []Label
	timeout := time.After(waitTimeout)
	for len(out) < n {
		select {
		case l := <-r.checked:
			out = append(out, l)
		case <-timeout:
			t.Fatalf("%d credentials decided, want %d", len(out), n)
		}
	}
	return out
}

// baseOptions wires a store and a hasher as the gateway would.
func baseOptions(t testing.TB, s store, rec *recorder) Options {
	return Options{Tokens: s, Revoker: s, Verifier: storetest.NewHasher(t), Audit: s,
		Observer: rec, OnLeak: rec.onLeak}
}

// audit returns project 42's trail.
func audit(t *testing.T, s store) []auth.AuditEvent {
	t.Helper()
	page, err := s.ReadAudit(context.Background(), auth.AuditQuery{ProjectID: 42, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// revoked reports whether the store holds id as a tombstone.
func revoked(t testing.TB, s auth.Store, id string) bool {
	t.Helper()
	tok, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Revoked()
}
