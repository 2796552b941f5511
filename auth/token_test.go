package auth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func mustCredential(t testing.TB) (id, cred string) {
	t.Helper()
	id, cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	return id, cred
}

func TestNewCredentialShape(t *testing.T) {
	re := regexp.MustCompile(`^` + CredentialPattern + `$`)
	seen := map[string]bool{}
	for range 200 {
		id, cred := mustCredential(t)
		if !re.MatchString(cred) {
			t.Fatalf("credential %q does not match CredentialPattern", cred)
		}
		if !strings.HasPrefix(cred, id+":") || !ValidID(id) {
			t.Fatalf("id %q is not the prefix of %q", id, cred)
		}
		if !ValidCredential(cred) {
			t.Fatalf("fresh credential %q fails its own checksum", cred)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestParseAuthorization(t *testing.T) {
	id, cred := mustCredential(t)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name    string
		header  string
		wantErr error
	}{
		{"ok", "Bearer " + cred, nil},
		{"lower-case scheme", "bearer " + cred, nil},
		{"extra spaces", "Bearer   " + cred + " ", nil},
		{"empty", "", ErrNoCredential},
		{"basic scheme", "Basic dXNlcjpwYXNz", ErrNoCredential},
		{"scheme only", "Bearer ", ErrNoCredential},
		{"bearer without space", "Bearer" + cred, ErrNoCredential},
		{"secret only", "Bearer " + cred[IDLen+1:], ErrMalformedCredential},
		{"id only", "Bearer " + id, ErrMalformedCredential},
		{"truncated", "Bearer " + cred[:len(cred)-1], ErrMalformedCredential},
		{"one char longer", "Bearer " + cred + "x", ErrMalformedCredential},
		{"typo in id", "Bearer " + flip(cred, 6), ErrMalformedCredential},
		{"typo in secret", "Bearer " + flip(cred, IDLen+10), ErrMalformedCredential},
		{"typo in checksum", "Bearer " + flip(cred, len(cred)-1), ErrMalformedCredential},
		{"wrong separator", "Bearer " + cred[:IDLen] + "." + cred[IDLen+1:], ErrMalformedCredential},
		{"non-base62", "Bearer " + strings.Replace(cred, cred[6:7], "-", 1), ErrMalformedCredential},
		{"other vendor", "Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a", ErrMalformedCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotCred, err := ParseAuthorization(tt.header)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (gotID != id || gotCred != cred) {
				t.Fatalf("got (%q, %q), want (%q, %q)", gotID, gotCred, id, cred)
			}
		})
	}
}

func TestParseAuthorizationDoesNotAllocate(t *testing.T) {
	_, cred := mustCredential(t)
	h := "Bearer " + cred
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseAuthorization(h) }); n != 0 {
		t.Fatalf("ParseAuthorization allocates %v times per call", n)
	}
}

func TestDisplayIDHidesMostOfTheID(t *testing.T) {
	id, _ := mustCredential(t)
	d := DisplayID(id)
	if !strings.HasPrefix(d, id[:8]) || strings.Contains(d, id[9:]) {
		t.Fatalf("DisplayID(%q) = %q", id, d)
	}
}

func TestRoleAndStatusRoundTrip(t *testing.T) {
	for _, r := range []Role{RoleOwner, RoleAccounting} {
		got, err := ParseRole(strings.ToUpper(r.String()))
		if err != nil || got != r {
			t.Fatalf("ParseRole(%q) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRole("admin"); err == nil {
		t.Fatal("ParseRole accepted admin")
	}
	for _, s := range []Status{StatusActive, StatusInactive} {
		got, err := ParseStatus(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseStatus(%q) = %v, %v", s, got, err)
		}
	}
}

// FuzzParseAuthorization checks that the parser never panics, accepts only
// checksummed credentials, and returns slices of its input.
func FuzzParseAuthorization(f *testing.F) {
	_, cred := mustCredential(f)
	for _, s := range []string{"", "Bearer ", "Bearer " + cred, "bearer " + cred + " ", "Basic abc",
		"Bearer " + cred[:len(cred)-1] + "0", "Bearer tsw_:tswsk_", "Bearer " + strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, c, err := ParseAuthorization(header)
		if err != nil {
			if id != "" || c != "" {
				t.Fatalf("error %v with non-empty results", err)
			}
			return
		}
		if !ValidCredential(c) || !ValidID(id) || !strings.HasPrefix(c, id+":") || !strings.Contains(header, c) {
			t.Fatalf("accepted %q as (%q, %q)", header, id, c)
		}
	})
}
