package tokenapi

// Scopes and address ranges: what a token may do (a scopes list within
// its role) and where from (allowed_ips). No token grants what it lacks:
// a token made or edited by a token is at most as permitted as its maker,
// and usable from at most its maker's address ranges.
//
//   - A create by a token that names scopes beyond its own effective
//     permissions, or ranges outside its own, is refused (403
//     scope_forbidden, allowed_ips_forbidden). One that names none
//     inherits the maker's: its scopes narrowed to the maker's
//     permissions, its ranges the maker's.
//   - An update by a token that sets scopes or ranges, or activates a
//     token, must leave the target within the maker's permissions and
//     ranges (clearing the ranges of a token when the maker has some is
//     widening it).
//   - A rotation's successor keeps the old token's scopes and ranges,
//     narrowed to the maker's; when nothing is left, it is refused.
//     Scopes or ranges the rotation names are held to the maker's like
//     an update's: naming no ranges, when the maker has some, is refused.

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/tswgate/tswgate/auth"
)

// Codes of the restriction rules.
const (
	codeScope  = "scope_forbidden"
	codeRanges = "allowed_ips_forbidden"
	codeLimit  = "limit_forbidden"
)

// parseScopes reads a request's scopes list for a token of role,
// adding its problems: every unknown name, and permissions the role does
// not grant.
func parseScopes(names []string, role auth.Role, problems *[]string) auth.PermSet {
	s, err := auth.ParsePermSet(names)
	if err != nil {
		*problems = append(*problems, "scopes: "+oneLine(err))
		return 0
	}
	if len(names) > 0 && s == 0 {
		*problems = append(*problems, "scopes: empty names; give permission names such as compute.read")
	}
	if extra := s.Missing(auth.RolePermissions(role)); role != auth.RoleInvalid && extra != 0 {
		*problems = append(*problems, fmt.Sprintf("scopes: the %s role does not grant %s", role, extra))
	}
	return s
}

// parseRanges reads a request's allowed_ips, adding its problems (every
// bad value named).
func parseRanges(values []string, problems *[]string) []netip.Prefix {
	ps, err := auth.ParsePrefixes(values)
	if err != nil {
		*problems = append(*problems, "allowed_ips: "+oneLine(err))
		return nil
	}
	return ps
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// scopeRefusal refuses a token more permitted than its maker.
func scopeRefusal(maker *auth.Token, missing auth.PermSet) *refusal {
	return &refusal{
		status: http.StatusForbidden, code: codeScope,
		message: fmt.Sprintf("A token may not grant what it lacks: this token does not have %s. "+
			"It may give only its own permissions (%s).", missing, maker.EffectivePermissions()),
		detail: "asked for " + missing.String() + " beyond the token asking",
	}
}

// rangesRefusal refuses a token usable from addresses its maker is not.
func rangesRefusal(maker *auth.Token, outside []netip.Prefix) *refusal {
	what := "no address ranges (any address)"
	if len(outside) > 0 {
		what = strings.Join(auth.FormatPrefixes(outside), ", ")
	}
	return &refusal{
		status: http.StatusForbidden, code: codeRanges,
		message: fmt.Sprintf("A token may not grant what it lacks: this token may be used only from %s, "+
			"so a token it makes or changes must be bound to ranges within them, not %s.",
			strings.Join(auth.FormatPrefixes(maker.AllowedIPs), ", "), what),
		detail: "asked for ranges outside the token asking: " + what,
	}
}

// withinMaker checks that t is no more permitted than maker and usable
// from no address maker is not; it returns the refusal when t is wider.
func withinMaker(maker, t *auth.Token) *refusal {
	if missing := t.EffectivePermissions().Missing(maker.EffectivePermissions()); missing != 0 {
		return scopeRefusal(maker, missing)
	}
	if len(maker.AllowedIPs) == 0 {
		return nil
	}
	if len(t.AllowedIPs) == 0 {
		return rangesRefusal(maker, nil)
	}
	if outside := auth.PrefixesWithin(t.AllowedIPs, maker.AllowedIPs); len(outside) > 0 {
		return rangesRefusal(maker, outside)
	}
	return nil
}

// narrowTo narrows t, made by maker, to maker's permissions and ranges:
// the scopes its maker has of t's, the ranges both allow. It returns what
// it changed, for the audit trail, and a refusal when nothing would be
// left of t's permissions or ranges.
func narrowTo(maker, t *auth.Token) (changed []string, ref *refusal) {
	own, limit := t.EffectivePermissions(), maker.EffectivePermissions()
	if !own.Within(limit) {
		both := own & limit
		if both == 0 {
			return nil, scopeRefusal(maker, own.Missing(limit))
		}
		t.Scopes = both
		changed = append(changed, "scopes "+both.String())
	}
	if len(maker.AllowedIPs) > 0 && (len(t.AllowedIPs) == 0 || len(auth.PrefixesWithin(t.AllowedIPs, maker.AllowedIPs)) > 0) {
		both := auth.IntersectPrefixes(t.AllowedIPs, maker.AllowedIPs)
		if len(both) == 0 {
			return nil, rangesRefusal(maker, t.AllowedIPs)
		}
		t.AllowedIPs = both
		changed = append(changed, "allowed_ips "+strings.Join(auth.FormatPrefixes(both), ","))
	}
	return changed, nil
}

// describeScopes writes a token's scopes for the audit trail:
// "compute.read,billing.read", or "(role owner)" without a list.
func describeScopes(t *auth.Token) string {
	if t.Scopes == 0 {
		return "(role " + t.Role.String() + ")"
	}
	return t.Scopes.String()
}

// describeRanges writes a token's ranges for the audit trail:
// "10.0.0.0/8", or "(any)" without any.
func describeRanges(t *auth.Token) string {
	if len(t.AllowedIPs) == 0 {
		return "(any)"
	}
	return strings.Join(auth.FormatPrefixes(t.AllowedIPs), ",")
}

// restrictionChanges says how an update changed a token's scopes and
// ranges, before→after, for the audit trail; nil when it did not.
func restrictionChanges(before, after *auth.Token) []string {
	var out []string
	if before.Scopes != after.Scopes {
		out = append(out, fmt.Sprintf("scopes %s→%s", describeScopes(before), describeScopes(after)))
	}
	if b, a := describeRanges(before), describeRanges(after); b != a {
		out = append(out, fmt.Sprintf("allowed_ips %s→%s", b, a))
	}
	return out
}

// restrictCreate applies the rules to tok, which maker is creating:
// scopes or ranges the request names (named*) must be within maker's —
// ranges named as none included, as for an update;
// those it does not name are inherited from maker. It returns what was
// inherited, for the audit trail and the answer.
func restrictCreate(maker, tok *auth.Token, namedScopes, namedRanges bool) ([]string, *refusal) {
	if namedScopes {
		if missing := tok.EffectivePermissions().Missing(maker.EffectivePermissions()); missing != 0 {
			return nil, scopeRefusal(maker, missing)
		}
	}
	if namedRanges && len(maker.AllowedIPs) > 0 {
		if len(tok.AllowedIPs) == 0 {
			// Named as none (a rotation's "allowed_ips": []): clearing
			// the ranges widens the token, as an update's would.
			return nil, rangesRefusal(maker, nil)
		}
		if outside := auth.PrefixesWithin(tok.AllowedIPs, maker.AllowedIPs); len(outside) > 0 {
			return nil, rangesRefusal(maker, outside)
		}
	}
	return narrowTo(maker, tok)
}

// restrictedEdit wraps an update's edit with the rules for a change
// maker makes: when the update sets scopes or ranges, or activates the
// token, the result must be within maker's permissions and ranges; a
// token it activates must also be limited at most as maker is (ceiling,
// maker's effective limit, compared by effective). Like guardedEdit, it
// runs on the current record inside the store's Update.
func restrictedEdit(maker *auth.Token, setsRestrictions bool, ceiling Limit, effective func(*auth.Token) Limit,
	edit func(*auth.Token) error) func(*auth.Token) error {
	return func(t *auth.Token) error {
		activates := t.Status != auth.StatusActive
		if err := edit(t); err != nil {
			return err
		}
		activates = activates && t.Status == auth.StatusActive
		if !setsRestrictions && !activates {
			return nil
		}
		if ref := withinMaker(maker, t); ref != nil {
			return ref
		}
		if activates {
			return limitWithin(t, ceiling, effective)
		}
		return nil
	}
}

// limitWithin refuses activating t, whose effective limit is wider than
// ceiling (its activator's: a higher rate or burst, none, or one in
// shadow mode where the activator's is enforced); nil when it is not.
func limitWithin(t *auth.Token, ceiling Limit, effective func(*auth.Token) Limit) error {
	probe := *t
	if !inheritLimit(&probe, ceiling, effective) {
		return nil
	}
	return &refusal{
		status: http.StatusForbidden, code: codeLimit,
		message: fmt.Sprintf("A token may not grant what it lacks: this token is limited to %g requests per second "+
			"(bursts of %d), and the token to activate is less limited. Ask the operator to activate it with an admin key, "+
			"or rotate it and activate its successor, which takes this token's limit.", ceiling.Rate, burstOf(ceiling.Rate, ceiling.Burst)),
		detail: "asked to activate a token less limited than the token asking",
	}
}

// clientAddr is the address of r's client: Options.ClientAddr's, else
// the connection's peer.
func (a *api) clientAddr(r *http.Request) netip.Addr {
	if a.ClientAddr != nil {
		return a.ClientAddr(r)
	}
	return peerAddr(r)
}

// peerAddr is the address of a request's peer, the zero Addr when
// RemoteAddr is not one.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		a, _ := netip.ParseAddr(r.RemoteAddr)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}
