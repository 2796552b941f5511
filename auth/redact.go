package auth

import "strings"

// Redacted replaces the random part of a secret in RedactSecrets' output.
const Redacted = "[REDACTED]"

// RedactSecrets returns s with the random part of every token secret in it
// replaced by Redacted, so that a credential that reached a path, a header
// or a message never reaches a log line, the audit trail or an error. The
// token id, which is public, stays readable.
//
// A secret is found by its prefix, in any letter case and with its "_"
// written as is or percent-escaped ("tswsk_", "TSWSK%5f"), followed by at
// least one letter or digit: the whole run of letters and digits after it is
// redacted, whatever its length, so mistyped and truncated secrets go too.
// Strings without "_" or "%" are returned as they are, without a scan.
func RedactSecrets(s string) string {
	if strings.IndexByte(s, '_') < 0 && strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	last := 0 // s[last:] is not yet copied to b
	for i := 0; i < len(s); {
		end, ok := secretAt(s, i)
		if !ok {
			i++
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:i])
		b.WriteString(SecretPrefix)
		b.WriteString(Redacted)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// secretAt reports whether a secret starts at s[i], and where it ends.
func secretAt(s string, i int) (end int, ok bool) {
	const word = "tswsk"
	if len(s)-i < len(word)+2 || !asciiEqualFold(s[i:i+len(word)], word) {
		return 0, false
	}
	j := i + len(word)
	switch {
	case s[j] == '_':
		j++
	case len(s)-j >= 3 && s[j] == '%' && s[j+1] == '5' && (s[j+2] == 'f' || s[j+2] == 'F'):
		j += 3
	default:
		return 0, false
	}
	start := j
	for j < len(s) && base62Value[s[j]] != 0xff {
		j++
	}
	return j, j > start
}
