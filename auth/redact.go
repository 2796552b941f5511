package auth

import "strings"

// Redacted replaces the random part of a secret in RedactSecrets' output.
const Redacted = "[REDACTED]"

// RedactSecrets returns s with the random part of every token secret in it
// replaced by Redacted, so that a credential that reached a path, a header
// or a message never reaches a log line, the audit trail or an error. The
// token id, which is public, stays readable.
//
// A secret is found as HoldsSecret finds it: by its prefix, in any letter
// case and with any of its bytes written as is or percent-escaped, at any
// depth ("tswsk_", "TSWSK%5f", "%74swsk_", "tswsk%25255F"), followed by at
// least one letter or digit. The prefix as written and the whole run of
// letters and digits after it (escaped or not) are replaced by
// SecretPrefix and Redacted, whatever the run's length, so mistyped and
// truncated secrets go too. A string that holds no secret is returned as
// it is; one without "_" or "%" without a scan.
func RedactSecrets(s string) string {
	if !HoldsSecret(s) {
		return s // the common case: no copy, and no allocation up to 2 KiB
	}
	dec, offs := deepDecode(make([]byte, 0, len(s)), make([]int, 0, len(s)+1), s)
	offs = append(offs, len(s)) // the end of the last byte's spelling
	var b strings.Builder
	last := 0                   // s[last:] is not yet copied to b
	for from, done := 0, 0; ; { // dec[:done] is redacted or passed over
		start, end, ok := findSecret(dec, from)
		if !ok {
			break
		}
		if start < done { // its "tswsk" is in the run of the last secret
			from = start + len(SecretPrefix)
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:offs[start]])
		b.WriteString(SecretPrefix)
		b.WriteString(Redacted)
		last, from, done = offs[end], end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
