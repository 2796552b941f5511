package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedSecretsArePrivateAndKept checks the embedded default: the
// first start creates the pepper and the admin key, readable by the owner
// only; a restart on the same data dir reuses them, so the tokens made
// before still verify and the admin key still works.
func TestGeneratedSecretsArePrivateAndKept(t *testing.T) {
	dir := t.TempDir()
	up := MustStartUpstream(t, nil)
	first := MustStartGateway(t, up.URL, "TSWGATE_DATA_DIR="+dir)
	tok := first.MustCreateToken(t, testProject, "owner", "survivor")
	for _, name := range []string{"pepper", "admin.key", "tokens.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, perm)
		}
	}
	if first.AdminKeyPath != filepath.Join(dir, "admin.key") {
		t.Errorf("AdminKeyPath = %q", first.AdminKeyPath)
	}
	pepperID := first.Hasher().CurrentID()
	if err := first.ShutdownOnce(t.Context()); err != nil {
		t.Fatal(err)
	}

	second := MustStartGateway(t, up.URL, "TSWGATE_DATA_DIR="+dir)
	if second.Hasher().CurrentID() != pepperID || second.AdminKey() != first.AdminKey() {
		t.Fatal("a restart on the same data dir made new secrets")
	}
	MustBeProxied(t, second.MustCall(t, "GET", "/v2/Instance?ProjectId=42", tok.Token, nil))
	if _, err := second.Admin.Get(t.Context(), tok.ID); err != nil {
		t.Fatalf("the admin key no longer works after a restart: %v", err)
	}
}
