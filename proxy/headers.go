package proxy

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// Headers that would change the request on its way upstream.
//
// A proxy removes the fields that a Connection field names (RFC 9110
// §7.6.1): a client sending "Connection: Content-Type" would have its body
// checked as JSON and reach the API without a media type. Trailers (fields
// after a chunked body) are not forwarded either. Rather than forward a
// request other than the one checked, the gateway refuses both
// (auth.CodeInvalidHeader).

// hopByHop lists, in lower case, what a Connection field may name: its own
// options and the fields that are hop-by-hop anyway.
var hopByHop = [...]string{
	"close", "keep-alive", "upgrade", "te", "trailer", "transfer-encoding",
	"proxy-connection", "proxy-authenticate", "proxy-authorization", "http2-settings",
}

// changesOnTheWay reports whether r has a Connection option that names an
// end-to-end field, or declares trailers. It does not allocate.
func changesOnTheWay(r *http.Request) bool {
	if len(r.Trailer) > 0 {
		return true
	}
	for _, v := range r.Header["Connection"] {
		for opt := range strings.SplitSeq(v, ",") {
			if opt = textproto.TrimString(opt); opt != "" && !isHopByHop(opt) {
				return true
			}
		}
	}
	return false
}

func isHopByHop(opt string) bool {
	for _, name := range hopByHop {
		if strings.EqualFold(opt, name) {
			return true
		}
	}
	return false
}

// unwritable reports whether r has a field the gateway would forward but
// its upstream client does not write as given (Client refuses a name that
// is no token, and a value with a control byte or white space at either
// end), its Host (sent as X-Forwarded-Host) included. HTTP/2 carries
// values with white space at either end, which no HTTP/1.1 field can
// hold: refused here (auth.CodeInvalidHeader), such a request is not
// decided, charged and then answered as if the API could not be reached.
// It does not allocate.
func unwritable(r *http.Request) bool {
	for k, vs := range r.Header {
		if notForwarded(k) || droppedHeader(k) {
			continue
		}
		if !validToken(k) {
			return true
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return true
			}
		}
	}
	return !validFieldValue(r.Host)
}

// badHost reports whether host, the request's Host (HTTP/2's :authority),
// is not one authority the upstream can be told as X-Forwarded-Host: a
// host name or IPv4 address of letters, digits and "-._~", or an IPv6
// address in brackets, then optionally ":" and a port of at most five
// digits. net/http reads an HTTP/1 Host loosely ("a,b", which an
// X-Forwarded-Host reader splits into a list of proxies' hosts) and
// HTTP/2's :authority not at all ("a b", "x/y?z", any byte above 0x7E);
// such a request is refused (auth.CodeInvalidHeader) rather than passed
// on in a form the upstream may read another way. An empty Host (HTTP/1.0
// allows it) names nothing and is not refused. It does not allocate.
func badHost(host string) bool {
	if host == "" {
		return false
	}
	port := ""
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return true
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return true
		}
		port = host[end+1:]
	} else {
		name := host
		if i := strings.IndexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i:]
		}
		if name == "" {
			return true
		}
		for i := 0; i < len(name); i++ {
			if !hostByte[name[i]] {
				return true
			}
		}
	}
	return badPort(port)
}

// badPort reports whether p is neither empty nor ":" and up to five digits.
func badPort(p string) bool {
	if p == "" {
		return false
	}
	if p[0] != ':' || len(p) > 6 {
		return true
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return true
		}
	}
	return false
}

// hostByte marks the bytes of a host name or IPv4 address in a Host field:
// RFC 3986's unreserved characters, without percent-escapes or the
// sub-delimiters ("," among them).
var hostByte = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") {
		t[c] = true
	}
	return t
}()
