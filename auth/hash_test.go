package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
)

var (
	testPepper    = []byte("0123456789abcdef0123456789abcdef-current")
	testOldPepper = []byte("0123456789abcdef0123456789abcdef-previous")
)

func TestHashIsHMACSHA256(t *testing.T) {
	for _, key := range [][]byte{testPepper, []byte(strings.Repeat("k", 100))} {
		h, err := NewHasher(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"", "tsw_x:tswsk_y", strings.Repeat("m", maxMAC), strings.Repeat("m", maxMAC+1)} {
			got, _ := h.Hash(msg)
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(msg))
			if want := mac.Sum(nil); string(got[:]) != string(want) {
				t.Fatalf("key len %d, msg len %d: hash differs from crypto/hmac", len(key), len(msg))
			}
		}
	}
}

func TestVerifyAcrossPepperRotation(t *testing.T) {
	_, cred := mustCredential(t)
	old, err := NewHasher(testOldPepper)
	if err != nil {
		t.Fatal(err)
	}
	sum, oldID := old.Hash(cred)

	rotated, err := NewHasher(testPepper, testOldPepper)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.Verify(cred, &sum, oldID) {
		t.Fatal("a token hashed with the old pepper no longer verifies after rotation")
	}
	if rotated.CurrentID() == oldID || len(rotated.PepperIDs()) != 2 || rotated.PepperIDs()[0] != rotated.CurrentID() {
		t.Fatalf("pepper ids: current %s, all %v", rotated.CurrentID(), rotated.PepperIDs())
	}
	_, other := mustCredential(t)
	if rotated.Verify(other, &sum, oldID) {
		t.Fatal("another credential verified against the hash")
	}

	dropped, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	if dropped.Verify(cred, &sum, oldID) {
		t.Fatal("a hash under a dropped pepper still verifies")
	}
}

func TestNewHasherRejectsShortPepper(t *testing.T) {
	if _, err := NewHasher([]byte("short")); err == nil {
		t.Fatal("short current pepper accepted")
	}
	if _, err := NewHasher(testPepper, []byte("short")); err == nil || !strings.Contains(err.Error(), "old pepper 1") {
		t.Fatalf("short old pepper: err = %v", err)
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	h, _ := NewHasher(testPepper)
	_, cred := mustCredential(t)
	sum, id := h.Hash(cred)
	if n := testing.AllocsPerRun(100, func() { h.Verify(cred, &sum, id) }); n != 0 {
		t.Fatalf("Verify allocates %v times", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := NewHasher(testPepper)
	_, cred := mustCredential(b)
	sum, id := h.Hash(cred)
	b.ReportAllocs()
	for b.Loop() {
		if !h.Verify(cred, &sum, id) {
			b.Fatal("verify failed")
		}
	}
}

// TestMintedIDs: ids made by Hasher.NewCredential are told from guessed
// ones by whoever holds the pepper, current or old, and by nobody else.
func TestMintedIDs(t *testing.T) {
	oldPepper := []byte("an-old-pepper-0123456789abcdefghijklmnopqrstuvwxyz")
	old, err := NewHasher(oldPepper)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHasher(testPepper, oldPepper)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewHasher([]byte("another-pepper-0123456789abcdefghijklmnopqrstuvwxyz"))
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		id, cred, err := h.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidCredential(cred) || cred[:IDLen] != id || !ValidID(id) {
			t.Fatalf("minted credential %q is not a valid credential", cred)
		}
		if !h.Minted(id) || other.Minted(id) {
			t.Fatalf("%s: minted by its hasher %v, by another %v", id, h.Minted(id), other.Minted(id))
		}
		oldID, _, _ := old.NewCredential()
		if !h.Minted(oldID) {
			t.Fatalf("%s, minted with an old pepper, is not recognised", oldID)
		}
	}
	guessed := 0
	for range 20000 {
		id, _, _ := NewCredential()
		if h.Minted(id) {
			guessed++
		}
	}
	if guessed > 1 {
		t.Fatalf("%d of 20000 random ids pass as minted (expected about 2e-5)", guessed)
	}
	for _, bad := range []string{"", "tsw_", "tsw_short", "nope_00000000000000000000"} {
		if h.Minted(bad) {
			t.Errorf("Minted(%q)", bad)
		}
	}
}
