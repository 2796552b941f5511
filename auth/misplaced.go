package auth

import (
	"bytes"
	"strings"

	"github.com/tswgate/tswgate/internal/ascii"
)

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
// letter or digit, read as written or with its %HH escapes decoded, again
// and again while decoding makes new ones ("%74swsk_…", "tswsk%5F…",
// "%2574swsk%25255F…": escaped at any depth, as some layer on the way may
// decode once more). The random part of a secret is what needs keeping; so
// a mistyped or truncated one counts, and so does a whole credential
// (CredentialPattern). A string without "%" costs two byte searches and
// does not allocate; one with "%" is decoded in one pass, allocating only
// when longer than 2 KiB.
func HoldsSecret(s string) bool {
	if strings.IndexByte(s, '%') < 0 {
		return plainHoldsSecret(s)
	}
	var buf [2048]byte
	dec, _ := deepDecode(buf[:0], nil, s)
	_, _, ok := findSecret(dec, 0)
	return ok
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

// deepDecode appends to dst the bytes of s with every %HH escape decoded,
// and every escape that decoding makes decoded too, whatever the depth:
// the bytes are pushed on dst as on a stack, and a top of "%", hex digit,
// hex digit is replaced by the byte it spells, then the new top looked at
// again. A "%" that starts no escape stands for itself. It takes one pass:
// each replacement shortens dst. If offs is not nil, deepDecode appends to
// it, for each byte of the result, the index in s where its spelling
// starts.
func deepDecode(dst []byte, offs []int, s string) ([]byte, []int) {
	for i := 0; i < len(s); {
		if n := len(dst); (n < 1 || dst[n-1] != '%') && (n < 2 || dst[n-2] != '%') {
			// No escape is open on the stack: copy up to the next "%".
			j := strings.IndexByte(s[i:], '%')
			if j < 0 {
				j = len(s) - i
			}
			dst = append(dst, s[i:i+j]...)
			for k := i; offs != nil && k < i+j; k++ {
				offs = append(offs, k)
			}
			if i += j; i == len(s) {
				break
			}
		}
		dst = append(dst, s[i])
		if offs != nil {
			offs = append(offs, i)
		}
		i++
		for n := len(dst); n >= 3 && dst[n-3] == '%'; n = len(dst) {
			hi, ok1 := ascii.Unhex(dst[n-2])
			lo, ok2 := ascii.Unhex(dst[n-1])
			if !ok1 || !ok2 {
				break
			}
			dst = append(dst[:n-3], hi<<4|lo)
			if offs != nil {
				offs = offs[:n-2]
			}
		}
	}
	return dst, offs
}

// findSecret finds the first secret in the decoded bytes d from index
// from: the index of its "tswsk", and the end of its letters and digits.
func findSecret(d []byte, from int) (start, end int, ok bool) {
	const word = "tswsk"
	for {
		i := bytes.IndexByte(d[from:], '_')
		if i < 0 {
			return 0, 0, false
		}
		i += from
		from = i + 1
		if i < len(word) || i+1 >= len(d) || base62Value[d[i+1]] == 0xff || !asciiEqualFold(string(d[i-len(word):i]), word) {
			continue
		}
		end = i + 1
		for end < len(d) && base62Value[d[end]] != 0xff {
			end++
		}
		return i - len(word), end, true
	}
}
