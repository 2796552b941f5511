package auth

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParsePermSet(t *testing.T) {
	s, err := ParsePermSet([]string{"compute.read, Billing.Read", "network.write"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "billing.read,compute.read,network.write"; got != want {
		t.Errorf("set = %q, want %q", got, want)
	}
	_, err = ParsePermSet([]string{"compute.read,compute.admin", "usage.reads"})
	if err == nil || !strings.Contains(err.Error(), `"compute.admin"`) || !strings.Contains(err.Error(), `"usage.reads"`) {
		t.Errorf("error %v, want both bad names named", err)
	}
	if s, err := ParsePermSet(nil); err != nil || s != 0 {
		t.Errorf("empty: %v, %v", s, err)
	}
}

func TestRolePermissions(t *testing.T) {
	if got := RolePermissions(RoleAccounting); got != PermSet(0).With(PermBillingRead) {
		t.Errorf("accounting = %s", got)
	}
	if got := RolePermissions(RoleOwner); len(got.Permissions()) != len(Permissions()) {
		t.Errorf("owner = %s", got)
	}
}

func TestTokenPermits(t *testing.T) {
	scoped := &Token{Role: RoleOwner, Scopes: PermSet(0).With(PermComputeRead)}
	plain := &Token{Role: RoleOwner}
	acct := &Token{Role: RoleAccounting}
	for _, tc := range []struct {
		tok  *Token
		p    Permission
		want bool
	}{
		{scoped, PermComputeRead, true},
		{scoped, PermComputeWrite, false},
		{scoped, PermBillingRead, false},
		{plain, PermComputeWrite, true},
		{acct, PermBillingRead, true},
		{acct, PermComputeRead, false},
	} {
		if got := tc.tok.Permits(tc.p); got != tc.want {
			t.Errorf("%s scopes %q Permits(%s) = %t, want %t", tc.tok.Role, tc.tok.Scopes, tc.p, got, tc.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.1.2.3/8", "2001:db8::1/32,192.0.2.7", "10.0.0.0/8", "::ffff:198.51.100.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32"}
	if !slices.Equal(FormatPrefixes(got), want) {
		t.Errorf("ranges = %v, want %v", FormatPrefixes(got), want)
	}
	_, err = ParsePrefixes([]string{"10.0.0.0/33", "example.com", "fe80::1%eth0"})
	for _, bad := range []string{`"10.0.0.0/33"`, `"example.com"`, `"fe80::1%eth0"`} {
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("error %v, want %s named", err, bad)
		}
	}
}

func TestAllowsAddr(t *testing.T) {
	ranges, err := ParsePrefixes([]string{"10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tok := &Token{AllowedIPs: ranges}
	for addr, want := range map[string]bool{
		"10.9.8.7":          true,
		"::ffff:10.9.8.7":   true,
		"11.0.0.1":          false,
		"2001:db8:1::5":     true,
		"2001:db9::1":       false,
		"invalid (zero)":    false,
		"::ffff:11.0.0.1":   false,
		"127.0.0.1":         false,
		"0000:0000::0a00:1": false,
	} {
		a, _ := netip.ParseAddr(addr)
		if got := tok.AllowsAddr(a); got != want {
			t.Errorf("AllowsAddr(%s) = %t, want %t", addr, got, want)
		}
	}
	if !(&Token{}).AllowsAddr(netip.Addr{}) {
		t.Error("a token without ranges refused an unknown address")
	}
}

func TestPrefixesWithin(t *testing.T) {
	outer, _ := ParsePrefixes([]string{"10.0.0.0/8", "2001:db8::/32"})
	inner, _ := ParsePrefixes([]string{"10.1.0.0/16", "2001:db8:5::/48", "10.0.0.0/7", "192.0.2.0/24"})
	got := FormatPrefixes(PrefixesWithin(inner, outer))
	if want := []string{"10.0.0.0/7", "192.0.2.0/24"}; !slices.Equal(got, want) {
		t.Errorf("outside = %v, want %v", got, want)
	}
	if out := PrefixesWithin(inner, nil); out != nil {
		t.Errorf("no outer ranges: outside %v, want none", out)
	}
}

func TestIntersectPrefixes(t *testing.T) {
	a, _ := ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"})
	b, _ := ParsePrefixes([]string{"10.1.0.0/16", "192.0.0.0/16", "198.51.100.0/24", "2001:db8:5::/48"})
	got := FormatPrefixes(IntersectPrefixes(a, b))
	if want := []string{"10.1.0.0/16", "192.0.2.0/24", "2001:db8:5::/48"}; !slices.Equal(got, want) {
		t.Errorf("intersection %v, want %v", got, want)
	}
	if got := FormatPrefixes(IntersectPrefixes(nil, b)); len(got) != len(b) {
		t.Errorf("any address ∩ b = %v, want b", got)
	}
	if got := IntersectPrefixes(a[:1], b[2:3]); got != nil {
		t.Errorf("disjoint ranges intersect in %v", got)
	}
}

func TestValidateRestrictions(t *testing.T) {
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := testToken(t, h, 42, RoleAccounting)
	tok.Scopes = PermSet(0).With(PermComputeRead)
	if err := tok.Validate(); err == nil || !strings.Contains(err.Error(), "compute.read") {
		t.Errorf("accounting token scoped to compute.read: %v, want refused naming it", err)
	}
	tok.Scopes = PermSet(0).With(PermBillingRead)
	tok.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}
	if err := tok.Validate(); err == nil || !strings.Contains(err.Error(), "allowed ips") {
		t.Errorf("unmasked range: %v, want refused", err)
	}
	tok.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if err := tok.Validate(); err != nil {
		t.Errorf("valid restrictions refused: %v", err)
	}
}

func TestGateScopesAndAddresses(t *testing.T) {
	f := newGateFixture(t, nil)
	ranges, _ := ParsePrefixes([]string{"10.0.0.0/8"})
	scoped := f.token(t, RoleOwner, func(t *Token) { t.Scopes = PermSet(0).With(PermComputeRead) })
	bound := f.token(t, RoleOwner, func(t *Token) { t.AllowedIPs = ranges })
	inside, outside := netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name     string
		req      Request
		want     Code
		wantPerm Permission
	}{
		{"scoped read", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + scoped}, OK, PermComputeRead},
		{"scoped write", Request{Method: "POST", Path: "/v2/Instance", Authorization: "Bearer " + scoped}, CodePermissionDenied, PermComputeWrite},
		{"scoped billing", Request{Method: "GET", Path: "/v2/Invoice", Authorization: "Bearer " + scoped}, CodePermissionDenied, PermBillingRead},
		{"bound inside", Request{Method: "POST", Path: "/v2/Instance", Authorization: "Bearer " + bound, ClientAddr: inside}, OK, PermComputeWrite},
		{"bound outside", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + bound, ClientAddr: outside}, CodeIPNotAllowed, PermNone},
		{"bound unknown address", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + bound}, CodeIPNotAllowed, PermNone},
		{"bound outside, unknown route", Request{Method: "GET", Path: "/v2/Nope", Authorization: "Bearer " + bound, ClientAddr: outside}, CodeIPNotAllowed, PermNone},
	} {
		v := f.gate.Decide(context.Background(), &tc.req, time.Now())
		if v.Code != tc.want || v.Permission != tc.wantPerm {
			t.Errorf("%s: verdict %v (permission %s), want %v (%s)", tc.name, v.Code, v.Permission, tc.want, tc.wantPerm)
		}
	}
}

// TestGateAddressBeforeLimit checks that a request from outside a token's
// ranges spends none of its rate limit.
func TestGateAddressBeforeLimit(t *testing.T) {
	lim := &countingLimiter{}
	f := newGateFixture(t, lim)
	ranges, _ := ParsePrefixes([]string{"10.0.0.0/8"})
	bound := f.token(t, RoleOwner, func(t *Token) { t.AllowedIPs = ranges })
	req := Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + bound, ClientAddr: netip.MustParseAddr("192.0.2.1")}
	if v := f.gate.Decide(context.Background(), &req, time.Now()); v.Code != CodeIPNotAllowed {
		t.Fatalf("verdict %v, want ip_not_allowed", v.Code)
	}
	if lim.calls != 0 {
		t.Errorf("limiter called %d times for a refused address, want 0", lim.calls)
	}
}

type countingLimiter struct{ calls int }

func (l *countingLimiter) Allow(context.Context, *Token, time.Time) LimitStatus {
	l.calls++
	return LimitStatus{Enabled: true, Allowed: true}
}

// BenchmarkDecideRestricted is the hot path of a cached token with a
// scopes list and address ranges.
func BenchmarkDecideRestricted(b *testing.B) {
	f := newGateFixture(b, nil)
	ranges, _ := ParsePrefixes([]string{"192.0.2.0/24", "2001:db8::/32", "10.0.0.0/8"})
	tok := f.token(b, RoleOwner, func(t *Token) {
		t.Scopes = PermSet(0).With(PermComputeRead).With(PermBillingRead)
		t.AllowedIPs = ranges
	})
	req := &Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Limit=10", Authorization: "Bearer " + tok,
		ClientAddr: netip.MustParseAddr("10.1.2.3")}
	benchCacheHit(b, f, req)
}

// claimSets returns the empty set, every permission alone, every pair and
// the full set.
func claimSets() []PermSet {
	sets := []PermSet{0, allPermissions}
	for _, p := range Permissions() {
		sets = append(sets, PermSet(0).With(p))
		for _, q := range Permissions() {
			if q > p {
				sets = append(sets, PermSet(0).With(p).With(q))
			}
		}
	}
	return sets
}

func TestPermSetClaim(t *testing.T) {
	for _, s := range claimSets() {
		want := strings.Join(s.Names(), " ")
		for range 2 { // spelled, then cached
			if got := s.Claim(); got != want {
				t.Fatalf("%#x.Claim() = %q, want %q", uint32(s), got, want)
			}
		}
		if n := testing.AllocsPerRun(100, func() { _ = s.Claim() }); n != 0 {
			t.Errorf("%#x.Claim() allocates %v times", uint32(s), n)
		}
	}
	if got := PermSet(0).With(PermComputeRead).With(PermNetworkWrite).Claim(); got != "compute.read network.write" {
		t.Errorf("claim = %q", got)
	}
}

// TestPermSetClaimBounded spells more sets than the cache holds: every
// claim stays right and the cache stops growing at its bound.
func TestPermSetClaimBounded(t *testing.T) {
	perms := Permissions()
	if len(perms) < 9 {
		t.Skipf("%d permissions make too few sets to fill the cache", len(perms))
	}
	saved := claims.m.Load()
	claims.m.Store(nil)
	t.Cleanup(func() { claims.m.Store(saved) })
	for i := range 2 * maxClaims {
		var s PermSet
		for j, p := range perms {
			if i>>j&1 != 0 {
				s = s.With(p)
			}
		}
		if got, want := s.Claim(), strings.Join(s.Names(), " "); got != want {
			t.Fatalf("%#x.Claim() = %q, want %q", uint32(s), got, want)
		}
	}
	if n := len(*claims.m.Load()); n != maxClaims {
		t.Errorf("cache holds %d claims, want its bound %d", n, maxClaims)
	}
}

// TestPermSetClaimConcurrent spells the same sets from several goroutines
// at once; run it with -race.
func TestPermSetClaimConcurrent(t *testing.T) {
	sets := claimSets()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range sets {
				s := sets[(i+g*7)%len(sets)]
				if got, want := s.Claim(), strings.Join(s.Names(), " "); got != want {
					errs <- fmt.Sprintf("%#x.Claim() = %q, want %q", uint32(s), got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkPermSetClaim(b *testing.B) {
	s := PermSet(0).With(PermComputeRead).With(PermNetworkWrite).With(PermBillingRead)
	want := strings.Join(s.Names(), " ")
	b.ReportAllocs()
	for b.Loop() {
		if s.Claim() != want {
			b.Fatal("wrong claim")
		}
	}
}

// BenchmarkPermSetJoin is the spelling Claim saves: for comparison.
func BenchmarkPermSetJoin(b *testing.B) {
	s := PermSet(0).With(PermComputeRead).With(PermNetworkWrite).With(PermBillingRead)
	b.ReportAllocs()
	for b.Loop() {
		_ = strings.Join(s.Names(), " ")
	}
}

// A permission name is read in ASCII only: letters of any ASCII case and
// ASCII white space around it. Unicode case folding would take the
// Kelvin sign (U+212A) for "k", and Unicode white space would be trimmed,
// so a name other tools read as unknown would grant a permission.
func TestParsePermissionASCIIOnly(t *testing.T) {
	for _, ok := range []string{"SSH_KEYS.READ", " compute.Read\t"} {
		if _, err := ParsePermission(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"ssh_\u212aeys.read", "compute.read\u00a0", "\u2003tags.read", "compute.read\u0085"} {
		if _, err := ParsePermSet([]string{bad}); err == nil {
			t.Errorf("set %q: no error", bad)
		}
		if p, err := ParsePermission(bad); err == nil {
			t.Errorf("%q read as %s", bad, p)
		}
	}
}
