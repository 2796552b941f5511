package auth

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateRateLimit(t *testing.T) {
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rate  float64
		burst int
		want  string // "" for valid
	}{
		{0, 0, ""},
		{0.5, 0, ""},
		{10, 20, ""},
		{-1, 0, "rate limit"},
		{math.NaN(), 0, "rate limit"},
		{math.Inf(1), 0, "rate limit"},
		{1, -1, "rate burst"},
		{0, 5, "rate burst: set without a rate limit"},
	} {
		tok, _ := testToken(t, h, 1, RoleOwner)
		tok.RateLimit, tok.RateBurst = tc.rate, tc.burst
		err := tok.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("rate %v burst %d: %v, want valid", tc.rate, tc.burst, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("rate %v burst %d: %v, want an error about %q", tc.rate, tc.burst, err, tc.want)
		}
	}
}

func TestValidateUpdate(t *testing.T) {
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := testToken(t, h, 1, RoleOwner)
	other, _ := testToken(t, h, 2, RoleAccounting)

	ok := *old
	ok.Name, ok.Role, ok.Status = "renamed", RoleAccounting, StatusInactive
	ok.ExpiresAt, ok.RateLimit, ok.RateBurst = time.Now().Add(time.Hour), 3, 6
	if err := ValidateUpdate(old, &ok); err != nil {
		t.Errorf("a change of the mutable fields: %v", err)
	}

	bad := *old
	bad.ID, bad.ProjectID, bad.CreatedAt = other.ID, 2, old.CreatedAt.Add(time.Second)
	bad.SecretHash, bad.RevokedAt, bad.Role = other.SecretHash, time.Now(), RoleInvalid
	err = ValidateUpdate(old, &bad)
	if err == nil {
		t.Fatal("a change of every fixed field passed")
	}
	for _, want := range []string{"id:", "project id:", "created at:", "secret hash:", "revoked at:", "role:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateUpdate error does not name %q:\n%v", want, err)
		}
	}
}

func TestValidateRotatedTo(t *testing.T) {
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := testToken(t, h, 1, RoleOwner)
	next, _ := testToken(t, h, 1, RoleOwner)
	for _, tc := range []struct {
		rotatedTo string
		valid     bool
	}{
		{"", true},
		{next.ID, true},
		{tok.ID, false}, // its own successor
		{"tsw_short", false},
		{next.ID + ":tswsk_x", false},
	} {
		tok.RotatedTo = tc.rotatedTo
		if err := tok.Validate(); (err == nil) != tc.valid {
			t.Errorf("RotatedTo %q: Validate() = %v, want valid %v", tc.rotatedTo, err, tc.valid)
		}
	}
	if !(&Token{RotatedTo: next.ID}).Rotated() || (&Token{}).Rotated() {
		t.Error("Rotated() does not follow RotatedTo")
	}
}
