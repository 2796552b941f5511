package gateway

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/identity"
	"github.com/tswgate/tswgate/proxy"
)

// The identity assertion's key shared by replicas through Redis, when no
// key files are given: the first replica makes one and stores it sealed
// with a key derived from the pepper (AES-256-GCM), which every replica
// has and Redis does not; the others read it. Someone who reads Redis
// alone cannot sign assertions.

// sharedAsserter returns the asserter and JWKS of the replicas' shared
// key. Redis may be down at start (the gateway starts anyway): until the
// key is read, requests go without an assertion and the JWKS answers 503,
// and a background loop keeps trying.
func (g *Gateway) sharedAsserter(upstream *url.URL) (proxy.Asserter, http.Handler, error) {
	l := &lazyAsserter{}
	load := func(ctx context.Context) error {
		keys, err := g.sharedAssertionKey(ctx)
		if err != nil {
			return err
		}
		s, err := g.newSigner(keys, upstream)
		if err != nil {
			return err
		}
		l.keys.Store(keys)
		l.signer.Store(s)
		return nil
	}
	err := load(context.Background())
	if err == nil {
		return l, l, nil
	}
	if errors.Is(err, errSealedElsewhere) {
		return nil, nil, fmt.Errorf("TSWGATE_ASSERTION: %w", err)
	}
	g.log.Warn("no identity assertion until its key is read from Redis; retrying", slog.String("err", err.Error()))
	g.assertionLoader = func(ctx context.Context) {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for load(ctx) != nil {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		g.log.Info("identity assertion key read from Redis")
	}
	return l, l, nil
}

// lazyAsserter signs once its key is loaded.
type lazyAsserter struct {
	signer atomic.Pointer[identity.Signer]
	keys   atomic.Pointer[identity.KeySet]
}

// Assertion returns "" (no assertion) until the key is loaded.
func (l *lazyAsserter) Assertion(sub identity.Subject, now time.Time) (string, error) {
	if s := l.signer.Load(); s != nil {
		return s.Assertion(sub, now)
	}
	return "", nil
}

// ServeHTTP serves the JWKS, or 503 until the key is loaded.
func (l *lazyAsserter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ks := l.keys.Load()
	if ks == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the signing key is not loaded yet", http.StatusServiceUnavailable)
		return
	}
	ks.ServeHTTP(w, r)
}

// errSealedElsewhere: the key in Redis was sealed with another pepper.
var errSealedElsewhere = errors.New("sealed with another TSWGATE_PEPPER")

// sharedKeyName is the Redis key of the sealed assertion key.
func (g *Gateway) sharedKeyName() string { return g.cfg.RedisPrefix + "assertion:key:v1" }

// sharedAssertionKey returns the key set of the replicas' shared key,
// making and storing it if there is none yet.
func (g *Gateway) sharedAssertionKey(ctx context.Context) (*identity.KeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, max(g.cfg.StoreTimeout, 2e9))
	defer cancel()
	sealed, err := g.rdb.Get(ctx, g.sharedKeyName()).Bytes()
	if errors.Is(err, redis.Nil) {
		sealed, err = g.storeSharedKey(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the assertion key from Redis: %w", err)
	}
	for _, pepper := range append([]string{g.cfg.Pepper}, g.cfg.OldPeppers...) {
		if pemKey, err := unseal(pepper, sealed); err == nil {
			return identity.KeySetFromPEM(pemKey)
		}
	}
	return nil, fmt.Errorf("the assertion key in Redis (%s) was %w: "+
		"list that pepper in TSWGATE_OLD_PEPPERS, or delete the key to make a new one", g.sharedKeyName(), errSealedElsewhere)
}

// storeSharedKey makes a key and stores it sealed, unless another
// replica stored one first, and returns what Redis holds.
func (g *Gateway) storeSharedKey(ctx context.Context) ([]byte, error) {
	pemKey, err := identity.GenerateKeyPEM()
	if err != nil {
		return nil, err
	}
	sealed, err := seal(g.cfg.Pepper, pemKey)
	if err != nil {
		return nil, err
	}
	if err := g.rdb.SetNX(ctx, g.sharedKeyName(), sealed, 0).Err(); err != nil {
		return nil, fmt.Errorf("storing the assertion key in Redis: %w", err)
	}
	return g.rdb.Get(ctx, g.sharedKeyName()).Bytes()
}

// sealKey derives the sealing key from the pepper.
func sealKey(pepper string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(pepper))
	mac.Write([]byte("tswgate identity assertion key v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(pepper string, plain []byte) ([]byte, error) {
	aead, err := sealKey(pepper)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, nil), nil
}

func unseal(pepper string, sealed []byte) ([]byte, error) {
	aead, err := sealKey(pepper)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed key too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
}
