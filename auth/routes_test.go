package auth

import (
	"strings"
	"testing"
)

type matchCase struct {
	method, path string
	perm         Permission
	pattern      string
	code         Code
}

var matchCases = []matchCase{
	// Plain routes, versions and letter case.
	{"GET", "/v2/Instance", PermComputeRead, "/v2/Instance", OK},
	{"POST", "/v2/Instance", PermComputeWrite, "/v2/Instance", OK},
	{"GET", "/v1/Instance", PermComputeRead, "/v2/Instance", OK},
	{"GET", "/V2/INSTANCE", PermComputeRead, "/v2/Instance", OK},
	{"GET", "/v2/instance", PermComputeRead, "/v2/Instance", OK},
	{"GET", "/v3/Instance", PermNone, "", CodeUnknownRoute},
	{"GET", "/Instance", PermNone, "", CodeUnknownRoute},
	{"GET", "/v2", PermNone, "", CodeUnknownRoute},
	{"GET", "/v2/", PermNone, "", CodeUnknownRoute},
	{"GET", "/", PermNone, "", CodeUnknownRoute},

	// Every permission group.
	{"GET", "/v2/Invoice", PermBillingRead, "/v2/Invoice", OK},
	{"GET", "/v2/Invoice/INV-1", PermBillingRead, "/v2/Invoice/{invoiceId}", OK},
	{"GET", "/v2/Usage", PermBillingRead, "/v2/Usage", OK},
	{"GET", "/v2/Usage/17", PermBillingRead, "/v2/Usage/{serviceId}", OK},
	{"GET", "/v2/Image", PermComputeRead, "/v2/Image", OK},
	{"POST", "/v2/Metal/9/Reinstall", PermComputeWrite, "/v2/Metal/{id}/Reinstall", OK},
	{"PUT", "/v2/Network", PermNetworkWrite, "/v2/Network", OK},
	{"GET", "/v2/Network/abc", PermNetworkRead, "/v2/Network/{networkId}", OK},
	{"DELETE", "/v2/Volume", PermStorageWrite, "/v2/Volume", OK},
	{"PUT", "/v2/Volume/attach", PermStorageWrite, "/v2/Volume/attach", OK},
	{"GET", "/v2/SshKey/5", PermSSHKeysRead, "/v2/SshKey/{id}", OK},
	{"DELETE", "/v2/sshkey/5", PermSSHKeysWrite, "/v2/SshKey/{id}", OK},
	{"GET", "/v2/Region", PermCatalogRead, "/v2/Region", OK},
	{"POST", "/v2/Price/Calculate", PermCatalogWrite, "/v2/Price/Calculate", OK},
	{"GET", "/v2/Tags", PermTagsRead, "/v2/Tags", OK},
	{"POST", "/v2/Tags/service", PermTagsWrite, "/v2/Tags/service", OK},
	{"GET", "/v2/Search", PermSearchRead, "/v2/Search", OK},

	// Parameters and literal-over-parameter precedence.
	{"GET", "/v2/Metal/templates", PermComputeRead, "/v2/Metal/templates", OK},
	{"GET", "/v2/metal/TEMPLATES", PermComputeRead, "/v2/Metal/templates", OK},
	{"GET", "/v2/Metal/Availability", PermComputeRead, "/v2/Metal/Availability", OK},
	{"GET", "/v2/Metal/templates2", PermComputeRead, "/v2/Metal/{id}", OK},
	{"GET", "/v2/Metal/42", PermComputeRead, "/v2/Metal/{id}", OK},
	{"GET", "/v2/Metal/42/Logs", PermComputeRead, "/v2/Metal/{id}/Logs", OK},
	{"GET", "/v2/Metal/templates/Logs", PermComputeRead, "/v2/Metal/{id}/Logs", OK},
	{"POST", "/v2/Metal/42/PowerCommand", PermComputeWrite, "/v2/Metal/{id}/PowerCommand", OK},
	{"GET", "/v2/Instance/tiers", PermComputeRead, "/v2/Instance/tiers", OK},
	// No DELETE route under the literal: the parameter route serves it.
	{"DELETE", "/v2/Instance/tiers", PermComputeWrite, "/v2/Instance/{id}", OK},
	{"GET", "/v2/Volume/list-attached", PermStorageRead, "/v2/Volume/list-attached", OK},
	{"GET", "/v2/Volume/list-attachable", PermStorageRead, "/v2/Volume/list-attachable", OK},
	{"GET", "/v2/Volume/12", PermNone, "", CodeUnknownRoute},
	{"POST", "/v2/Instance/i-1/networks/attach", PermComputeWrite, "/v2/Instance/{instanceId}/networks/attach", OK},
	{"GET", "/v2/Instance/i%20x", PermComputeRead, "/v2/Instance/{id}", OK},
	{"GET", "/v2/Instance/%C3%A9", PermComputeRead, "/v2/Instance/{id}", OK},
	{"GET", "/v2/Instance/a:b@c[1]", PermComputeRead, "/v2/Instance/{id}", OK},
	{"GET", "/v2/Instance/1/2", PermNone, "", CodeUnknownRoute},
	{"GET", "/v2/Metal/1/Logs/x", PermNone, "", CodeUnknownRoute},

	// Methods.
	{"HEAD", "/v2/Invoice", PermBillingRead, "/v2/Invoice", OK},
	{"HEAD", "/v2/Metal/7", PermComputeRead, "/v2/Metal/{id}", OK},
	{"HEAD", "/v2/Tags/service", PermNone, "", CodeUnknownRoute},
	{"PATCH", "/v2/Instance", PermNone, "", CodeUnknownRoute},
	{"DELETE", "/v2/Invoice", PermNone, "", CodeUnknownRoute},
	{"get", "/v2/Instance", PermNone, "", CodeUnknownRoute},
	{"", "/v2/Instance", PermNone, "", CodeUnknownRoute},
	{"OPTIONS", "/v2/Instance", PermNone, "", CodeUnknownRoute},

	// One trailing slash.
	{"GET", "/v2/Instance/", PermComputeRead, "/v2/Instance", OK},
	{"GET", "/v2/Metal/7/", PermComputeRead, "/v2/Metal/{id}", OK},
	{"GET", "/v2/Instance//", PermNone, "", CodeInvalidPath},

	// Non-canonical paths.
	{"GET", "", PermNone, "", CodeInvalidPath},
	{"GET", "v2/Instance", PermNone, "", CodeInvalidPath},
	{"GET", "*", PermNone, "", CodeInvalidPath},
	{"GET", "//v2/Instance", PermNone, "", CodeInvalidPath},
	{"GET", "/v2//Instance", PermNone, "", CodeInvalidPath},
	{"GET", "//", PermNone, "", CodeInvalidPath},
	{"GET", "/./v2/Instance", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/./Instance", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/.", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/..", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/../Invoice", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Invoice/../Instance/", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%2e%2e", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%2E", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/.%2E", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/1%2F..", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance%2f1", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/1%5C2", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/1%5c2", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/1%252F", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%25", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/%49nstance", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%41", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%7e", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%00", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%0A", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%7F", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%4", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%zz", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/%/", PermNone, "", CodeInvalidPath},
	{"GET", "/v2\\Instance", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance\\", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/1\x00", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/\t1", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/a b", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/\x7f", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/\xc3\xa9", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance?x=1", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance#x", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/{id}", PermNone, "", CodeInvalidPath},
	{"GET", "/v2/Instance/\"1\"", PermNone, "", CodeInvalidPath},
}

func TestMatch(t *testing.T) {
	table := DefaultRoutes()
	for _, tc := range matchCases {
		perm, pattern, _, code := table.Match(tc.method, tc.path)
		if perm != tc.perm || pattern != tc.pattern || code != tc.code {
			t.Errorf("Match(%q, %q) = %v, %q, %v; want %v, %q, %v",
				tc.method, tc.path, perm, pattern, code, tc.perm, tc.pattern, tc.code)
		}
	}
}

// TestMatchEverySpecRoute checks that each generated route matches itself,
// with parameters filled in, and needs the permission its resource and
// method call for.
func TestMatchEverySpecRoute(t *testing.T) {
	groups := map[string]string{
		"invoice": "billing", "usage": "billing",
		"instance": "compute", "metal": "compute", "image": "compute",
		"network": "network", "volume": "storage", "sshkey": "ssh_keys",
		"region": "catalog", "price": "catalog", "tags": "tags", "search": "search",
	}
	table := DefaultRoutes()
	if len(table.Routes()) != len(specRoutes) || len(specRoutes) == 0 {
		t.Fatalf("Routes() has %d routes, specRoutes %d", len(table.Routes()), len(specRoutes))
	}
	for _, r := range specRoutes {
		segs := strings.Split(r.Pattern, "/")
		group, ok := groups[strings.ToLower(segs[2])]
		if !ok {
			t.Errorf("%s %s: resource %q has no group in this test", r.Method, r.Pattern, segs[2])
			continue
		}
		access := "write"
		if r.Method == "GET" {
			access = "read"
		}
		for i, s := range segs {
			if strings.HasPrefix(s, "{") {
				segs[i] = "x1"
			}
		}
		path := strings.Join(segs, "/")
		for _, p := range []string{path, strings.Replace(path, "/v2/", "/v1/", 1), strings.ToUpper(path), path + "/"} {
			perm, pattern, takesBody, code := table.Match(r.Method, p)
			if code != OK || pattern != r.Pattern || perm.String() != group+"."+access || takesBody != r.TakesBody {
				t.Errorf("Match(%q, %q) = %v, %q, %v, %v; want %s.%s, %q, %v, ok", r.Method, p, perm, pattern, takesBody, code, group, access, r.Pattern, r.TakesBody)
			}
		}
	}
}

func TestPermissions(t *testing.T) {
	ps := Permissions()
	if len(ps) != 18 {
		t.Fatalf("Permissions() has %d entries, want 18", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		s := p.String()
		group, access, ok := strings.Cut(s, ".")
		if !ok || group == "" || (access != "read" && access != "write") || seen[s] {
			t.Errorf("bad or duplicate permission name %q", s)
		}
		seen[s] = true
	}
	for _, want := range []string{"billing.read", "compute.write", "ssh_keys.read", "catalog.write", "search.read", "tokens.read", "tokens.write"} {
		if !seen[want] {
			t.Errorf("no permission %q", want)
		}
	}
	for _, p := range ps {
		if got, want := p.Management(), p == PermTokensRead || p == PermTokensWrite; got != want {
			t.Errorf("%s.Management() = %v", p, got)
		}
	}
	if PermNone.String() != "none" || Permission(200).String() != "invalid" {
		t.Errorf("PermNone = %q, Permission(200) = %q", PermNone, Permission(200))
	}
}

func TestRoleAllows(t *testing.T) {
	for _, p := range append(Permissions(), PermNone, numPermissions, 255) {
		valid := p != PermNone && p < numPermissions
		if got := RoleOwner.Allows(p); got != valid {
			t.Errorf("owner.Allows(%v) = %v, want %v", p, got, valid)
		}
		if got, want := RoleAccounting.Allows(p), p == PermBillingRead; got != want {
			t.Errorf("accounting.Allows(%v) = %v, want %v", p, got, want)
		}
		if RoleInvalid.Allows(p) || Role(99).Allows(p) {
			t.Errorf("an invalid role allows %v", p)
		}
	}
}

func TestNewRouteTableErrors(t *testing.T) {
	for _, r := range []Route{
		{Method: "", Pattern: "/v2/Instance"},
		{Method: "get", Pattern: "/v2/Instance"},
		{Method: "GET", Pattern: "v2/Instance"},
		{Method: "GET", Pattern: "/v2/Instance/"},
		{Method: "GET", Pattern: "/v2"},
		{Method: "GET", Pattern: "/v3/Instance"},
		{Method: "GET", Pattern: "/v2/Unknown"},
		{Method: "GET", Pattern: "/v2/{x}"},
		{Method: "GET", Pattern: "/v2/Instance/{}"},
		{Method: "GET", Pattern: "/v2/Instance/{a}b"},
		{Method: "GET", Pattern: "/v2/Instance/{a{b}}"},
		{Method: "GET", Pattern: "/v2/Instance/a%20b"},
		{Method: "GET", Pattern: "/v2/Instance/../x"},
		{Method: "GET", Pattern: "/v2//Instance"},
	} {
		if _, err := NewRouteTable([]Route{r}); err == nil {
			t.Errorf("NewRouteTable(%v) succeeded, want an error", r)
		}
	}
	// Duplicates, also up to letter case and parameter names.
	for _, pair := range [][2]Route{
		{{Method: "GET", Pattern: "/v2/Instance"}, {Method: "GET", Pattern: "/v2/Instance"}},
		{{Method: "GET", Pattern: "/v2/Instance"}, {Method: "GET", Pattern: "/v1/instance"}},
		{{Method: "GET", Pattern: "/v2/Instance/{id}"}, {Method: "GET", Pattern: "/v2/Instance/{other}"}},
	} {
		if _, err := NewRouteTable(pair[:]); err == nil {
			t.Errorf("NewRouteTable(%v) succeeded, want a conflict", pair)
		}
	}
	table, err := NewRouteTable([]Route{{Method: "HEAD", Pattern: "/v1/Search"}, {Method: "PATCH", Pattern: "/v1/Search"}})
	if err != nil {
		t.Fatal(err)
	}
	if perm, pattern, _, code := table.Match("HEAD", "/v2/search"); perm != PermSearchRead || pattern != "/v1/Search" || code != OK {
		t.Errorf("HEAD route: %v %q %v", perm, pattern, code)
	}
	if perm, _, _, code := table.Match("PATCH", "/v1/Search"); perm != PermSearchWrite || code != OK {
		t.Errorf("PATCH route: %v %v", perm, code)
	}
}

// TestMatchTakesBody checks which routes take a request body: those whose
// operation declares one in the spec, and never a HEAD request.
func TestMatchTakesBody(t *testing.T) {
	table := DefaultRoutes()
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v2/Instance", true},
		{"GET", "/v2/Instance", false},
		{"HEAD", "/v2/Instance", false},
		{"POST", "/v2/Metal", true},
		{"POST", "/v2/SshKey", true},
		{"POST", "/v1/metal/7/RENAME", true},
		{"POST", "/v2/Metal/7/Reinstall", true},
		{"POST", "/v2/Metal/7/PowerCommand", false},
		{"POST", "/v2/Instance/7/PowerCommand", false},
		{"DELETE", "/v2/Volume", true},
		{"DELETE", "/v2/Network", false},
		{"DELETE", "/v2/Tags/service", true},
		{"PUT", "/v2/Network", true},
		{"GET", "/v2/Usage", false},
		{"GET", "/v2/Invoice/1", false},
	} {
		_, _, got, code := table.Match(tc.method, tc.path)
		if code != OK || got != tc.want {
			t.Errorf("Match(%q, %q): takesBody %v, %v; want %v", tc.method, tc.path, got, code, tc.want)
		}
	}
	n := 0
	for _, r := range specRoutes {
		if r.TakesBody {
			n++
			if r.Method == "GET" || r.Method == "HEAD" {
				t.Errorf("%s %s takes a body", r.Method, r.Pattern)
			}
		}
	}
	if n == 0 || n == len(specRoutes) {
		t.Errorf("%d of %d routes take a body", n, len(specRoutes))
	}
	table2, err := NewRouteTable([]Route{{Method: "GET", Pattern: "/v1/Search"}, {Method: "POST", Pattern: "/v1/Search", TakesBody: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body, _ := table2.Match("HEAD", "/v1/Search"); body {
		t.Error("HEAD takes a body")
	}
	if _, _, body, _ := table2.Match("POST", "/v1/Search"); !body {
		t.Error("POST does not take its body")
	}
}

func TestRoutesIsACopy(t *testing.T) {
	table := DefaultRoutes()
	rs := table.Routes()
	rs[0].Pattern = "/changed"
	if table.Routes()[0].Pattern == "/changed" {
		t.Error("Routes exposes the table's slice")
	}
	if DefaultRoutes() != table {
		t.Error("DefaultRoutes returns a new table on each call")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	table := DefaultRoutes()
	for _, tc := range matchCases {
		n := testing.AllocsPerRun(20, func() { table.Match(tc.method, tc.path) })
		if n != 0 {
			t.Errorf("Match(%q, %q) allocates %v times", tc.method, tc.path, n)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	table := DefaultRoutes()
	for _, bc := range []struct{ name, method, path string }{
		{"short", "GET", "/v2/Instance"},
		{"param", "POST", "/v2/Instance/12345/networks/attach"},
		{"literal", "GET", "/v2/Metal/templates"},
		{"invalid", "GET", "/v2/Instance/%2e%2e/Invoice"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				table.Match(bc.method, bc.path)
			}
		})
	}
}

// TestMatchNonASCIIFold: ASP.NET's routing compares literal segments
// with OrdinalIgnoreCase, which upper-cases the dotless "ı" to "I" and the
// long "ſ" to "S" (but leaves "İ" and the Kelvin sign): the gateway must
// match such a segment to the literal route the API serves, not to a
// {param} route beside it.
func TestMatchNonASCIIFold(t *testing.T) {
	table := DefaultRoutes()
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v2/Instance/t%C4%B1ers", "/v2/Instance/tiers"},
		{"GET", "/v2/Instance/T%c4%b1ERS", "/v2/Instance/tiers"},
		{"GET", "/v2/Metal/template%C5%BF", "/v2/Metal/templates"},
		{"POST", "/v2/Tags/%C5%BFervice", "/v2/Tags/service"},
		{"GET", "/v2/Instance/t%C4%B0ers", "/v2/Instance/{id}"}, // "İ" is not "I"
		{"GET", "/v2/Instance/t%C4%B1er", "/v2/Instance/{id}"},
		{"GET", "/v2/Instance/t%C4%B", ""},
	} {
		_, pattern, _, _ := table.Match(c.method, c.path)
		if pattern != c.want {
			t.Errorf("Match(%s %s) = %q, want %q", c.method, c.path, pattern, c.want)
		}
	}
}
