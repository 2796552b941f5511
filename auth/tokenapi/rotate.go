package tokenapi

// Rotation: a plain function of the store (Rotate), and the HTTP handler
// that calls it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Rotation says what Rotate does.
type Rotation struct {
	// Old is the token to rotate, as read from the store; it must be live
	// and unexpired (Rotate refuses an expired one: token_expired).
	Old *auth.Token
	// Grace is how long Old keeps working (never longer than it would
	// have); 0 revokes it at once.
	Grace time.Duration
	// Now is the time of the rotation.
	Now time.Time
	// NotAfter, when set, is the latest expiry the successor may have: the
	// expiry of the token asking for the rotation, which never makes a
	// token that outlives it.
	NotAfter time.Time
	// Ceiling, when its Rate is above 0, is the widest rate limit the
	// successor may have: the effective limit of the token asking.
	// Effective is the limit the gateway applies to a token, to compare
	// with (nil: a token's own limit only).
	Ceiling   Limit
	Effective func(*auth.Token) Limit
	// Maker, when set, is the token asking for the rotation: the successor
	// keeps the old token's scopes and address ranges narrowed to Maker's,
	// and Rotate refuses (an error wrapping a refusal, nothing changed)
	// when nothing of them would be left. The successor joins Maker's
	// rate-limit lineage, at Ceiling (see joinLineage); without a Maker
	// (an operator's rotation) it starts its own.
	Maker *auth.Token
	// Scopes and AllowedIPs, when set, replace the old token's on the
	// successor (nil: the old token's are kept); with a Maker they must be
	// within its own.
	Scopes     *auth.PermSet
	AllowedIPs *[]netip.Prefix
	// Lifetime, when above 0, is the successor's lifetime from Now;
	// else it gets the old token's lifetime (none when the old one has
	// no expiry).
	Lifetime time.Duration
	// Policy is the project's policy, whose lifetime rules the
	// successor must meet: Rotate refuses (an error wrapping a refusal,
	// nothing changed) a successor that breaks them.
	Policy auth.ProjectPolicy
	// Invalidate drops an id from this replica's cache; nil: none.
	Invalidate func(id string)
	// Limit, when above 0 and with a Grace period (the old token then
	// lives on beside its successor), bounds the project's live tokens:
	// the successor is created only while there are fewer (the store's
	// CreateWithin), else Rotate returns an error matching
	// auth.ErrTokenLimit and changes nothing.
	Limit int
}

// limitedCreator is a store that creates within a project's token limit
// (auth.ActivityStore).
type limitedCreator interface {
	CreateWithin(ctx context.Context, t *auth.Token, limit int) error
}

// Rotated is the outcome of a rotation.
type Rotated struct {
	// Next is the successor as stored; Credential its whole credential,
	// secret included: show it once, never log it.
	Next       *auth.Token
	Credential string
	// Previous is the old token as it is now: expiring at the end of the
	// grace period with RotatedTo set to Next.ID, or revoked.
	Previous *auth.Token
	// Unannounced is set when the old token's change is stored but was not
	// announced to other replicas: the rotation stands, but they may accept
	// the old token until their cache expires.
	Unannounced error
	// Unconfirmed is set when retiring the old token failed and the store
	// could not say, read back a few times, whether it was stored: the
	// successor stands and works (its credential is handed out, the one
	// token sure to work), while the old token may have ended or may
	// still work until its expiry (revoke it once the store answers).
	Unconfirmed error
}

// Rotate replaces rot.Old with a new token: it creates the successor (the
// old token's project, name, role, status, rate limit and lifetime from
// now, an expiry at the latest rot.NotAfter, a limit at most rot.Ceiling),
// then retires the old token in one Update that holds only while the old
// token is still exactly rot.Old (else a 409 token_changed refusal, and
// the successor is withdrawn): marked RotatedTo the successor and ending
// at the end of the grace period (never later than it would have), or at
// once without grace, and then revoked.
//
// A rotation replaces a token's secret; it never revives a token: the
// successor of an inactive token is inactive, and an expired token is not
// rotated (an error wrapping a 409 token_expired refusal, nothing
// changed; also when it expires before it is retired).
//
// If a step fails, the rotation is undone: the successor, whose secret
// nobody has seen, is withdrawn (revoked), so that a retry starts afresh.
// A retirement that failed but is stored even so (its announcement
// failed) stands, with Rotated.Unannounced set. The undo runs even when
// ctx is canceled (the client went away).
func Rotate(ctx context.Context, st auth.Store, h *auth.Hasher, rot Rotation) (*Rotated, error) {
	if rot.Invalidate == nil {
		rot.Invalidate = func(string) {}
	}
	old := rot.Old
	if old.Expired(rot.Now) {
		return nil, fmt.Errorf("rotate %s: %w", old.ID, expiredRefusal(old))
	}
	next, cred, err := rot.successor(h)
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", old.ID, err)
	}

	if err := rot.create(ctx, st, next); err != nil {
		if errors.Is(err, auth.ErrTokenLimit) {
			return nil, fmt.Errorf("rotate %s: %w", old.ID, err) // nothing stored
		}
		// It may be stored even so (e.g. stored but not indexed).
		return nil, rot.undo(ctx, st, next.ID, fmt.Errorf("rotate %s: creating the new token: %w", old.ID, err))
	}
	rot.Invalidate(next.ID) // drop a negative cache entry for the id, if any
	if err := context.Cause(ctx); err != nil {
		// Gone before the old token changed: nobody would see the new one.
		return nil, rot.undo(ctx, st, next.ID, fmt.Errorf("rotate %s: %w", old.ID, err))
	}
	prev, err := rot.retire(ctx, st, next.ID)
	if err == nil {
		return &Rotated{Next: next, Credential: cred, Previous: prev}, nil
	}
	// The old token's change may be stored even so (a failed
	// announcement); if it is, the rotation stands. If the store cannot
	// say, the successor stands too: withdrawing it could leave no token
	// working at all.
	cur, state := rot.retired(ctx, st, next.ID)
	switch state {
	case retireStored:
		return &Rotated{Next: next, Credential: cred, Previous: cur, Unannounced: err}, nil
	case retireUnknown:
		return &Rotated{Next: next, Credential: cred, Previous: old, Unconfirmed: err}, nil
	}
	return nil, rot.undo(ctx, st, next.ID, fmt.Errorf("rotate %s: retiring the old token: %w; %w: %s still works", old.ID, err, errNotRotated, old.ID))
}

// create stores the successor: within rot.Limit when the old token lives
// on beside it.
func (rot *Rotation) create(ctx context.Context, st auth.Store, next *auth.Token) error {
	if rot.Grace <= 0 || rot.Limit <= 0 {
		return st.Create(ctx, next)
	}
	lc, ok := st.(limitedCreator)
	if !ok {
		return fmt.Errorf("creating within the project's token limit: the store (%T) cannot", st)
	}
	return lc.CreateWithin(ctx, next, rot.Limit)
}

// successor builds the new token's record and credential.
func (rot *Rotation) successor(h *auth.Hasher) (*auth.Token, string, error) {
	old := rot.Old
	next := &auth.Token{
		ProjectID:  old.ProjectID,
		Name:       old.Name,
		Role:       old.Role,
		Status:     old.Status, // a rotation never activates a token
		CreatedAt:  rot.Now.UTC().Truncate(time.Millisecond),
		RateLimit:  old.RateLimit,
		RateBurst:  old.RateBurst,
		RateShadow: old.RateShadow,
		Scopes:     old.Scopes,
		AllowedIPs: old.AllowedIPs,
	}
	if rot.Scopes != nil {
		next.Scopes = *rot.Scopes
	}
	if rot.AllowedIPs != nil {
		next.AllowedIPs = *rot.AllowedIPs
	}
	if rot.Maker != nil {
		if _, ref := restrictCreate(rot.Maker, next, rot.Scopes != nil, rot.AllowedIPs != nil); ref != nil {
			return nil, "", ref
		}
	}
	switch {
	case rot.Lifetime > 0:
		next.ExpiresAt = next.CreatedAt.Add(rot.Lifetime)
	case !old.ExpiresAt.IsZero():
		// The same lifetime as the old token, from now.
		next.ExpiresAt = next.CreatedAt.Add(max(old.ExpiresAt.Sub(old.CreatedAt), time.Millisecond))
	}
	if notAfter := rot.NotAfter.UTC().Truncate(time.Millisecond); !rot.NotAfter.IsZero() &&
		(next.ExpiresAt.IsZero() || next.ExpiresAt.After(notAfter)) {
		if rot.Lifetime > 0 {
			// An expires_in that was asked for is refused, never cut
			// short in silence; an inherited lifetime is capped.
			return nil, "", outlivesMaker(notAfter)
		}
		next.ExpiresAt = notAfter
	}
	if ref := lifetimeRefusal(next.ProjectID, rot.Policy, next.CreatedAt, next.ExpiresAt); ref != nil {
		ref.message += " A rotation takes expires_in for the new token's lifetime."
		return nil, "", ref
	}
	effective := rot.Effective
	if effective == nil {
		effective = ownLimit
	}
	inheritLimit(next, rot.Ceiling, effective)
	if rot.Maker != nil {
		if ref := joinLineage(next, rot.Maker, rot.Ceiling, rot.Maker.ID == old.ID); ref != nil {
			return nil, "", ref
		}
	}
	id, cred, err := h.NewCredential()
	if err != nil {
		return nil, "", err
	}
	next.ID = id
	next.SecretHash, next.PepperID = h.Hash(cred)
	return next, cred, nil
}

// retire ends the old token, in one Update that checks it is still the
// record the successor was made from (else a token_changed refusal): no
// change of it by another call — a deactivation, a revocation, a
// narrower limit or scopes, a concurrent rotation — falls between the read
// and the rotation, so the successor never carries what the old token no
// longer has. The old token is marked as rotated to nextID and ends: with a
// grace period at its end at the latest; without one at once, and is then
// revoked; it is marked Replaced in the same Update, so that it is
// refused as revoked (token_revoked) from that instant, tombstone or not.
func (rot *Rotation) retire(ctx context.Context, st auth.Store, nextID string) (*auth.Token, error) {
	until := rot.Now.Add(rot.Grace).UTC().Truncate(time.Millisecond)
	prev, err := st.Update(ctx, rot.Old.ID, func(t *auth.Token) error {
		if t.Expired(rot.Now) { // expired since it was read
			return expiredRefusal(t)
		}
		if !sameRecord(t, rot.Old) {
			return changedRefusal(t)
		}
		if t.ExpiresAt.IsZero() || t.ExpiresAt.After(until) { // never extend its life
			t.ExpiresAt = until
		}
		t.RotatedTo = nextID
		t.Replaced = rot.Grace <= 0 // refused as revoked from now on, before the tombstone
		return nil
	})
	if err != nil || rot.Grace > 0 {
		return prev, err
	}
	return st.Revoke(ctx, rot.Old.ID, rot.Now)
}

// errNotRotated marks the failure of a rotation whose old token is known
// to be as it was: it still works, and the successor was withdrawn.
var errNotRotated = errors.New("nothing was rotated")

// retireState is what a read of the old token says of a retirement that
// failed.
type retireState int

const (
	retireNotStored retireState = iota // the old token is not retired: it works as before
	retireStored                       // retired all the same: the rotation stands
	retireUnknown                      // the store did not answer: either may be so
)

// retireReads bounds the reads of the old token after a failed
// retirement, retireReadWait the wait before the second (doubling).
const (
	retireReads    = 3
	retireReadWait = 25 * time.Millisecond
)

// retired reports whether the retirement of the old token in favour of
// nextID is stored although retire failed (its announcement, or the
// revocation after it, failed), and returns the old token as it is then;
// it reads it up to retireReads times. Without a grace period it
// completes the revocation, best effort (the old token has ended
// already).
func (rot *Rotation) retired(ctx context.Context, st auth.Store, nextID string) (*auth.Token, retireState) {
	ctx = context.WithoutCancel(ctx)
	cur, err := rot.readOld(ctx, st)
	switch {
	case err != nil:
		return nil, retireUnknown
	case cur.RotatedTo != nextID:
		return nil, retireNotStored
	}
	if rot.Grace <= 0 && !cur.Revoked() {
		if t, err := st.Revoke(ctx, rot.Old.ID, rot.Now); err == nil {
			cur = t
		} else if t, err := st.Get(ctx, rot.Old.ID); err == nil {
			cur = t
		}
	}
	return cur, retireStored
}

// readOld reads the old token, up to retireReads times while the store
// fails to answer.
func (rot *Rotation) readOld(ctx context.Context, st auth.Store) (*auth.Token, error) {
	wait := retireReadWait
	for i := 1; ; i++ {
		cur, err := st.Get(ctx, rot.Old.ID)
		if err == nil || errors.Is(err, auth.ErrNotFound) || i == retireReads {
			return cur, err
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// sameRecord reports whether a and b are the same record: every field
// equal (times to the instant, address ranges in order).
func sameRecord(a, b *auth.Token) bool {
	return a.ID == b.ID && a.ProjectID == b.ProjectID && a.Name == b.Name && a.Role == b.Role &&
		a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.RevokedAt.Equal(b.RevokedAt) && a.SecretHash == b.SecretHash && a.PepperID == b.PepperID &&
		a.RateLimit == b.RateLimit && a.RateBurst == b.RateBurst && a.RateShadow == b.RateShadow &&
		a.RotatedTo == b.RotatedTo && a.Scopes == b.Scopes && slices.Equal(a.AllowedIPs, b.AllowedIPs) &&
		a.Lineage == b.Lineage
}

// changedRefusal refuses a rotation of t, which another call changed
// after the rotation read it: nothing is rotated, and a retry starts
// from the token as it is now.
func changedRefusal(t *auth.Token) *refusal {
	return &refusal{
		status: http.StatusConflict, code: codeChanged,
		message: fmt.Sprintf("Token %s changed while it was being rotated (another request deactivated, updated, "+
			"revoked or rotated it): nothing was rotated. Read the token again and retry if it should still be rotated.", t.ID),
		detail: "changed during the rotation",
	}
}

// expiredRefusal refuses the rotation of t, an expired token: a rotation
// replaces a secret, it does not bring a token back.
func expiredRefusal(t *auth.Token) *refusal {
	return &refusal{
		status: http.StatusConflict, code: auth.CodeTokenExpired.String(),
		message: fmt.Sprintf("Token %s expired at %s: a rotation replaces a live token's secret and never revives a token. "+
			"To go on, create a new token instead (POST /v1/tokens, tswgate token create).", t.ID, stamp(t.ExpiresAt)),
		detail: "expired at " + stamp(t.ExpiresAt),
	}
}

// undo withdraws the successor of a rotation that failed with cause, and
// returns cause, with the withdrawal's own failure if any.
func (rot *Rotation) undo(ctx context.Context, st auth.Store, id string, cause error) error {
	_, err := st.Revoke(context.WithoutCancel(ctx), id, rot.Now)
	rot.Invalidate(id)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("%w (withdrawing the unused new token %s failed too: %v)", cause, id, err)
	}
	return cause
}

func (a *api) rotate(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	var req RotateRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	var problems []string
	grace := parseGrace(req.Grace, &problems)
	rot := Rotation{Grace: grace, Now: a.Now(), Effective: a.effective, Invalidate: a.Invalidate}
	req.restrictions(&rot, &problems)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The rotation request is invalid.", problems...)
		return
	}
	old, ok := a.loadScoped(w, r, "token.rotate", id)
	if !ok {
		return
	}
	p := principalOf(r)
	if !a.rotatable(w, r, p, old, rot.Now) {
		return
	}
	// With a grace period the old token lives on beside the new one: that
	// is one more token, created within the limit. Without one, the
	// rotation replaces it.
	rot.Old, rot.Limit = old, a.MaxTokensPerProject
	if rot.Scopes != nil {
		if extra := rot.Scopes.Missing(auth.RolePermissions(old.Role)); extra != 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "The rotation request is invalid.",
				fmt.Sprintf("scopes: the %s role does not grant %s", old.Role, extra))
			return
		}
	}
	if rot.Policy, ok = a.policyOf(w, r, old.ProjectID); !ok {
		return
	}
	if p.token != nil {
		rot.NotAfter, rot.Ceiling, rot.Maker = p.token.ExpiresAt, a.effective(p.token), p.token
	}
	res, err := Rotate(r.Context(), a.Store, a.Hasher, rot)
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		a.refuse(w, r, "token.rotate", p, old.ProjectID, id, ref)
		return
	case a.overLimit(w, r, "token.rotate", p, err):
		return
	case errors.Is(err, errNotRotated) && errors.Is(err, auth.ErrUnavailable) && r.Context().Err() == nil:
		a.notRotated(w, r, id, err)
		return
	case err != nil:
		a.storeError(w, r, "rotate token", err)
		return
	}
	a.rotated(w, r, old, grace, res)
}

// rotated answers a rotation of old (with grace) that stands (res), and
// records it.
func (a *api) rotated(w http.ResponseWriter, r *http.Request, old *auth.Token, grace time.Duration, res *Rotated) {
	warning := a.unconfirmedWarning(r, old.ID, res)
	if res.Unannounced != nil {
		a.Logger.LogAttrs(r.Context(), slog.LevelWarn, "rotate token: the old token's change is stored but may not have been announced",
			slog.String("token_id", old.ID), slog.String("err", auth.RedactSecrets(res.Unannounced.Error())))
		warning += " Announcing the change to other replicas failed: they may accept the old token until their cache expires (TSWGATE_CACHE_TTL)."
	}
	a.Invalidate(old.ID)
	detail, changes := rotationDetail(old, res.Next, grace)
	if res.Unconfirmed != nil {
		detail += ", the old token's end not confirmed by the store"
	}
	attrs := []slog.Attr{slog.String("new_token_id", res.Next.ID), slog.Duration("grace", grace)}
	if changes != "" {
		attrs = append(attrs, slog.String("changes", changes))
	}
	a.done(r, "token.rotate", res.Previous, detail, attrs...)
	view := View(res.Next)
	view.Token = res.Credential
	writeJSON(w, http.StatusOK, RotateResponse{
		Success:  true,
		Message:  a.rotateMessage(res) + warning,
		Token:    view,
		Previous: View(res.Previous),
		Warning:  strings.TrimSpace(warning),
	})
}

// rotatable checks that old may be rotated: neither revoked (409
// token_revoked) nor expired (409 token_expired, audited; Rotate refuses
// it too, but this answers before the quota is counted).
func (a *api) rotatable(w http.ResponseWriter, r *http.Request, p *principal, old *auth.Token, now time.Time) bool {
	switch {
	case old.Ended():
		a.storeError(w, r, "rotate token", fmt.Errorf("rotate %s: %w", old.ID, auth.ErrRevoked))
		return false
	case old.Expired(now):
		a.refuse(w, r, "token.rotate", p, old.ProjectID, old.ID, expiredRefusal(old))
		return false
	}
	return true
}

// notRotated answers a rotation that failed with the store while the old
// token (id) is known to be as it was: 503 store_unavailable, saying that
// the old token still works.
func (a *api) notRotated(w http.ResponseWriter, r *http.Request, id string, err error) {
	a.Logger.LogAttrs(r.Context(), slog.LevelError, "rotate token failed",
		slog.String("token_id", id), slog.String("err", auth.RedactSecrets(err.Error())))
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "store_unavailable", fmt.Sprintf(
		"The token store failed during the rotation: nothing was rotated, and token %s still works as before "+
			"(the new token was withdrawn, its secret never shown). Retry later.", id))
}

// unconfirmedWarning is what the answer to a rotation adds when the store
// could not confirm the old token's end (Rotated.Unconfirmed): the new
// token works; the old one may too, until it is revoked. "" otherwise.
func (a *api) unconfirmedWarning(r *http.Request, id string, res *Rotated) string {
	if res.Unconfirmed == nil {
		return ""
	}
	a.Logger.LogAttrs(r.Context(), slog.LevelWarn, "rotate token: the old token's end is not confirmed",
		slog.String("token_id", id), slog.String("new_token_id", res.Next.ID),
		slog.String("err", auth.RedactSecrets(res.Unconfirmed.Error())))
	return fmt.Sprintf(" The token store did not confirm that the old token %s was ended: the new token works, "+
		"use it; the old one may still work. Revoke it (DELETE /v1/tokens/%s) once the store answers.", id, id)
}

// rotationDetail says what a rotation did, for the audit trail: the
// successor, the grace period, and how the successor differs from the old
// token (scopes, ranges and rate limit before→after, its expiry), so that
// a rotation that widens or narrows a token is as visible as an update.
// changes is the difference alone, for the log line ("" when none).
func rotationDetail(old, next *auth.Token, grace time.Duration) (detail, changes string) {
	parts := restrictionChanges(old, next)
	if old.RateLimit != next.RateLimit || old.RateBurst != next.RateBurst {
		parts = append(parts, fmt.Sprintf("rate limit %s→%s", describeLimit(old), describeLimit(next)))
	}
	if !next.ExpiresAt.IsZero() {
		parts = append(parts, "expires "+stamp(next.ExpiresAt))
	}
	changes = strings.Join(parts, ", ")
	detail = fmt.Sprintf("new token %s, grace %s", next.ID, grace)
	if changes != "" {
		detail += ", " + changes
	}
	return detail, changes
}

// describeLimit writes a token's own rate limit for the audit trail:
// "10/s (burst 20)", or "(role)" without one.
func describeLimit(t *auth.Token) string {
	if t.RateLimit <= 0 {
		return "(role)"
	}
	return fmt.Sprintf("%g/s (burst %d)", t.RateLimit, burstOf(t.RateLimit, t.RateBurst))
}

// parseGrace reads a rotation request's grace period, adding its
// problem.
func parseGrace(value string, problems *[]string) time.Duration {
	if value == "" {
		return 0
	}
	grace, err := time.ParseDuration(value)
	if err != nil || grace < 0 {
		*problems = append(*problems,
			fmt.Sprintf("grace: %q is not a duration of 0 or more, such as 1h (0s revokes the old token at once)", value))
		return 0
	}
	if p := durationProblem("grace", value); p != "" {
		*problems = append(*problems, p)
		return 0
	}
	return grace
}

// restrictions reads the scopes, address ranges and lifetime a rotation
// gives the successor into rot, adding their problems. Whether the old
// token's role grants the scopes is checked once it is read.
func (req *RotateRequest) restrictions(rot *Rotation, problems *[]string) {
	if req.Scopes != nil {
		s := parseScopes(*req.Scopes, auth.RoleInvalid, problems)
		rot.Scopes = &s
	}
	if req.AllowedIPs != nil {
		ps := parseRanges(*req.AllowedIPs, problems)
		rot.AllowedIPs = &ps
	}
	if req.ExpiresIn != "" {
		d, p := readLifetime(req.ExpiresIn)
		if p != "" {
			*problems = append(*problems, p)
		}
		rot.Lifetime = d
	}
}

// rotateMessage says what became of the old token.
func (a *api) rotateMessage(res *Rotated) string {
	msg := "Token rotated. Copy the new token now: its secret cannot be retrieved again."
	prev := res.Previous
	switch {
	case prev.Ended():
		msg += " The old token is revoked."
	case prev.Expired(a.Now()):
		msg += fmt.Sprintf(" The old token expired at %s.", prev.ExpiresAt.UTC().Format(time.RFC3339))
	case res.Unconfirmed != nil: // said by unconfirmedWarning
	default:
		msg += fmt.Sprintf(" The old token works until %s, only to read and revoke tokens.", prev.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !res.Next.ExpiresAt.IsZero() {
		msg += fmt.Sprintf(" The new token expires at %s.", res.Next.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if res.Next.Status != auth.StatusActive {
		msg += " The new token is inactive, like the old one: it is refused (token_inactive) until it is activated."
	}
	return msg
}

// outlivesMaker refuses a rotation whose expires_in would make the
// successor outlive the token asking for it, which expires at notAfter.
func outlivesMaker(notAfter time.Time) *refusal {
	latest := stamp(notAfter)
	return &refusal{
		status: http.StatusForbidden, code: codeLifetime,
		message: fmt.Sprintf("This token expires at %s: the token a rotation makes must expire at or before then. "+
			"Give an expires_in that ends by %s, or none to keep the old token's lifetime (cut to end by then).", latest, latest),
		detail: "asked for a successor outliving the token asking, which expires at " + latest,
	}
}
