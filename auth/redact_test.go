package auth

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedactSecrets(t *testing.T) {
	_, cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(cred, ":")
	escaped := strings.Replace(cred, ":tswsk_", "%3Atswsk%5f", 1)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/v2/Instance", "/v2/Instance"},
		{"no secret_here", "no secret_here"},
		{"tswsk_", "tswsk_"},
		{"x tswsk_ y", "x tswsk_ y"},
		{cred, id + ":tswsk_" + Redacted},
		{"/tswgate/v1/tokens/" + cred + "/rotate", "/tswgate/v1/tokens/" + id + ":tswsk_" + Redacted + "/rotate"},
		{"Bearer " + cred + ", Bearer " + cred, "Bearer " + id + ":tswsk_" + Redacted + ", Bearer " + id + ":tswsk_" + Redacted},
		{escaped, id + "%3Atswsk_" + Redacted},
		{"TSWSK_abc-def", "tswsk_" + Redacted + "-def"},
		{secret[:20], "tswsk_" + Redacted},
	} {
		if got := RedactSecrets(tc.in); got != tc.want {
			t.Errorf("RedactSecrets(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if re := regexp.MustCompile(CredentialPattern); re.MatchString(RedactSecrets("a " + cred + " b")) {
		t.Error("the redacted string still matches CredentialPattern")
	}
}

func FuzzRedactSecrets(f *testing.F) {
	_, cred, _ := NewCredential()
	f.Add("x " + cred + " y")
	f.Add("tswsk%5Fabc")
	f.Add("TsWsK_0")
	re := regexp.MustCompile(`(?i)tswsk(_|%5f)[0-9A-Za-z]`)
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactSecrets(s)
		if loc := re.FindStringIndex(out); loc != nil {
			t.Fatalf("RedactSecrets(%q) = %q: a secret is left at %d", s, out, loc[0])
		}
		if !strings.Contains(s, "_") && !strings.Contains(s, "%") && out != s {
			t.Fatalf("RedactSecrets changed %q to %q", s, out)
		}
	})
}
