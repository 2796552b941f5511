package tokenapi

// Token management is a permission, like each group of the API's routes:
// tokens.read to list and show tokens and webhooks, read the audit trail
// and the project's policy; tokens.write for every change (create,
// update, activate, deactivate, rotate, revoke tokens; create, change,
// delete, test webhooks and replay their deliveries). The Owner role
// grants both, so an Owner token without a scopes list manages its
// project as ever; a token with a scopes list has only those it names.
// Admin keys are not bound by them; Accounting tokens are refused before
// (role_forbidden).
//
// Two requests need neither, nor the Owner role, because they concern the
// calling token alone: showing its own record, and revoking itself (a
// leaked token's holder can only end it).

import (
	"fmt"
	"net/http"

	"github.com/tswgate/tswgate/auth"
)

// readActions are the actions that only read: they need tokens.read.
var readActions = map[string]bool{
	"token.list": true, "token.show": true, "audit.read": true,
	"project.policy.show": true, "project.policy.violations": true,
	"webhook.list": true, "webhook.show": true, "webhook.deliveries": true, "webhook.delivery": true,
}

// actionPermission returns the permission action needs: tokens.read for
// the actions that only read, tokens.write for every other one (an action
// not listed is a change), none off the API's endpoints (action "").
func actionPermission(action string) auth.Permission {
	switch {
	case action == "":
		return auth.PermNone
	case readActions[action]:
		return auth.PermTokensRead
	}
	return auth.PermTokensWrite
}

// selfAction reports whether action is one any token may do on itself,
// whatever its role and scopes: show its record or revoke itself.
func selfAction(r *http.Request, action string, t *auth.Token) bool {
	return (action == "token.show" || action == "token.revoke") && pathID(r) == t.ID
}

// allowManage checks that p's token has the permission action needs. On
// refusal it answers 403 permission_denied, naming the permission and how
// to get it (as the gateway does for the API's routes), and audits.
func (a *api) allowManage(w http.ResponseWriter, r *http.Request, action string, p *principal) bool {
	perm := actionPermission(action)
	if perm == auth.PermNone || p.token.Permits(perm) || selfAction(r, action, p.token) {
		return true
	}
	a.refused(r, action, p, p.token.ProjectID, auth.CodePermissionDenied.String(), "lacks "+perm.String())
	w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate", error="insufficient_scope", scope="`+perm.String()+
		`", error_description="permission_denied: the token lacks the `+perm.String()+` permission"`)
	writeError(w, http.StatusForbidden, auth.CodePermissionDenied.String(), denialMessage(perm))
	return false
}

// denialMessage says what a token lacking perm may not do, and how to get
// a token that may.
func denialMessage(perm auth.Permission) string {
	what := "change tokens (create, update, activate, deactivate, rotate, revoke) or manage webhooks"
	if perm == auth.PermTokensRead {
		what = "list or show tokens, read the audit trail or the project's policy, or list webhooks"
	}
	return fmt.Sprintf("The API token lacks the %s permission: its scopes do not include it, so it may not %s. "+
		"Use a token whose scopes include %s (or an Owner token without a scopes list), or an admin key.", perm, what, perm)
}
