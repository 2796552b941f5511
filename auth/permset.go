package auth

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// PermSet is a set of permissions, one bit per Permission: the scopes a
// token may be limited to. The zero PermSet is the empty set; on a Token
// it means "no scopes list": the token may do what its role allows.
type PermSet uint32

// The set must hold every permission.
var _ = [32 - numPermissions]struct{}{}

// Has reports whether s holds p.
func (s PermSet) Has(p Permission) bool { return s&(1<<p) != 0 }

// With returns s with p added.
func (s PermSet) With(p Permission) PermSet { return s | 1<<p }

// Within reports whether every permission of s is in other.
func (s PermSet) Within(other PermSet) bool { return s&^other == 0 }

// Missing returns the permissions of s that are not in other.
func (s PermSet) Missing(other PermSet) PermSet { return s &^ other }

// Permissions lists the permissions of s in Permission order.
func (s PermSet) Permissions() []Permission {
	var ps []Permission
	for p := PermNone + 1; p < numPermissions; p++ {
		if s.Has(p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// Names lists the names of the permissions of s ("compute.read", …), in
// Permission order; nil for the empty set.
func (s PermSet) Names() []string {
	var names []string
	for _, p := range s.Permissions() {
		names = append(names, p.String())
	}
	return names
}

// String returns the names of s joined with ",", "" for the empty set.
func (s PermSet) String() string { return strings.Join(s.Names(), ",") }

// Claim returns the names of s joined with single spaces, the form of an
// OAuth "scope" claim (RFC 8693 §4.2); "" for the empty set. It equals
// strings.Join(s.Names(), " "), but a set spelled before is read from a
// cache and does not allocate. It is safe for concurrent use.
func (s PermSet) Claim() string {
	if s == 0 {
		return ""
	}
	if m := claims.m.Load(); m != nil {
		if c, ok := (*m)[s]; ok {
			return c
		}
		if len(*m) >= maxClaims { // full: spell it without taking the lock
			return strings.Join(s.Names(), " ")
		}
	}
	return claims.add(s)
}

// maxClaims bounds the claim cache. A token's scopes are few sets in
// practice; past the bound a set is spelled afresh on each call.
const maxClaims = 256

// claims caches the spelled claim of each PermSet seen.
var claims claimCache

// claimCache maps PermSets to their claims, copy on write: readers load
// the map without a lock, writers replace it under mu.
type claimCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[PermSet]string]
}

// add spells s and, while the cache has room, stores it.
func (c *claimCache) add(s PermSet) string {
	claim := strings.Join(s.Names(), " ")
	c.mu.Lock()
	defer c.mu.Unlock()
	var next map[PermSet]string
	if old := c.m.Load(); old != nil {
		if got, ok := (*old)[s]; ok {
			return got
		}
		if len(*old) >= maxClaims {
			return claim
		}
		next = maps.Clone(*old)
	} else {
		next = make(map[PermSet]string, 1)
	}
	next[s] = claim
	c.m.Store(&next)
	return claim
}

// valid reports whether s holds only permissions of the route table.
func (s PermSet) valid() bool { return s&^allPermissions == 0 }

// allPermissions is the set of every permission.
const allPermissions = PermSet(1<<numPermissions-1) &^ 1

// RolePermissions returns the permissions a role grants: every one for
// Owner, billing.read (invoices and usage) for Accounting.
func RolePermissions(r Role) PermSet {
	var s PermSet
	for p := PermNone + 1; p < numPermissions; p++ {
		if r.Allows(p) {
			s = s.With(p)
		}
	}
	return s
}

// ParsePermission accepts a permission name in any ASCII letter case,
// with ASCII white space around it, e.g. "compute.read". Nothing else
// folds: not the Kelvin sign for "k", nor Unicode white space.
func ParsePermission(name string) (Permission, error) {
	n := strings.Trim(name, asciiSpace)
	for p := PermNone + 1; p < numPermissions; p++ {
		if equalFoldASCII(permNames[p], n) {
			return p, nil
		}
	}
	return PermNone, fmt.Errorf("unknown permission %q: want one of %s", name, allPermissions)
}

// asciiSpace is the white space a permission name may have around it.
const asciiSpace = " \t\n\r\v\f"

// equalFoldASCII reports whether lower (lower case) is s in ASCII letters
// of any case.
func equalFoldASCII(lower, s string) bool {
	if len(lower) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// ParsePermSet parses permission names (each may itself be a
// comma-separated list). It names every unknown one in its error.
func ParsePermSet(names []string) (PermSet, error) {
	var s PermSet
	var errs []error
	for _, list := range names {
		for n := range strings.SplitSeq(list, ",") {
			if strings.Trim(n, asciiSpace) == "" {
				continue
			}
			p, err := ParsePermission(n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s = s.With(p)
		}
	}
	return s, errors.Join(errs...)
}

// Permits reports whether t may use a route that needs p: its role allows
// it, and its scopes list, when it has one, holds it.
func (t *Token) Permits(p Permission) bool {
	return t.Role.Allows(p) && (t.Scopes == 0 || t.Scopes.Has(p))
}

// EffectivePermissions returns what t may do: its scopes, or its role's
// permissions when it has no scopes list.
func (t *Token) EffectivePermissions() PermSet {
	if t.Scopes != 0 {
		return t.Scopes & RolePermissions(t.Role)
	}
	return RolePermissions(t.Role)
}

// MaxAllowedIPs bounds a token's list of address ranges.
const MaxAllowedIPs = 64

// AllowsAddr reports whether a request from addr may use t: t has no
// address ranges, or one of them holds addr. An IPv4 address written as
// IPv6 (::ffff:10.0.0.1) counts as IPv4. It does not allocate.
func (t *Token) AllowsAddr(addr netip.Addr) bool {
	if len(t.AllowedIPs) == 0 {
		return true
	}
	return addrIn(addr, t.AllowedIPs)
}

// addrIn reports whether one of ranges holds addr.
func addrIn(addr netip.Addr, ranges []netip.Prefix) bool {
	addr = addr.Unmap()
	for _, r := range ranges {
		if r.Contains(addr) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses CIDR ranges ("10.0.0.0/8", "2001:db8::/32"); a
// bare address is a range of one address. The ranges are returned masked
// (their host bits cleared), deduplicated and sorted. It names every bad
// value in its error.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, list := range values {
		for v := range strings.SplitSeq(list, ",") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			p, err := parsePrefix(v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
	}
	if len(out) > MaxAllowedIPs {
		errs = append(errs, fmt.Errorf("%d address ranges: at most %d", len(out), MaxAllowedIPs))
	}
	return normalizePrefixes(out), errors.Join(errs...)
}

func parsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32", v)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32", v)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped range needs at least 96 bits", v)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// normalizePrefixes masks, sorts and deduplicates ranges; nil for none.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// FormatPrefixes writes ranges as strings ("10.0.0.0/8"); nil for none.
func FormatPrefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// PrefixesWithin reports whether every range of inner lies inside one of
// outer; an empty outer (no restriction) holds everything. It returns the
// ranges of inner that do not.
func PrefixesWithin(inner, outer []netip.Prefix) (outside []netip.Prefix) {
	if len(outer) == 0 {
		return nil
	}
	for _, in := range inner {
		if !prefixInside(in, outer) {
			outside = append(outside, in)
		}
	}
	return outside
}

// IntersectPrefixes returns the addresses in both a and b as ranges
// (masked, sorted, no duplicates); an empty a stands for every address.
// Two CIDR ranges either nest or are disjoint, so each overlap is the
// narrower of a pair.
func IntersectPrefixes(a, b []netip.Prefix) []netip.Prefix {
	if len(a) == 0 {
		return normalizePrefixes(b)
	}
	var out []netip.Prefix
	for _, x := range a {
		for _, y := range b {
			switch {
			case prefixInside(x, []netip.Prefix{y}):
				out = append(out, x)
			case prefixInside(y, []netip.Prefix{x}):
				out = append(out, y)
			}
		}
	}
	return normalizePrefixes(out)
}

func prefixInside(in netip.Prefix, outer []netip.Prefix) bool {
	for _, o := range outer {
		if o.Addr().Is4() == in.Addr().Is4() && o.Bits() <= in.Bits() && o.Contains(in.Addr()) {
			return true
		}
	}
	return false
}

// validateRestrictions checks a record's scopes and address ranges.
func (t *Token) validateRestrictions() []error {
	var errs []error
	if !t.Scopes.valid() {
		errs = append(errs, errors.New("scopes: holds an unknown permission"))
	} else if extra := t.Scopes.Missing(RolePermissions(t.Role)); t.Scopes != 0 && t.Role != RoleInvalid && extra != 0 {
		errs = append(errs, fmt.Errorf("scopes: the %s role does not grant %s", t.Role, extra))
	}
	if len(t.AllowedIPs) > MaxAllowedIPs {
		errs = append(errs, fmt.Errorf("allowed ips: %d ranges, at most %d", len(t.AllowedIPs), MaxAllowedIPs))
	}
	for _, p := range t.AllowedIPs {
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			errs = append(errs, fmt.Errorf("allowed ips: %s is not a masked CIDR range", p))
		}
	}
	return errs
}
