package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// GitHubKeysURL is where GitHub publishes the keys that sign its secret
// scanning reports.
const GitHubKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// Key errors.
var (
	// ErrUnknownKey means no published key has the identifier.
	ErrUnknownKey = errors.New("secretscan: unknown public key identifier")
	// ErrKeysUnavailable means no key list could be loaded.
	ErrKeysUnavailable = errors.New("secretscan: public keys unavailable")
)

// maxKeyList bounds a key list, in bytes.
const maxKeyList = 1 << 20

// KeySource loads a key list in GitHub's format:
// {"public_keys":[{"key_identifier":"…","key":"-----BEGIN PUBLIC KEY-----…","is_current":true}]}.
type KeySource func(ctx context.Context) ([]byte, error)

// FileKeys reads the key list from a file.
func FileKeys(path string) KeySource {
	return func(context.Context) ([]byte, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading the key list: %w", err)
		}
		return data, nil
	}
}

// URLKeys fetches the key list from url (GitHubKeysURL in production)
// with client (http.DefaultClient when nil).
func URLKeys(client *http.Client, url string) KeySource {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, fmt.Errorf("key list url: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching the key list: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching the key list: %s answered %d", url, resp.StatusCode)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyList+1))
		if err != nil {
			return nil, fmt.Errorf("reading the key list: %w", err)
		}
		if len(data) > maxKeyList {
			return nil, fmt.Errorf("the key list is over %d bytes", maxKeyList)
		}
		return data, nil
	}
}

// ParseKeyList returns the ECDSA P-256 keys of a key list by identifier.
// Keys that are not P-256 public keys are skipped; a list without any is
// an error. Every listed key is accepted, current or not (GitHub lists
// the keys it may still sign with).
func ParseKeyList(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var list struct {
		PublicKeys []struct {
			ID  string `json:"key_identifier"`
			Key string `json:"key"`
		} `json:"public_keys"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("secretscan: key list: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(list.PublicKeys))
	var errs []error
	for _, k := range list.PublicKeys {
		pub, err := parseKey(k.Key)
		if err != nil || k.ID == "" {
			errs = append(errs, fmt.Errorf("key %q: %w", k.ID, err))
			continue
		}
		keys[k.ID] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("secretscan: no usable key in the key list: %w", errors.Join(errs...))
	}
	return keys, nil
}

func parseKey(text string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ec, nil
}

// Defaults of KeySetOptions.
const (
	DefaultMinRefresh = time.Minute
	DefaultMaxAge     = time.Hour
	fetchTimeout      = 10 * time.Second
)

// KeySetOptions configure a KeySet. Source is required.
type KeySetOptions struct {
	Source KeySource
	// MinRefresh is the least time between two loads: an unknown
	// identifier reloads the list at most that often, so forged
	// identifiers cannot make the gateway hammer the key URL.
	// DefaultMinRefresh when zero.
	MinRefresh time.Duration
	// MaxAge is how long a loaded list is used before it is reloaded (a
	// failed reload keeps it). DefaultMaxAge when zero.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives a line per failed load; nil discards them.
	Logger *slog.Logger
}

// KeySet caches the verification keys and reloads them when they are old
// or an unknown identifier comes, at most once per MinRefresh (concurrent
// callers share one load). Safe for concurrent use.
type KeySet struct {
	opts KeySetOptions
	sf   singleflight.Group

	mu      sync.Mutex
	keys    map[string]*ecdsa.PublicKey
	loaded  time.Time // last successful load
	tried   time.Time // last load attempt
	lastErr error
}

// NewKeySet returns a KeySet; it loads nothing until the first Key.
func NewKeySet(opts KeySetOptions) (*KeySet, error) {
	if opts.Source == nil {
		return nil, errors.New("secretscan: KeySetOptions.Source is required")
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &KeySet{opts: opts}, nil
}

// Key returns the key of id, loading the list when it lacks id (within
// MinRefresh). A key of a list older than MaxAge is returned at once and
// the list reloaded in the background: a slow key URL holds no report
// signed with a known key. It returns ErrUnknownKey or
// ErrKeysUnavailable.
func (k *KeySet) Key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	if key, fresh := k.lookup(id); key != nil {
		if !fresh {
			k.sf.DoChan("load", k.loadIfDue) // its buffered answer is not awaited
		}
		return key, nil
	}
	// Callers that come while a load runs wait for it; the load itself
	// happens at most once per MinRefresh.
	_, _, _ = k.sf.Do("load", k.loadIfDue)
	k.mu.Lock()
	defer k.mu.Unlock()
	if key := k.keys[id]; key != nil {
		return key, nil
	}
	if len(k.keys) == 0 && k.lastErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, k.lastErr)
	}
	if len(k.keys) == 0 {
		return nil, ErrKeysUnavailable
	}
	return nil, ErrUnknownKey
}

// lookup returns the cached key of id, and whether the list is fresh.
func (k *KeySet) lookup(id string) (key *ecdsa.PublicKey, fresh bool) {
	now := k.opts.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[id], !k.loaded.IsZero() && now.Sub(k.loaded) < k.opts.MaxAge
}

// loadIfDue loads the list unless a load was tried within MinRefresh; it
// is run under the single flight "load". The load does not end with the
// call that asked for it.
func (k *KeySet) loadIfDue() (any, error) {
	if k.mayLoad() {
		k.load(context.Background())
	}
	return nil, nil
}

// mayLoad reports whether a load may be tried now.
func (k *KeySet) mayLoad() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tried.IsZero() || k.opts.Now().Sub(k.tried) >= k.opts.MinRefresh
}

// load loads the list and, when it parses, replaces the cached keys.
func (k *KeySet) load(ctx context.Context) {
	k.mu.Lock()
	k.tried = k.opts.Now()
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	data, err := k.opts.Source(ctx)
	var keys map[string]*ecdsa.PublicKey
	if err == nil {
		keys, err = ParseKeyList(data)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.lastErr = err
		k.opts.Logger.Warn("secretscan: loading the public keys failed; keeping the ones loaded before", "err", err, "keys", len(k.keys))
		return
	}
	k.keys, k.loaded, k.lastErr = keys, k.opts.Now(), nil
}
