package auth

import "strings"

// Method overrides in the query.
//
// Frameworks take a request's "real" method from a parameter as well as
// from a header: Spring's HiddenHttpMethodFilter and Symfony read "_method"
// from the parameters of a POST, query included; others take
// "X-HTTP-Method-Override" from the query too. The proxy drops the header
// forms; a query parameter cannot be dropped without changing the request,
// so Gate.Decide refuses a request naming one (CodeInvalidQuery): checked
// as one method, it could be served as another, needing a permission the
// token lacks (a POST by a token scoped to compute.write, served as the GET
// that needs compute.read).

// overrideParams are the method-override parameters, lower case, with "-"
// where "_" also matches.
var overrideParams = [...]string{"-method", "x-http-method-override", "x-http-method", "x-method-override"}

// QueryOverridesMethod reports whether the raw query, valid by
// CheckQueryProject's rules, has a key that names a method override: one
// of "_method", "X-HTTP-Method-Override", "X-HTTP-Method" or
// "X-Method-Override" once decoded ("+" is a space, %HH a byte) and
// trimmed of ASCII white space, in any ASCII letter case, "-" and "_"
// alike. It does not allocate.
func QueryOverridesMethod(rawQuery string) bool {
	for q := rawQuery; q != ""; {
		pair := q
		if i := strings.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		key := pair
		if i := strings.IndexByte(pair, '='); i >= 0 {
			key = pair[:i]
		}
		for _, name := range overrideParams {
			if keyIs(key, name) {
				return true
			}
		}
	}
	return false
}

// keyIs reports whether the raw (valid) query key, decoded and trimmed of
// ASCII white space, is name in any ASCII letter case, "_" matching "-".
func keyIs(key, name string) bool {
	j := 0
	for i := 0; i < len(key); {
		var c byte
		c, i = queryByte(key, i)
		switch {
		case isSpace(c) && (j == 0 || j == len(name)):
			// white space around the name
		case j == len(name):
			return false
		case c == '_' && name[j] == '-', lowerASCII(c) == name[j]:
			j++
		default:
			return false
		}
	}
	return j == len(name)
}
