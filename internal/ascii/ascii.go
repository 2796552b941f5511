// Package ascii holds the byte-level helpers that the request checks of
// several packages share, so that they read bytes the same way.
package ascii

// Unhex returns the value of the hexadecimal digit c (0-9, a-f, A-F) and
// whether c is one.
func Unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
