package auth

import "strings"

// Redacted replaces the random part of a secret in RedactSecrets' output.
const Redacted = "[REDACTED]"

// RedactSecrets returns s with the random part of every token secret in it
// replaced by Redacted, so that a credential that reached a path, a header
// or a message never reaches a log line, the audit trail or an error. The
// token id, which is public, stays readable.
//
// A secret is found by its prefix, in any letter case and with any of its
// bytes written as is or percent-escaped ("tswsk_", "TSWSK%5f", "%74swsk_"),
// followed by at least one letter or digit: the whole run of letters and
// digits after it (escaped or not) is redacted, whatever its length, so
// mistyped and truncated secrets go too.
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

// secretAt reports whether a secret starts at s[i], and where it ends. The
// bytes are read with every %HH escape decoded once, as a server decodes a
// path, a query or a cookie: "tswsk" in any letter case, then "_" (or "%5F",
// an underscore escaped twice), then the run of letters and digits, at least
// one.
func secretAt(s string, i int) (end int, ok bool) {
	const word = "tswsk"
	j := i
	for k := 0; k < len(word); k++ {
		var c byte
		if j == len(s) {
			return 0, false
		}
		if c, j = escapedByte(s, j); lowerASCII(c) != word[k] {
			return 0, false
		}
	}
	if j, ok = underscoreAt(s, j); !ok {
		return 0, false
	}
	start := j
	for j < len(s) {
		c, next := escapedByte(s, j)
		if base62Value[c] == 0xff {
			break
		}
		j = next
	}
	return j, j > start
}

// underscoreAt reports whether s[j:] starts with "_" read as secretAt
// reads it ("_", "%5F" or "%255F"), and where it ends.
func underscoreAt(s string, j int) (end int, ok bool) {
	if j == len(s) {
		return 0, false
	}
	c, j := escapedByte(s, j)
	switch {
	case c == '_':
		return j, true
	case c != '%' || len(s)-j < 2:
		return 0, false
	}
	c5, j := escapedByte(s, j)
	if c5 != '5' || j == len(s) {
		return 0, false
	}
	f, j := escapedByte(s, j)
	return j, lowerASCII(f) == 'f'
}

// escapedByte returns the byte at s[j], a %HH escape decoded, and the index
// after it. A "%" that starts no escape stands for itself.
func escapedByte(s string, j int) (byte, int) {
	if s[j] == '%' && len(s)-j >= 3 {
		hi, ok1 := unhex(s[j+1])
		lo, ok2 := unhex(s[j+2])
		if ok1 && ok2 {
			return hi<<4 | lo, j + 3
		}
	}
	return s[j], j + 1
}
