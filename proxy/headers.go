package proxy

import (
	"net/http"
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
