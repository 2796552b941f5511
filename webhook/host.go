package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// hostAdvice is how a refused host should be written instead.
const hostAdvice = "use a public host name (such as hooks.example.com) or a dotted-quad public address (such as 8.8.8.8)"

// validHost checks the host and port of an endpoint URL, as written (the
// raw authority, before any decoding). Only forms every URL parser and
// resolver reads the same way are accepted: a DNS name of ASCII letters,
// digits, hyphens and underscores whose last label starts with a letter,
// a dotted-quad IPv4 address (four decimal numbers, no leading zeros), or
// a bracketed IPv6 address without a zone that does not embed an IPv4
// address. Short, octal, hexadecimal and integer IPv4 forms (127.1,
// 0177.0.0.1, 0x7f.1, 2130706433), trailing dots, percent-encoding and
// non-ASCII names are refused: other parsers read some of them as
// addresses a name check never saw. Nothing is resolved.
func validHost(authority string) error {
	host, port, err := splitHostPort(authority)
	if err != nil {
		return err
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("url: port %q is not a number from 1 to 65535", echo(port))
		}
	}
	if strings.HasPrefix(host, "[") {
		return validIPv6(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return nil // dotted quad, canonical: netip refuses every other form
	}
	if err := validName(host); err != nil {
		return fmt.Errorf("url: host %q %w: %s", echo(host), err, hostAdvice)
	}
	return nil
}

// splitHostPort splits an authority (no userinfo) into host and port;
// an IPv6 host keeps its brackets.
func splitHostPort(authority string) (host, port string, err error) {
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", errors.New("url: an IPv6 address lacks its closing bracket")
		}
		host, rest := authority[:end+1], authority[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", "", errors.New("url: the host is not followed by a port")
		}
		return host, strings.TrimPrefix(rest, ":"), nil
	}
	host, port, _ = strings.Cut(authority, ":")
	return host, port, nil
}

// validIPv6 checks the text between the brackets of an IPv6 host.
func validIPv6(s string) error {
	if strings.ContainsRune(s, '%') {
		return fmt.Errorf("url: the IPv6 address %q has a zone or percent-encoding: %s", echo(s), hostAdvice)
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is6():
		return fmt.Errorf("url: %q is not an IPv6 address: %s", echo(s), hostAdvice)
	case a.Is4In6():
		return fmt.Errorf("url: %s is an IPv4 address written as IPv6: %s", a, hostAdvice)
	}
	return nil
}

// validName checks a DNS host name; its error completes "host %q …".
func validName(host string) error {
	if host == "" {
		return errors.New("is empty")
	}
	if len(host) > 253 {
		return errors.New("is longer than 253 bytes")
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if err := validLabel(l); err != nil {
			return err
		}
	}
	last := labels[len(labels)-1]
	if c := last[0] | 0x20; c < 'a' || c > 'z' {
		return errors.New("is neither a host name (its last label must start with a letter) nor a dotted-quad address")
	}
	return nil
}

// validLabel checks one label of a host name.
func validLabel(l string) error {
	switch {
	case l == "":
		return errors.New("has an empty label (a trailing dot or two dots in a row)")
	case len(l) > 63:
		return errors.New("has a label longer than 63 bytes")
	case l[0] == '-' || l[len(l)-1] == '-':
		return errors.New("has a label that starts or ends with a hyphen")
	}
	for i := range len(l) {
		c := l[i]
		if !('a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			if c == '%' {
				return errors.New("is percent-encoded")
			}
			return errors.New("has a character other than ASCII letters, digits, '-' and '_' (write an international name in its xn-- form)")
		}
	}
	return nil
}

// echo is s as an error may quote it: at most 64 bytes, cut on a
// character boundary.
func echo(s string) string {
	const most = 64
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
