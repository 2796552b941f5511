package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/tswgate/tswgate/auth"
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

// checkFields returns the refusal that r's target and fields earn before
// the decision, or auth.OK, and the part of the request it names (a field
// name, "the query"...; "" for none):
//
//   - auth.CodeCredentialMisplaced when a token secret is in the path, the
//     query, the Host or a field the gateway would forward (its name or a
//     value; Authorization is never forwarded as such: see
//     auth.HoldsSecret);
//   - auth.CodeInvalidHeader when a Connection option names an end-to-end
//     field or trailers are declared (changesOnTheWay), a field name spells
//     with "_" one the gateway checks, drops or sets (shadowsField), a
//     forwarded field cannot be written as sent (unwritable), or the Host
//     is no single authority (badHost).
//
// A misplaced secret is refused first, whatever else is wrong. A request
// without "_" or "%" in its fields costs a few byte searches per field; it
// does not allocate.
func checkFields(r *http.Request, path string) (auth.Code, string) {
	code, named := auth.OK, ""
	if changesOnTheWay(r) {
		code = auth.CodeInvalidHeader
	}
	for k, vs := range r.Header {
		if shadowsField(k) {
			if code == auth.OK {
				code, named = auth.CodeInvalidHeader, k
				if auth.HoldsSecret(k) {
					named = "" // not echoed: the plain refusal
				}
			}
			continue
		}
		if notForwarded(k) || droppedHeader(k) {
			continue
		}
		if auth.HoldsSecret(k) {
			return auth.CodeCredentialMisplaced, "a header field's name"
		}
		for _, v := range vs {
			if auth.HoldsSecret(v) {
				return auth.CodeCredentialMisplaced, "the " + k + " header"
			}
		}
		if code == auth.OK && unwritable(k, vs) {
			code = auth.CodeInvalidHeader
		}
	}
	switch {
	case auth.HoldsSecret(path):
		return auth.CodeCredentialMisplaced, "the path"
	case auth.HoldsSecret(r.URL.RawQuery):
		return auth.CodeCredentialMisplaced, "the query"
	case auth.HoldsSecret(r.Host):
		return auth.CodeCredentialMisplaced, "the Host"
	case code == auth.OK && (!validFieldValue(r.Host) || badHost(r.Host)):
		code = auth.CodeInvalidHeader
	}
	return code, named
}

// unwritable reports whether the field k, which the gateway would
// forward, is one its upstream client does not write as given (Client
// refuses a name that is no token, and a value with a control byte or
// white space at either end). HTTP/2 carries values with white space at
// either end, which no HTTP/1.1 field can hold: refused
// (auth.CodeInvalidHeader), such a request is not decided, charged and then
// answered as if the API could not be reached. It does not allocate.
func unwritable(k string, vs []string) bool {
	if !validToken(k) {
		return true
	}
	for _, v := range vs {
		if !validFieldValue(v) {
			return true
		}
	}
	return false
}

// Fields spelt with "_".
//
// CGI (RFC 3875 §4.1.18), WSGI, Rack and the servers that follow them pass
// a field to the application as HTTP_<NAME>, with "-" mapped to "_": for
// them "Content_Length" and "Content-Length" are one field, and so are
// "X_Forwarded_For" and "X-Forwarded-For". The gateway reads, drops and
// sets fields by their names with "-"; a client's copy spelt with "_" of
// any of them would pass beside (or instead of) the one the gateway
// checked or set. Rather than forward it, or drop it silently, the
// gateway refuses it (auth.CodeInvalidHeader), naming the field.

// checkedFields are the fields, lower case, that the gateway reads, sets,
// or withholds as framing or hop-by-hop fields, and whose names hold a "-"
// (a name without one has no spelling with "_"). droppedHeader covers the
// ones it drops.
var checkedFields = [...]string{
	"content-length", "content-type", "content-encoding", "transfer-encoding",
	"proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "http2-settings",
	"x-request-id",
}

// shadowsField reports whether the field name k holds "_" and, with "_"
// read as "-", in any letter case, names a field the gateway checks, drops
// or sets. It does not allocate.
func shadowsField(k string) bool {
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	if droppedHeader(k) {
		return true
	}
	for _, name := range checkedFields {
		if foldsTo(k, name) {
			return true
		}
	}
	return false
}

// fieldRefusal answers a refusal that names the part of the request at
// fault (checkFields), in the envelope of its code.
func fieldRefusal(w http.ResponseWriter, code auth.Code, named string) {
	var msg string
	switch code {
	case auth.CodeCredentialMisplaced:
		msg = "An API token secret (tswsk_…) was sent in " + named + ", where it would reach the API: " +
			"send it only in Authorization: Bearer <tokenId>:<secret>. The request was not forwarded."
	case auth.CodeInvalidHeader:
		dashed := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(named, "_", "-"))
		msg = fmt.Sprintf("The header field %q would reach the API as %s, which the gateway checks, drops or sets: "+
			"servers that read \"_\" as \"-\" take one for the other. Send no field that spells %s with \"_\".",
			named, dashed, dashed)
	default:
		refuse(w, code, 0)
		return
	}
	r := *refusals[code]
	r.body = envelopeBody(code.String(), msg)
	write(w, &r, 0)
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
