package tokenapi

// No token widens itself. The rules a request authenticated by an API
// token (on either listener; admin keys are not bound by them) follows
// beyond its project scope:
//
//   - a token rotated with a grace period may only read (tokens, the
//     audit trail, the policy, webhooks) and revoke: token_rotated for the
//     rest;
//   - a token never makes or keeps alive a token that outlives it, and
//     never lengthens a life: a create by a token with an expiry must
//     expire at or before it; an update may only bring an expiry forward
//     (and not past the caller's), nor activate a token that outlives the
//     caller; a rotation's successor ends at the latest when the caller
//     does (lifetime_forbidden);
//   - a token made (created or rotated) by a token gets no wider rate
//     limit than its maker's effective one, and joins its maker's
//     lineage: it shares the rate-limit bucket of its maker and of every
//     token above it, at their limits as they are now (joinLineage), so
//     that making tokens makes no room; a token
//     activated by a
//     token, which grants it afresh, must have none (limit_forbidden:
//     rate limits are the operator's, so the activation is refused rather
//     than the limit changed);
//   - the token API's calls count against the caller's rate limit.

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Limit is a rate limit as the gateway enforces it: Rate requests per
// second on average, in bursts of up to Burst. Rate 0 means none. Shadow
// says that the limit only reports (requests over it pass).
type Limit struct {
	Rate   float64
	Burst  int
	Shadow bool
}

// Codes of the lifecycle rules.
const (
	codeRotated  = "token_rotated"
	codeLifetime = "lifetime_forbidden"
	// codeChanged: a rotation found its token changed by another call.
	codeChanged = "token_changed"
	// codeLineageDepth: a token auth.MaxLineageDepth levels below its
	// lineage's root may not make tokens.
	codeLineageDepth = "lineage_too_deep"
)

// refusal is a request refused by a rule of the API (not a bad request nor
// a store failure): it is answered with its status and code, and audited
// as refused. An edit of a record returns one to refuse the update.
type refusal struct {
	status  int
	code    string
	message string
	// detail says more in the audit trail.
	detail string
}

func (e *refusal) Error() string { return e.code + ": " + e.message }

// stamp writes a time in messages: RFC 3339, UTC, with the milliseconds
// the stores keep, so that the time named is exactly the limit.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// whileRotated reports whether a token in its grace period may still do
// action: read (every action that needs only tokens.read) and revoke,
// nothing else. Requests off the API's endpoints (action "") are answered
// 404 as ever.
func whileRotated(action string) bool {
	return readActions[action] || action == "token.revoke" || action == ""
}

// mutating reports whether action changes or makes a token other than by
// revoking it: the actions a rotated token may not do.
func mutating(action string) bool {
	return !whileRotated(action)
}

// rotatedRefusal refuses what a token rotated with a grace period may no
// longer do.
func rotatedRefusal(t *auth.Token) *refusal {
	msg := "This token was rotated"
	if !t.ExpiresAt.IsZero() {
		msg += " and works until " + stamp(t.ExpiresAt)
	}
	msg += fmt.Sprintf(" only to read (tokens, the audit trail, the policy, webhooks) and to revoke tokens. "+
		"Use its successor %s to create, update or rotate tokens and to manage webhooks.", t.RotatedTo)
	return &refusal{status: http.StatusForbidden, code: codeRotated, message: msg, detail: "rotated to " + t.RotatedTo}
}

// createLifetime checks the expiry of tok, which caller is creating: a
// token with an expiry creates only tokens that expire at or before it.
func createLifetime(caller, tok *auth.Token) *refusal {
	if caller.ExpiresAt.IsZero() || !tok.ExpiresAt.IsZero() && !tok.ExpiresAt.After(caller.ExpiresAt) {
		return nil
	}
	latest := stamp(caller.ExpiresAt)
	return &refusal{
		status: http.StatusForbidden, code: codeLifetime,
		message: fmt.Sprintf("This token expires at %s: a token it creates must expire at or before then. "+
			"Give expires_at (%s at the latest) or an expires_in that ends by then.", latest, latest),
		detail: "asked for a token outliving its creator, which expires at " + latest,
	}
}

// updateLifetime checks the change of before into after that caller makes
// (expirySet: the update sets an expiry). A token's expiry can only be
// brought forward through self-service: never later than the target's
// current one (a token without expiry may be given one) nor than the
// caller's; and a token that would outlive the caller cannot be activated
// by it.
func updateLifetime(caller, before, after *auth.Token, expirySet bool) *refusal {
	if expirySet {
		latest := earliest(before.ExpiresAt, caller.ExpiresAt)
		if !latest.IsZero() && after.ExpiresAt.After(latest) {
			return &refusal{
				status: http.StatusForbidden, code: codeLifetime,
				message: fmt.Sprintf("A token's expiry can only be brought forward with a token, never past the expiry "+
					"of the token asking: the latest allowed here is %s.", stamp(latest)),
				detail: "asked to set a later expiry than " + stamp(latest),
			}
		}
	}
	outlives := after.ExpiresAt.IsZero() || after.ExpiresAt.After(caller.ExpiresAt)
	if before.Status != auth.StatusActive && after.Status == auth.StatusActive && !caller.ExpiresAt.IsZero() && outlives {
		latest := stamp(caller.ExpiresAt)
		return &refusal{
			status: http.StatusForbidden, code: codeLifetime,
			message: fmt.Sprintf("This token expires at %s: it may activate only tokens that expire by then. "+
				"Give expires_at (%s at the latest) in the same request.", latest, latest),
			detail: "asked to activate a token outliving the token asking, which expires at " + latest,
		}
	}
	return nil
}

// earliest returns the earlier of two expiries, zero meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// guardedEdit wraps an update's edit with the lifetime rules for a change
// caller makes. It runs inside the store's Update, on the current record,
// so that the rules hold against concurrent changes; a token in its grace
// period may not change itself.
func guardedEdit(caller *auth.Token, expirySet bool, edit func(*auth.Token) error) func(*auth.Token) error {
	return func(t *auth.Token) error {
		before := *t
		if before.ID == caller.ID && before.Rotated() {
			return rotatedRefusal(&before)
		}
		if err := edit(t); err != nil {
			return err
		}
		if ref := updateLifetime(caller, &before, t, expirySet); ref != nil {
			return ref
		}
		return nil
	}
}

// ownLimit is a token's own rate limit, the effective limit when the API
// is not told the limiter's (Options.EffectiveLimit).
func ownLimit(t *auth.Token) Limit {
	if t.RateLimit <= 0 {
		return Limit{}
	}
	return Limit{Rate: t.RateLimit, Burst: burstOf(t.RateLimit, t.RateBurst), Shadow: t.RateShadow}
}

// burstOf is a limit's burst, 0 meaning ceil(rate).
func burstOf(rate float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return int(min(math.Ceil(rate), math.MaxInt32))
}

// effective returns the rate limit the gateway applies to t.
func (a *api) effective(t *auth.Token) Limit {
	var lim Limit
	if a.EffectiveLimit != nil {
		lim = a.EffectiveLimit(t)
	} else {
		lim = ownLimit(t)
	}
	if lim.Rate > 0 {
		lim.Burst = burstOf(lim.Rate, lim.Burst)
	}
	return lim
}

// inheritLimit gives t, made by a token whose effective limit is ceiling,
// the stricter of its own effective limit (effective(t)) and ceiling: the
// lower rate and the lower burst, enforced unless both are in shadow
// mode. When that is t's limit already (its role's, say), t gets no limit
// of its own. Nothing changes when ceiling is no limit.
func inheritLimit(t *auth.Token, ceiling Limit, effective func(*auth.Token) Limit) (changed bool) {
	if ceiling.Rate <= 0 {
		return false
	}
	ceiling.Burst = burstOf(ceiling.Rate, ceiling.Burst)
	cur := effective(t)
	next := Limit{Rate: ceiling.Rate, Burst: ceiling.Burst}
	if cur.Rate > 0 {
		next = Limit{Rate: min(cur.Rate, ceiling.Rate), Burst: min(burstOf(cur.Rate, cur.Burst), ceiling.Burst)}
	}
	if !ceiling.Shadow && t.RateShadow {
		t.RateShadow, changed = false, true // enforced, as its maker's is
	}
	if cur.Rate > 0 && next.Rate == cur.Rate && next.Burst == burstOf(cur.Rate, cur.Burst) {
		return changed
	}
	t.RateLimit, t.RateBurst = next.Rate, next.Burst
	return true
}

// joinLineage puts t, made by the token maker, in maker's rate-limit
// lineage (auth.DescendLineage): below maker, whose effective limit is
// makerLimit (none: Rate 0), so that every ancestor's limit binds t as it
// is now; when t replaces maker (maker's rotation of itself) it draws on
// the bucket of the first token of maker's rotations. A line deeper than
// auth.MaxLineageDepth is refused (lineage_too_deep).
func joinLineage(t, maker *auth.Token, makerLimit Limit, replaces bool) *refusal {
	l, err := auth.DescendLineage(maker, makerLimit.Rate, burstOf(makerLimit.Rate, makerLimit.Burst), makerLimit.Shadow, replaces)
	if err != nil {
		return &refusal{
			status: http.StatusForbidden, code: codeLineageDepth,
			message: fmt.Sprintf("This token is %d tokens below the token its line started from (lineage.root in its "+
				"record), the most allowed: it may not make tokens. Ask the operator for a token made with an admin key.",
				auth.MaxLineageDepth),
			detail: "lineage too deep",
		}
	}
	t.Lineage = l
	return nil
}

// LineageView shows a token's rate-limit lineage (auth.Lineage): the
// token whose limit it shares, and that limit (absent: none).
type LineageView struct {
	Root      string  `json:"root"`
	RateLimit float64 `json:"rate_limit,omitempty"`
	Burst     int     `json:"burst,omitempty"`
}

// lineageView returns t's lineage for display; nil for a root.
func lineageView(t *auth.Token) *LineageView {
	if t.Lineage.IsZero() {
		return nil
	}
	l := t.Lineage
	v := &LineageView{Root: l.Root, RateLimit: l.Rate}
	if l.Rate > 0 {
		v.Burst = burstOf(l.Rate, l.Burst)
	}
	return v
}

// charge takes one request of the calling token's rate limit
// (Options.Limiter): the token API's calls count like the API's. Over the
// limit it answers 429 rate_limited with Retry-After (audited), and 503
// store_unavailable when the limiter cannot decide.
func (a *api) charge(w http.ResponseWriter, r *http.Request, action string, p *principal) bool {
	if a.Limiter == nil || p.token == nil {
		return true
	}
	st := a.Limiter.Allow(r.Context(), p.token, a.Now())
	switch {
	case st.Unavailable:
		a.storeError(w, r, "rate limit", fmt.Errorf("%w: %w", auth.ErrUnavailable, auth.ErrLimitUnavailable))
		return false
	case st.Enabled && !st.Allowed:
		code, detail, msg := auth.CodeRateLimited, "over its rate limit", auth.CodeRateLimited.Message()
		switch {
		case st.Project.Over:
			code, detail, msg = auth.CodeProjectRateLimited, "over its project's rate limit", auth.CodeProjectRateLimited.Message()
		case st.Lineage.Over:
			detail, msg = "over its lineage's rate limit (lineage of "+p.token.Lineage.Root+")", auth.LineageLimitedMessage
		}
		a.refusedTarget(r, action, p, p.token.ProjectID, code.String(), pathID(r), detail)
		secs := int(math.Ceil(st.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeError(w, http.StatusTooManyRequests, code.String(),
			msg+" Calls of the token API count against the token's rate limit.")
		return false
	}
	return true
}
