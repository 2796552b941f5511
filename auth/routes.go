package auth

import (
	"fmt"
	"strings"
	"sync"

	"github.com/tswgate/tswgate/internal/ascii"
)

//go:generate go run ../tools/routegen -o routes_gen.go

// Permission is what a route needs: read or write access to one group of
// the API's resources. The zero Permission, PermNone, is what no route needs
// and no role has.
type Permission uint8

// Permissions, one read and one write per resource group. The group of a
// route is named by the first path segment after the version:
//
//	billing   Invoice, Usage
//	compute   Instance, Metal, Image
//	network   Network
//	storage   Volume
//	ssh_keys  SshKey
//	catalog   Region, Price
//	tags      Tags
//	search    Search
//
// GET and HEAD need read access; every other method needs write access.
//
// The last group, tokens, is no route of the API: it is the management of
// the project's tokens through the token API (and of its webhooks).
// tokens.read lists and shows tokens and webhooks and reads the audit
// trail; tokens.write creates, changes, rotates and revokes tokens and
// manages webhooks. Owner grants both. New permissions are added at the
// end: a PermSet's bits are not stored (the stores keep names), but the
// order is the order of lists.
const (
	PermNone Permission = iota
	PermBillingRead
	PermBillingWrite
	PermComputeRead
	PermComputeWrite
	PermNetworkRead
	PermNetworkWrite
	PermStorageRead
	PermStorageWrite
	PermSSHKeysRead
	PermSSHKeysWrite
	PermCatalogRead
	PermCatalogWrite
	PermTagsRead
	PermTagsWrite
	PermSearchRead
	PermSearchWrite
	PermTokensRead
	PermTokensWrite

	numPermissions
)

// permGroups are the resource groups, in Permission order.
var permGroups = [...]string{"billing", "compute", "network", "storage", "ssh_keys", "catalog", "tags", "search", "tokens"}

// resourceGroups maps the lower-cased first segment of a route (after the
// version) to its index in permGroups. No route is of the tokens group.
var resourceGroups = map[string]int{
	"invoice":  0,
	"usage":    0,
	"instance": 1,
	"metal":    1,
	"image":    1,
	"network":  2,
	"volume":   3,
	"sshkey":   4,
	"region":   5,
	"price":    5,
	"tags":     6,
	"search":   7,
}

var permNames = func() (names [numPermissions]string) {
	names[PermNone] = "none"
	for g, group := range permGroups {
		names[permission(g, false)] = group + ".read"
		names[permission(g, true)] = group + ".write"
	}
	return names
}()

// permission returns the permission for group index g.
func permission(g int, write bool) Permission {
	p := Permission(1 + 2*g)
	if write {
		p++
	}
	return p
}

// String returns the permission's name, e.g. "billing.read" or
// "compute.write".
func (p Permission) String() string {
	if p < numPermissions {
		return permNames[p]
	}
	return "invalid"
}

// Management reports whether p is a permission of the token API
// (tokens.read, tokens.write) rather than of a route of the API.
func (p Permission) Management() bool { return p == PermTokensRead || p == PermTokensWrite }

// Permissions lists every permission (all but PermNone), those of the
// token API included (see Permission.Management).
func Permissions() []Permission {
	ps := make([]Permission, 0, numPermissions-1)
	for p := PermNone + 1; p < numPermissions; p++ {
		ps = append(ps, p)
	}
	return ps
}

// Allows reports whether a token of role r may use a route that needs p.
// An owner may use every route; an accountant may only read billing data.
func (r Role) Allows(p Permission) bool {
	switch r {
	case RoleOwner:
		return p > PermNone && p < numPermissions
	case RoleAccounting:
		return p == PermBillingRead
	}
	return false
}

// Route is one operation of the API: a method and a path pattern such as
// "/v2/Instance/{id}". A pattern starts with a version segment ("v1" or
// "v2", which a RouteTable treats alike), then the resource segment that
// names the route's permission group, then literal or {param} segments.
type Route struct {
	Method  string
	Pattern string
	// TakesBody reports whether the operation declares a request body.
	// A request with a non-empty body on a route without one is refused
	// (see Gate.Decide).
	TakesBody bool
}

// RouteTable maps requests to routes and their permissions. It is
// immutable and safe for concurrent use.
type RouteTable struct {
	routes []Route
	root   routeNode
}

// routeNode is a node of the table's segment trie. The root stands for the
// version segment.
type routeNode struct {
	literals  []literalChild // literal segments, matched case-insensitively
	param     *routeNode     // a {param} segment, or nil
	endpoints []endpoint     // the routes that end here, one per method
}

type literalChild struct {
	seg  string
	node *routeNode
}

type endpoint struct {
	method    string
	perm      Permission
	pattern   string
	takesBody bool
}

// NewRouteTable compiles routes into a table. It fails on a malformed
// method or pattern, a resource segment that names no permission group, or
// two routes with the same method whose patterns match the same paths.
func NewRouteTable(routes []Route) (*RouteTable, error) {
	t := &RouteTable{routes: append([]Route(nil), routes...)}
	for _, r := range routes {
		if err := t.add(r); err != nil {
			return nil, fmt.Errorf("route %s %s: %w", r.Method, r.Pattern, err)
		}
	}
	return t, nil
}

func (t *RouteTable) add(r Route) error {
	if r.Method == "" {
		return fmt.Errorf("empty method")
	}
	for i := 0; i < len(r.Method); i++ {
		if c := r.Method[i]; c < 'A' || c > 'Z' {
			return fmt.Errorf("method must be upper-case letters")
		}
	}
	if !strings.HasPrefix(r.Pattern, "/") || strings.HasSuffix(r.Pattern, "/") {
		return fmt.Errorf("pattern must start and must not end with /")
	}
	segs := strings.Split(r.Pattern[1:], "/")
	if !isVersion(segs[0]) {
		return fmt.Errorf("pattern does not start with /v1 or /v2")
	}
	segs = segs[1:]
	if len(segs) == 0 {
		return fmt.Errorf("pattern has no resource segment")
	}
	g, ok := resourceGroups[strings.ToLower(segs[0])]
	if !ok {
		return fmt.Errorf("resource %q has no permission group", segs[0])
	}
	n := &t.root
	for _, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			if len(seg) < 3 || !strings.HasSuffix(seg, "}") || strings.ContainsAny(seg[1:len(seg)-1], "{}") {
				return fmt.Errorf("malformed parameter segment %q", seg)
			}
			if n.param == nil {
				n.param = &routeNode{}
			}
			n = n.param
			continue
		}
		if strings.Contains(seg, "%") || checkPath("/"+seg) != OK || seg == "" {
			return fmt.Errorf("literal segment %q is not canonical or has a %%", seg)
		}
		n = n.literal(seg)
	}
	for _, e := range n.endpoints {
		if e.method == r.Method {
			return fmt.Errorf("conflicts with %s %s", e.method, e.pattern)
		}
	}
	write := r.Method != "GET" && r.Method != "HEAD"
	n.endpoints = append(n.endpoints, endpoint{method: r.Method, perm: permission(g, write), pattern: r.Pattern, takesBody: r.TakesBody})
	return nil
}

// literal returns n's child for the literal segment seg, adding it if needed.
func (n *routeNode) literal(seg string) *routeNode {
	for _, c := range n.literals {
		if strings.EqualFold(c.seg, seg) {
			return c.node
		}
	}
	c := literalChild{seg: seg, node: &routeNode{}}
	n.literals = append(n.literals, c)
	return c.node
}

var defaultRoutes = sync.OnceValue(func() *RouteTable {
	t, err := NewRouteTable(specRoutes)
	if err != nil {
		panic("auth: generated route table is broken: " + err.Error())
	}
	return t
})

// DefaultRoutes returns the table of the TeraSwitch API's routes, generated
// from its OpenAPI document. Every call returns the same table.
func DefaultRoutes() *RouteTable { return defaultRoutes() }

// Routes returns a copy of the routes the table was built from.
func (t *RouteTable) Routes() []Route { return append([]Route(nil), t.routes...) }

// Match finds the route of a request and the permission it needs.
//
// path must be the raw, still-escaped request path, as returned by
// (*url.URL).EscapedPath, never the decoded URL.Path: a decoded path has
// lost the difference between "/" and "%2F".
//
// Match returns CodeInvalidPath, and matches nothing, when path is not in
// canonical form: when it does not start with "/", has an empty segment
// ("//"; one trailing slash is tolerated) or a "." or ".." segment, has a
// byte outside RFC 3986's pchar set (so no backslash, space, control
// character or NUL), a malformed percent-escape, or a percent-escape of "/",
// "\", "%", a control character or an unreserved character (letter, digit,
// "-", ".", "_", "~"), which has one canonical, unescaped spelling.
//
// Otherwise the first segment must be "v1" or "v2" (both reach the same
// routes) and the rest must match a pattern: literal segments compare
// case-insensitively, as ASP.NET's routing compares them (segEqualFold), a {param} matches any one segment and, where both
// could match, a literal wins over a parameter. method must match exactly,
// except that HEAD is also served by a GET route. Match returns
// CodeUnknownRoute when no route matches, including a known path with a
// method it does not have.
//
// On success Match returns OK, the permission the route needs, the
// route's pattern as written in the table and whether the route takes a
// request body (a HEAD request matched to a GET route takes none). Match
// does not allocate.
func (t *RouteTable) Match(method, path string) (perm Permission, pattern string, takesBody bool, code Code) {
	if code := checkPath(path); code != OK {
		return PermNone, "", false, code
	}
	rest := path[1:]
	if strings.HasSuffix(rest, "/") {
		rest = rest[:len(rest)-1]
	}
	version, rest, _ := strings.Cut(rest, "/")
	if !isVersion(version) || rest == "" {
		return PermNone, "", false, CodeUnknownRoute
	}
	e := t.root.match(method, rest)
	if e == nil {
		return PermNone, "", false, CodeUnknownRoute
	}
	return e.perm, e.pattern, e.takesBody, OK
}

// match finds the endpoint for method below n, path being the segments left
// to match, without their leading slash. It tries a literal child before
// the parameter child, so a literal wins but a parameter still matches when
// the literal's subtree has no route for the method.
func (n *routeNode) match(method, path string) *endpoint {
	seg, rest, more := path, "", false
	if i := strings.IndexByte(path, '/'); i >= 0 {
		seg, rest, more = path[:i], path[i+1:], true
	}
	for i := range n.literals {
		c := &n.literals[i]
		if segEqualFold(c.seg, seg) {
			if e := c.node.next(method, rest, more); e != nil {
				return e
			}
			break
		}
	}
	if n.param != nil {
		return n.param.next(method, rest, more)
	}
	return nil
}

// next continues a match at n: with the remaining path if there is more,
// else with n's own endpoints.
func (n *routeNode) next(method, rest string, more bool) *endpoint {
	if more {
		return n.match(method, rest)
	}
	return n.endpoint(method)
}

// endpoint returns n's endpoint for method; HEAD falls back to GET.
func (n *routeNode) endpoint(method string) *endpoint {
	for i := range n.endpoints {
		if n.endpoints[i].method == method {
			return &n.endpoints[i]
		}
	}
	if method == "HEAD" {
		return n.endpoint("GET")
	}
	return nil
}

// segEqualFold reports whether the raw path segment seg spells the ASCII
// literal lit as ASP.NET's routing reads it: decoded, compared with
// OrdinalIgnoreCase, which upper-cases the dotless "ı" (%C4%B1) to "I" and
// the long "ſ" (%C5%BF) to "S" besides ASCII letters. A literal segment
// holds no "%" (NewRouteTable), so an escape matches only as one of those.
func segEqualFold(lit, seg string) bool {
	j := 0
	for i := 0; i < len(lit); i++ {
		c := lowerASCII(lit[i])
		switch {
		case j < len(seg) && lowerASCII(seg[j]) == c:
			j++
		case c == 'i' && escapedPairAt(seg, j, 0xc4, 0xb1), c == 's' && escapedPairAt(seg, j, 0xc5, 0xbf):
			j += 6
		default:
			return false
		}
	}
	return j == len(seg)
}

// escapedPairAt reports whether seg[j:] starts with the two bytes b1 and
// b2 percent-escaped, in either case of hex digits.
func escapedPairAt(seg string, j int, b1, b2 byte) bool {
	if len(seg)-j < 6 || seg[j] != '%' || seg[j+3] != '%' {
		return false
	}
	h1, ok1 := ascii.Unhex(seg[j+1])
	l1, ok2 := ascii.Unhex(seg[j+2])
	h2, ok3 := ascii.Unhex(seg[j+4])
	l2, ok4 := ascii.Unhex(seg[j+5])
	return ok1 && ok2 && ok3 && ok4 && h1<<4|l1 == b1 && h2<<4|l2 == b2
}

func isVersion(seg string) bool {
	return asciiEqualFold(seg, "v1") || asciiEqualFold(seg, "v2")
}

// asciiEqualFold reports whether a and b are equal under ASCII case folding.
// Unlike strings.EqualFold it does not fold non-ASCII letters, such as the
// Kelvin sign to "k": paths are ASCII.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// pathChars marks the bytes that may appear unescaped in a canonical path:
// RFC 3986's pchar (unreserved, sub-delims, ":" and "@"), "/", "%" (checked
// separately) and "[" and "]", which Go's URL.EscapedPath leaves alone.
var pathChars = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%[]") {
		t[c] = true
	}
	return t
}()

// checkPath returns OK if path is in canonical form (see Match), else
// CodeInvalidPath. The root path "/" is canonical (and matches nothing).
func checkPath(path string) Code {
	if path == "/" {
		return OK
	}
	if path == "" || path[0] != '/' {
		return CodeInvalidPath
	}
	if path[len(path)-1] == '/' {
		path = path[:len(path)-1] // one trailing slash is tolerated
	}
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if seg := path[segStart:i]; seg == "" || seg == "." || seg == ".." {
				return CodeInvalidPath
			}
			segStart = i + 1
			continue
		}
		c := path[i]
		if !pathChars[c] {
			return CodeInvalidPath
		}
		if c == '%' {
			if i+2 >= len(path) {
				return CodeInvalidPath
			}
			hi, ok1 := ascii.Unhex(path[i+1])
			lo, ok2 := ascii.Unhex(path[i+2])
			if !ok1 || !ok2 || !escapable(hi<<4|lo) {
				return CodeInvalidPath
			}
			i += 2
		}
	}
	return OK
}

// escapable reports whether a percent-escape of c may appear in a canonical
// path.
func escapable(c byte) bool {
	switch {
	case c < 0x20 || c == 0x7f, c == '/', c == '\\', c == '%':
		return false
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
		c == '-', c == '.', c == '_', c == '~':
		return false
	}
	return true
}
