package secretscan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeySetReloadsBounded(t *testing.T) {
	gh := newSigner(t, "k1")
	ks := newKeyServer(t, gh)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	set, err := NewKeySet(KeySetOptions{Source: URLKeys(ks.srv.Client(), ks.srv.URL), Now: clock.Now,
		MinRefresh: time.Minute, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := set.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	// Forged identifiers: at most one reload per MinRefresh.
	for range 50 {
		if _, err := set.Key(ctx, "forged"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown id: %v", err)
		}
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Errorf("%d fetches within MinRefresh, want 1", n)
	}
	// GitHub rotates its key: a report signed with the new one reloads.
	next := newSigner(t, "k2")
	ks.set(keyList(t, gh, next), false)
	clock.Advance(time.Minute)
	if _, err := set.Key(ctx, "k2"); err != nil {
		t.Fatalf("new key after a reload: %v", err)
	}
	if _, err := set.Key(ctx, "k1"); err != nil {
		t.Errorf("the old key, still listed: %v", err)
	}
	if n := ks.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// An old list is reloaded; a failed reload keeps the keys.
	ks.set(nil, true)
	clock.Advance(2 * time.Hour)
	if _, err := set.Key(ctx, "k2"); err != nil {
		t.Errorf("with the key URL down, a known key: %v", err)
	}
	if _, err := set.Key(ctx, "forged"); !errors.Is(err, ErrUnknownKey) { // waits for the background reload
		t.Errorf("unknown id with the key URL down: %v", err)
	}
	if n := ks.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (reload of an old list)", n)
	}
}

func TestKeySetConcurrentCallersShareALoad(t *testing.T) {
	gh := newSigner(t, "k1")
	ks := newKeyServer(t, gh)
	set, _ := NewKeySet(KeySetOptions{Source: URLKeys(ks.srv.Client(), ks.srv.URL)})
	errs := make(chan error, 20)
	for range 20 {
		go func() { _, err := set.Key(context.Background(), "k1"); errs <- err }()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 20 concurrent first calls, want 1", n)
	}
}

func TestFileKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	gh := newSigner(t, "k1")
	if err := os.WriteFile(path, keyList(t, gh), 0o600); err != nil {
		t.Fatal(err)
	}
	set, _ := NewKeySet(KeySetOptions{Source: FileKeys(path)})
	pub, err := set.Key(context.Background(), "k1")
	if err != nil || !pub.Equal(&gh.key.PublicKey) {
		t.Errorf("Key = %v, %v", pub, err)
	}
	missing, _ := NewKeySet(KeySetOptions{Source: FileKeys(path + ".missing")})
	if _, err := missing.Key(context.Background(), "k1"); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseKeyList(t *testing.T) {
	gh := newSigner(t, "k1")
	for name, data := range map[string]string{
		"not json":  "nope",
		"no keys":   `{"public_keys":[]}`,
		"not pem":   `{"public_keys":[{"key_identifier":"a","key":"abc"}]}`,
		"rsa key":   `{"public_keys":[{"key_identifier":"a","key":"-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL+N1DO1vPZ3z2D6vkmQxg4Nn+IRc0/2\nmnN1ZqeTC/W5GXS+iTfsg9VwwF4zzPhAR0z2j8q5ZQG9VlCbgUCsR9UCAwEAAQ==\n-----END PUBLIC KEY-----\n"}]}`,
		"no key id": string(keyList(t, &signer{id: "", key: gh.key})),
	} {
		if _, err := ParseKeyList([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	keys, err := ParseKeyList(keyList(t, gh, newSigner(t, "k2")))
	if err != nil || len(keys) != 2 {
		t.Errorf("ParseKeyList = %d keys, %v", len(keys), err)
	}
}

// A report signed with a key the set has must not wait for the reload of
// an old list: with GitHub's key URL slow or unreachable, every reload
// would hold the reports of that moment up to the fetch timeout, past
// GitHub's own. The old list serves while it reloads in the background.
func TestKeySetOldListServesWhileReloading(t *testing.T) {
	gh := newSigner(t, "k1")
	list := keyList(t, gh)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	var loads int
	src := func(ctx context.Context) ([]byte, error) {
		loads++ // under the set's single flight
		if loads > 1 {
			entered <- struct{}{}
			<-gate
		}
		return list, nil
	}
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	set, _ := NewKeySet(KeySetOptions{Source: src, Now: clock.Now, MaxAge: time.Hour})
	ctx := context.Background()
	if _, err := set.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	done := make(chan error, 1)
	go func() { _, err := set.Key(ctx, "k1"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(gate)
		t.Fatal("a known key waited for the reload of an old list")
	}
	<-entered // the reload did start
	close(gate)
	if _, err := set.Key(ctx, "forged"); !errors.Is(err, ErrUnknownKey) { // waits for that reload
		t.Fatalf("unknown id: %v", err)
	}
	if loads != 2 {
		t.Errorf("%d loads, want 2", loads)
	}
}
