package auth

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/internal/ascii"
)

func TestHoldsSecret(t *testing.T) {
	_, cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(cred, ":")
	random := secret[len(SecretPrefix):]
	for s, want := range map[string]bool{
		"":                            false,
		"application/json":            false,
		"tswsk_":                      false,
		"tswsk_-":                     false,
		"tswsk":                       false,
		"tsw_" + random[:20]:          false, // a token id is public
		id:                            false,
		"tswskA":                      false,
		"tswsk%5":                     false,
		"tswsk%5F":                    false,
		"tswsk%zz":                    false,
		"100%":                        false,
		cred:                          true,
		secret:                        true,
		"token=" + cred:               true,
		"Bearer " + cred:              true,
		"tsw=" + cred + "; other=1":   true,
		"TSWSK_" + random:             true,
		"TsWsK_a":                     true,
		"tswsk%5F" + random:           true,
		"tswsk%5f" + random:           true,
		"tswsk%255F" + random:         true, // "_" escaped twice
		"%74%73%77%73%6B%5F" + random: true,
		"%54SWSK_" + random:           true,
		"tswsk_%41%42":                true,
		id + "%3A" + secret:           true,
		"/v2/Instance/" + id + "%3atswsk%5F" + random[:5]: true,
		"100%&x=tswsk_" + random:                          true,
		"a_b_c_tswsk_1":                                   true,
		"tswsk%25255F" + random:                           true, // "_" escaped three times
		"tswsk%2525255f" + random:                         true,
		"%2574swsk_" + random:                             true,
		"%2574SwSk%25255f" + random:                       true,
		"%252574%2573%77sk%5F%2541":                       true, // mixed depths
		"tswsk%25%35%46" + random:                         true, // the escape's digits escaped
		"tswsk_%2541":                                     true,
		"tswsk%25255Z" + random:                           false,
		"%25%25%25%25%25%25%25%25":                        false,
	} {
		if got := HoldsSecret(s); got != want {
			t.Errorf("HoldsSecret(%q) = %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"Mozilla/5.0 (X11; Linux x86_64)", "a%20b_c", secret} {
		if n := testing.AllocsPerRun(100, func() { HoldsSecret(s) }); n != 0 {
			t.Errorf("HoldsSecret(%q): %v allocations", s, n)
		}
	}
}

// secretReference finds a secret as a regular expression would, in s as
// written or decoded (decodeOnce, repeatedly).
var secretReference = regexp.MustCompile(`(?i)tswsk(_|%5f)[0-9a-z]`)

func decodeOnce(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c, next := escapedByte(s, i)
		b.WriteByte(c)
		i = next
	}
	return b.String()
}

// escapedByte returns the byte at s[j], a %HH escape decoded, and the index
// after it. A "%" that starts no escape stands for itself.
func escapedByte(s string, j int) (byte, int) {
	if s[j] == '%' && len(s)-j >= 3 {
		hi, ok1 := ascii.Unhex(s[j+1])
		lo, ok2 := ascii.Unhex(s[j+2])
		if ok1 && ok2 {
			return hi<<4 | lo, j + 3
		}
	}
	return s[j], j + 1
}

// refHoldsSecret is the reference reading of HoldsSecret: secretReference
// in s, or in s decoded once, twice, … until decoding changes nothing.
func refHoldsSecret(s string) bool {
	for {
		if secretReference.MatchString(s) {
			return true
		}
		d := decodeOnce(s)
		if d == s {
			return false
		}
		s = d
	}
}

func FuzzHoldsSecret(f *testing.F) {
	_, cred, _ := NewCredential()
	for _, s := range []string{cred, "tswsk%5Fa", "%74swsk_0", "tswsk%255Fz", "x_y%zz", "%%74swsk_a", "%7tswsk_a", "%2574swsk%25255Fa", "tswsk%25%35%46a", "tswsk_tswsk_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := HoldsSecret(s)
		if want := refHoldsSecret(s); got != want {
			t.Fatalf("HoldsSecret(%q) = %v, the reference %v", s, got, want)
		}
		if redacted := RedactSecrets(s) != s; redacted != got {
			t.Fatalf("HoldsSecret(%q) = %v, but RedactSecrets changes it: %v", s, got, redacted)
		}
	})
}

// TestRedactSecretsEscaped: a secret with escaped bytes, which a server
// decodes, is redacted too.
func TestRedactSecretsEscaped(t *testing.T) {
	_, cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(cred, ":")
	random := secret[len(SecretPrefix):]
	for in, want := range map[string]string{
		"/v2/Instance/" + id + ":%74swsk_" + random: "/v2/Instance/" + id + ":tswsk_" + Redacted,
		"%54%53%57%53%4b%5f" + random + "/x":        "tswsk_" + Redacted + "/x",
		"tswsk%255F" + random:                       "tswsk_" + Redacted,
		"tswsk_" + random[:3] + "%41" + random[3:]:  "tswsk_" + Redacted,
		"tswsk_ab%zz":                           "tswsk_" + Redacted + "%zz",
		"tswsk_tswsk_0":                         "tswsk_" + Redacted + "_0",
		"/x/%2574SwSk%25255f" + random + "/y":   "/x/tswsk_" + Redacted + "/y",
		"a%25tswsk%2525255F" + random + "%2541": "a%25tswsk_" + Redacted,
	} {
		if got := RedactSecrets(in); got != want {
			t.Errorf("RedactSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkHoldsSecret(b *testing.B) {
	s := "session=abc%20def; theme=dark; _ga=GA1.2.3456789.1234567890; q=%E2%9C%93"
	for b.Loop() {
		HoldsSecret(s)
	}
}
