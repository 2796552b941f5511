package auth

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
// that needs compute.read). CheckQueryProject refuses a key that names one:
// one of "_method", "X-HTTP-Method-Override", "X-HTTP-Method" or
// "X-Method-Override" once decoded ("+" is a space, %HH a byte) and
// trimmed of ASCII white space, in any ASCII letter case, "-" and "_"
// alike.

// overrideParams are the method-override parameters, lower case, with "-"
// where "_" also matches.
var overrideParams = [...]string{"-method", "x-http-method-override", "x-http-method", "x-method-override"}

// keyOverrides reports whether the raw (valid) query key, decoded, names a
// method override.
func keyOverrides(key string) bool {
	m := newOverrideMatcher()
	for i := 0; i < len(key) && m.alive != 0; {
		var c byte
		c, i = queryByte(key, i)
		m.add(c)
	}
	return m.matched()
}

// Method overrides in a JSON body.
//
// Laravel takes "_method" from the body's parameters too, and those of a
// JSON body are its top-level keys. CheckJSONProject
// refuses a body whose top-level object has a key that names a method
// override as a query key would (CodeInvalidQuery, the code of the query
// form): the key unescaped and trimmed of ASCII white space, in any ASCII
// letter case, "-" and "_" alike.

// overrideMatcher matches a stream of bytes against the overrideParams,
// ignoring ASCII white space around the name: any letter case, "_" for
// "-". Start it with newOverrideMatcher.
type overrideMatcher struct {
	alive    uint8 // bit i: overrideParams[i] still matches
	n        uint8 // name bytes seen (at most one past the longest name)
	started  bool  // a byte other than white space was seen
	trailing bool  // white space was seen after the name
}

func newOverrideMatcher() overrideMatcher {
	return overrideMatcher{alive: 1<<len(overrideParams) - 1}
}

func (m *overrideMatcher) add(c byte) {
	switch {
	case m.alive == 0:
	case isSpace(c):
		m.trailing = m.started
	case m.trailing:
		m.alive = 0
	default:
		m.started = true
		if c == '_' {
			c = '-'
		}
		c = lowerASCII(c)
		for i, name := range overrideParams {
			if int(m.n) >= len(name) || name[m.n] != c {
				m.alive &^= 1 << i
			}
		}
		m.n++
	}
}

// matched reports whether the bytes so far name an override.
func (m *overrideMatcher) matched() bool {
	for i, name := range overrideParams {
		if m.alive&(1<<i) != 0 && int(m.n) == len(name) {
			return true
		}
	}
	return false
}
