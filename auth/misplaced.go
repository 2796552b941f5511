package auth

import "strings"

// Credentials out of place.
//
// A credential belongs in the Authorization header, which the gateway
// checks and (by default) withholds from the API. One sent anywhere else —
// a query parameter ("?token=", "?api_key="), a path segment, a cookie, an
// X-Api-Key field — would be forwarded, and so reach the API, its logs and
// whatever records URLs on the way. A front end refuses such a request
// (CodeCredentialMisplaced) when its target or a field it would forward
// HoldsSecret.

// HoldsSecret reports whether s holds a token secret, as RedactSecrets
// finds them: "tswsk" in any letter case, then "_", then at least one
// letter or digit, read as written or with every %HH escape decoded once
// ("%74swsk_…", "tswsk%5F…"; "_" also escaped twice, "%255F"). The random
// part of a secret is what needs keeping; so a mistyped or truncated one
// counts, and so does a whole credential (CredentialPattern). It does not
// allocate, and a string without "_" or "%" costs two byte searches.
func HoldsSecret(s string) bool {
	if strings.IndexByte(s, '%') < 0 {
		return plainHoldsSecret(s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 't' || c == 'T' || c == '%' {
			if _, ok := secretAt(s, i); ok {
				return true
			}
		}
	}
	return false
}

// plainHoldsSecret is HoldsSecret for a string without "%": it looks at
// each "_" only.
func plainHoldsSecret(s string) bool {
	const word = "tswsk"
	for from := 0; ; {
		i := strings.IndexByte(s[from:], '_')
		if i < 0 {
			return false
		}
		i += from
		if i >= len(word) && i+1 < len(s) && base62Value[s[i+1]] != 0xff && asciiEqualFold(s[i-len(word):i], word) {
			return true
		}
		from = i + 1
	}
}
