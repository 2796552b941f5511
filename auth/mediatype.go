package auth

// CheckBody checks a request body by the package's body rules (see
// scope.go), for a route that takes a body if takesBody is set.
//
// body is the body or, when complete is false, a prefix of it cut at the
// front end's scan limit. contentType is the Content-Type field value, with
// several fields joined by ", " (so that they are refused as a list), and
// contentEncoding likewise the Content-Encoding; "" means there is none.
//
// An empty body is OK whatever its headers. Otherwise CheckBody returns, in
// this order, CodeBodyNotAllowed when the route takes no body,
// CodeUnsupportedMediaType when there is a Content-Encoding or
// CheckMediaType refuses the Content-Type, and then what CheckJSONProject
// returns. It does not allocate.
func CheckBody(takesBody bool, contentType, contentEncoding string, body []byte, complete bool, project int64) Code {
	if len(body) == 0 && complete {
		return OK
	}
	if !takesBody {
		return CodeBodyNotAllowed
	}
	if contentEncoding != "" {
		return CodeUnsupportedMediaType
	}
	if code := CheckMediaType(contentType); code != OK {
		return code
	}
	return CheckJSONProject(body, complete, project)
}

// maxMediaTypeParams bounds the parameters of a checked media type, and so
// the work of finding duplicate names. The API's clients send at most one
// (charset).
const maxMediaTypeParams = 8

// CheckMediaType returns OK if contentType is one of the request media
// types the API declares, read strictly by RFC 9110 §8.3.1, else
// CodeUnsupportedMediaType:
//
//	media-type = type "/" subtype *( OWS ";" OWS parameter )
//	parameter  = token "=" ( token / quoted-string )
//
// with no white space inside type "/" subtype, and only optional white
// space around the whole value. The type must be application/json,
// text/json or application/<name>+json (a name of at least one character,
// without "*"; this covers application/json-patch+json), in any letter
// case. It refuses, besides malformed values: an empty value (a body
// without Content-Type), a comma anywhere (a list, or several
// Content-Type fields joined), bytes outside printable ASCII, a parameter
// name given twice (in any case), more than 8 parameters, and a charset
// other than utf-8 (any case, quoted or not; no quoted-pair escapes).
// It does not allocate.
func CheckMediaType(contentType string) Code {
	s := contentType
	i := skipOWS(s, 0)
	start := i
	i = skipToken(s, i)
	if i == start || i == len(s) || s[i] != '/' {
		return CodeUnsupportedMediaType
	}
	typ := s[start:i]
	start = i + 1
	i = skipToken(s, start)
	if i == start || !acceptedMediaType(typ, s[start:i]) {
		return CodeUnsupportedMediaType
	}
	var names [maxMediaTypeParams]string
	n := 0
	for {
		i = skipOWS(s, i)
		if i == len(s) {
			return OK
		}
		if s[i] != ';' {
			return CodeUnsupportedMediaType
		}
		i = skipOWS(s, i+1)
		start = i
		i = skipToken(s, i)
		if i == start || i == len(s) || s[i] != '=' {
			return CodeUnsupportedMediaType
		}
		name := s[start:i]
		i++
		var value string
		if i < len(s) && s[i] == '"' {
			start = i + 1
			for i = start; ; i++ {
				if i == len(s) {
					return CodeUnsupportedMediaType
				}
				c := s[i]
				if c == '"' {
					break
				}
				if c == '\\' {
					i++
					if i == len(s) || !quotedPairChar(s[i]) {
						return CodeUnsupportedMediaType
					}
				} else if !qdtext(c) {
					return CodeUnsupportedMediaType
				}
			}
			// The raw content: a quoted-pair is kept as written, so
			// "utf\-8" is no utf-8.
			value = s[start:i]
			i++
		} else {
			start = i
			i = skipToken(s, i)
			if i == start {
				return CodeUnsupportedMediaType
			}
			value = s[start:i]
		}
		for _, prev := range names[:n] {
			if asciiEqualFold(prev, name) {
				return CodeUnsupportedMediaType
			}
		}
		if n == len(names) {
			return CodeUnsupportedMediaType
		}
		names[n] = name
		n++
		if asciiEqualFold(name, "charset") && !asciiEqualFold(value, "utf-8") {
			return CodeUnsupportedMediaType
		}
	}
}

// acceptedMediaType reports whether type/subtype is one the API reads as
// JSON.
func acceptedMediaType(typ, sub string) bool {
	switch {
	case asciiEqualFold(typ, "application"):
		if asciiEqualFold(sub, "json") {
			return true
		}
		const suffix = "+json"
		if len(sub) <= len(suffix) || !asciiEqualFold(sub[len(sub)-len(suffix):], suffix) {
			return false
		}
		for i := 0; i < len(sub); i++ {
			if sub[i] == '*' {
				return false
			}
		}
		return true
	case asciiEqualFold(typ, "text"):
		return asciiEqualFold(sub, "json")
	}
	return false
}

// tchars marks RFC 9110's token characters.
var tchars = func() (t [256]bool) {
	for _, c := range []byte("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t[c] = true
	}
	return t
}()

func skipToken(s string, i int) int {
	for i < len(s) && tchars[s[i]] {
		i++
	}
	return i
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// qdtext reports whether c may appear unescaped in a quoted-string; unlike
// RFC 9110, not a comma or obs-text.
func qdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b && c != ',' || 0x5d <= c && c <= 0x7e
}

// quotedPairChar reports whether c may follow a backslash in a
// quoted-string; unlike RFC 9110, not a comma or obs-text.
func quotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || 0x21 <= c && c <= 0x7e && c != ','
}
