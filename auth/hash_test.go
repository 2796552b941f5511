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
