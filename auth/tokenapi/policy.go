package tokenapi

// Project policies: the endpoints that read and set them, the report of
// the tokens that break one, and the lifetime rule every create, rotation,
// expiry edit and activation is held to.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// codeLifetimePolicy refuses a token whose lifetime breaks its project's
// policy (422).
const codeLifetimePolicy = "lifetime_policy"

// Policy is a project's policy as the API shows it. MaxLifetime is "90d"
// or a Go duration ("36h0m0s"), "" when there is no bound.
type Policy struct {
	ProjectID   int64  `json:"project_id"`
	MaxLifetime string `json:"max_lifetime,omitempty"`
	// MaxLifetimeSeconds is MaxLifetime in seconds, for programs.
	MaxLifetimeSeconds int64      `json:"max_lifetime_seconds,omitempty"`
	RequireExpiry      bool       `json:"require_expiry"`
	RateLimit          float64    `json:"rate_limit,omitempty"`
	Burst              int        `json:"burst,omitempty"`
	UpdatedAt          *time.Time `json:"updated_at,omitempty"`
}

// PolicyRequest is the body of PUT /v1/projects/{project}/policy: the
// whole policy (fields left out are cleared).
type PolicyRequest struct {
	// MaxLifetime bounds a token's life from creation to expiry: "90d" or
	// a Go duration ("720h"); empty means no bound.
	MaxLifetime   string  `json:"max_lifetime,omitempty"`
	RequireExpiry bool    `json:"require_expiry,omitempty"`
	RateLimit     float64 `json:"rate_limit,omitempty"`
	Burst         int     `json:"burst,omitempty"`
}

// PolicyResponse answers the policy endpoints.
type PolicyResponse struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Policy  Policy `json:"policy"`
}

// Violation is a live token that breaks its project's lifetime policy.
type Violation struct {
	Token  Token  `json:"token"`
	Reason string `json:"reason"`
}

// ViolationsResponse answers GET /v1/projects/{project}/policy/violations.
type ViolationsResponse struct {
	Success    bool        `json:"success"`
	Message    string      `json:"message"`
	Policy     Policy      `json:"policy"`
	Violations []Violation `json:"violations"`
}

// PolicyView returns the API's view of a project's policy.
func PolicyView(project int64, p auth.ProjectPolicy) Policy {
	v := Policy{ProjectID: project, RequireExpiry: p.RequireExpiry, RateLimit: p.RateLimit, Burst: p.Burst}
	if p.MaxLifetime > 0 {
		v.MaxLifetime = auth.FormatLifetime(p.MaxLifetime)
		v.MaxLifetimeSeconds = int64(p.MaxLifetime / time.Second)
	}
	if !p.UpdatedAt.IsZero() {
		at := p.UpdatedAt.UTC()
		v.UpdatedAt = &at
	}
	return v
}

// routePolicies adds the policy endpoints to mux.
func (a *api) routePolicies(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/policy", a.guard("project.policy.show", ownPolicyParams, a.showOwnPolicy))
	mux.HandleFunc("GET /v1/projects/{project}/policy", a.guard("project.policy.show", nil, a.showPolicy))
	mux.HandleFunc("PUT /v1/projects/{project}/policy", a.guard("project.policy.update", nil, a.setPolicy))
	mux.HandleFunc("DELETE /v1/projects/{project}/policy", a.guard("project.policy.update", nil, a.clearPolicy))
	mux.HandleFunc("GET /v1/projects/{project}/policy/violations", a.guard("project.policy.violations", nil, a.violations))
}

// adminProject reads the project of the path and checks that the caller
// is an admin key: project policies are the operator's. It answers every
// failure itself.
func (a *api) adminProject(w http.ResponseWriter, r *http.Request, action string) (int64, bool) {
	project, ok := parseWhole(r.PathValue("project"))
	if !ok || project <= 0 {
		const problem = "project: the path's project is not a positive integer written without a sign or leading zeros, as in /v1/projects/42/policy"
		writeError(w, http.StatusBadRequest, "invalid_request", "The project in the path must be a positive integer.", problem)
		return 0, false
	}
	if p := principalOf(r); p.token != nil {
		a.refused(r, action, p, p.token.ProjectID, "admin_only", fmt.Sprintf("asked for the policy of project %d", project))
		writeError(w, http.StatusForbidden, "admin_only",
			"Project policies are managed by the operator with an admin key on the admin listener; "+
				"an Owner token may read its own project's policy at GET /tswgate/v1/policy.")
		return 0, false
	}
	return project, true
}

// ownPolicyParams are the query parameters of GET /v1/policy.
var ownPolicyParams = []string{"project_id"}

// showOwnPolicy answers GET /v1/policy: the policy of the token's project
// (an admin key names it with ?project_id=; a token naming another
// project is refused, project_forbidden, as on list and audit).
func (a *api) showOwnPolicy(w http.ResponseWriter, r *http.Request) {
	var problems []string
	p := principalOf(r)
	pq := parsePageQuery(r, p, 0, false, &problems)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The policy request is invalid.", problems...)
		return
	}
	if a.allowProject(w, r, "project.policy.show", p, pq.project, "") {
		a.writePolicy(w, r, pq.project)
	}
}

func (a *api) showPolicy(w http.ResponseWriter, r *http.Request) {
	if project, ok := a.adminProject(w, r, "project.policy.show"); ok {
		a.writePolicy(w, r, project)
	}
}

func (a *api) writePolicy(w http.ResponseWriter, r *http.Request, project int64) {
	pol, ok := a.policyOf(w, r, project)
	if !ok {
		return
	}
	msg := fmt.Sprintf("Project %d has a policy.", project)
	if pol.IsZero() {
		msg = fmt.Sprintf("Project %d has no policy: tokens may live as long as asked, limited by their own rate limits only.", project)
	}
	writeJSON(w, http.StatusOK, PolicyResponse{Success: true, Message: msg, Policy: PolicyView(project, pol)})
}

func (a *api) setPolicy(w http.ResponseWriter, r *http.Request) {
	project, ok := a.adminProject(w, r, "project.policy.update")
	if !ok {
		return
	}
	var req PolicyRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	pol, problems := req.policy(a.Now())
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The policy is invalid.", problems...)
		return
	}
	a.replacePolicy(w, r, project, pol)
}

func (a *api) clearPolicy(w http.ResponseWriter, r *http.Request) {
	if project, ok := a.adminProject(w, r, "project.policy.update"); ok {
		a.replacePolicy(w, r, project, auth.ProjectPolicy{})
	}
}

// replacePolicy stores pol as project's policy and audits the change,
// before → after.
func (a *api) replacePolicy(w http.ResponseWriter, r *http.Request, project int64, pol auth.ProjectPolicy) {
	before, ok := a.policyOf(w, r, project)
	if !ok {
		return
	}
	if err := a.Store.SetProjectPolicy(r.Context(), project, pol); err != nil {
		a.storeError(w, r, "set project policy", err)
		return
	}
	if a.PolicyChanged != nil {
		a.PolicyChanged(context.WithoutCancel(r.Context()), project)
	}
	detail := describePolicy(before) + " → " + describePolicy(pol)
	p := principalOf(r)
	a.Logger.LogAttrs(r.Context(), slog.LevelInfo, "audit", slog.String("action", "project.policy.update"),
		slog.Int64("project_id", project), slog.String("detail", detail),
		slog.String("actor_kind", p.kind), slog.String("actor", p.actor))
	a.record(r, auth.AuditEvent{
		Action: "project.policy.update", ActorKind: p.kind, Actor: p.actor, ProjectID: project,
		Outcome: auth.OutcomeOK, Detail: detail,
	})
	msg := fmt.Sprintf("Policy of project %d set. It applies to tokens created, rotated, given an expiry or activated from now on; "+
		"existing tokens that break it are listed at GET /v1/projects/%d/policy/violations. "+
		"Other replicas apply its rate limit as soon as they hear of the change, within %s at the latest.",
		project, project, PolicyRefresh)
	if pol.IsZero() {
		msg = fmt.Sprintf("Policy of project %d cleared.", project)
	}
	writeJSON(w, http.StatusOK, PolicyResponse{Success: true, Message: msg, Policy: PolicyView(project, pol)})
}

// PolicyRefresh is how often the gateway reloads every project policy
// for their rate limits: the bound on how long a change takes to reach
// other replicas when its announcement (auth.EventPolicyChanged, which
// they apply at once) is lost.
const PolicyRefresh = 5 * time.Second

// describePolicy writes a policy for the audit trail.
func describePolicy(p auth.ProjectPolicy) string {
	if p.IsZero() {
		return "none"
	}
	s := "max_lifetime "
	if p.MaxLifetime > 0 {
		s += auth.FormatLifetime(p.MaxLifetime)
	} else {
		s += "none"
	}
	s += fmt.Sprintf(", require_expiry %t, rate_limit ", p.RequireExpiry)
	if p.RateLimit > 0 {
		s += fmt.Sprintf("%g/s (burst %d)", p.RateLimit, p.Burst)
	} else {
		s += "none"
	}
	return s
}

// policy checks req and returns the policy it sets.
func (req *PolicyRequest) policy(now time.Time) (auth.ProjectPolicy, []string) {
	var problems []string
	pol := auth.ProjectPolicy{RequireExpiry: req.RequireExpiry, RateLimit: req.RateLimit, Burst: req.Burst,
		UpdatedAt: now.UTC().Truncate(time.Millisecond)}
	if req.MaxLifetime != "" {
		d, err := auth.ParseLifetime(req.MaxLifetime)
		switch {
		case err != nil:
			problems = append(problems, "max_lifetime: "+err.Error())
		case !strings.HasSuffix(req.MaxLifetime, "d") && durationProblem("max_lifetime", req.MaxLifetime) != "":
			problems = append(problems, durationProblem("max_lifetime", req.MaxLifetime))
		case d < time.Minute:
			problems = append(problems, fmt.Sprintf("max_lifetime: %q is under a minute; give a lifetime such as 90d, or leave it out for no bound", req.MaxLifetime))
		}
		pol.MaxLifetime = d
	}
	switch {
	case !validRate(req.RateLimit):
		problems = append(problems, fmt.Sprintf("rate_limit: requests per second for the whole project, 0 (none) or from %g to %g", minRate, maxRate))
	case req.Burst < 0:
		problems = append(problems, "burst: 0 or more (0 means ceil(rate_limit))")
	case req.Burst > 0 && req.RateLimit == 0:
		problems = append(problems, "burst: needs a rate_limit above 0")
	}
	return pol, problems
}

// violations answers GET /v1/projects/{project}/policy/violations: the
// project's live tokens that break its lifetime policy (set after they
// were made), which are reported, not changed.
func (a *api) violations(w http.ResponseWriter, r *http.Request) {
	project, ok := a.adminProject(w, r, "project.policy.violations")
	if !ok {
		return
	}
	pol, ok := a.policyOf(w, r, project)
	if !ok {
		return
	}
	toks, err := a.Store.List(r.Context(), project)
	if err != nil {
		a.storeError(w, r, "list tokens", err)
		return
	}
	out := []Violation{}
	for _, t := range toks {
		if reason := pol.LifetimeViolation(t.CreatedAt, t.ExpiresAt); reason != "" {
			out = append(out, Violation{Token: View(t), Reason: reason})
		}
	}
	msg := fmt.Sprintf("%d of project %d's %d live tokens break its lifetime policy.", len(out), project, len(toks))
	if len(out) > 0 {
		msg += " They keep working: rotate them with an expires_in within the policy, give them an expiry, or revoke them."
	}
	writeJSON(w, http.StatusOK, ViolationsResponse{Success: true, Message: msg, Policy: PolicyView(project, pol), Violations: out})
}

// lifetimeRefusal refuses a token (created at created, expiring at
// expires) that breaks pol, naming the limit and the fix; nil when it
// does not.
func lifetimeRefusal(project int64, pol auth.ProjectPolicy, created, expires time.Time) *refusal {
	reason := pol.LifetimeViolation(created, expires)
	if reason == "" {
		return nil
	}
	fix := "Give an expiry (expires_in or expires_at)."
	if pol.MaxLifetime > 0 {
		fix = fmt.Sprintf("Give expires_in of at most %s (or an expires_at by %s).",
			auth.FormatLifetime(pol.MaxLifetime), stamp(created.Add(pol.MaxLifetime)))
	}
	return &refusal{
		status: http.StatusUnprocessableEntity, code: codeLifetimePolicy,
		message: fmt.Sprintf("Project %d's token lifetime policy refuses this token: %s. %s", project, reason, fix),
		detail:  reason,
	}
}

// policyOf reads the policy of project, answering a store failure.
func (a *api) policyOf(w http.ResponseWriter, r *http.Request, project int64) (auth.ProjectPolicy, bool) {
	pol, err := a.Store.ProjectPolicy(r.Context(), project)
	if err != nil {
		a.storeError(w, r, "read project policy", err)
		return pol, false
	}
	return pol, true
}

// policyEdit wraps an update's edit with project's lifetime policy: the
// token as changed must meet it when the update sets its expiry
// (expirySet; the record's creation time counts) or activates it, which
// grants it afresh. It runs inside the store's Update, on the current
// record, so that a concurrent change of the status cannot slip past;
// deactivating is never refused.
func policyEdit(pol auth.ProjectPolicy, expirySet bool, now time.Time, edit func(*auth.Token) error) func(*auth.Token) error {
	return func(t *auth.Token) error {
		wasActive := t.Status == auth.StatusActive
		if err := edit(t); err != nil {
			return err
		}
		switch {
		case !wasActive && t.Status == auth.StatusActive:
			if ref := activationRefusal(pol, t, now); ref != nil {
				return ref
			}
		case expirySet:
			if ref := lifetimeRefusal(t.ProjectID, pol, t.CreatedAt, t.ExpiresAt); ref != nil {
				return ref
			}
		}
		return nil
	}
}

// activationRefusal refuses activating t (as it would be once active) when
// it breaks pol, naming the limit and how to comply; nil when it does not.
func activationRefusal(pol auth.ProjectPolicy, t *auth.Token, now time.Time) *refusal {
	reason := pol.LifetimeViolation(t.CreatedAt, t.ExpiresAt)
	if reason == "" {
		return nil
	}
	rotate := "rotate it with an expires_in within the policy (tswgate token rotate <id> --expires-in …) and activate its successor"
	fix := "Activating grants the token afresh, so it must meet the policy: give expires_in or expires_at " +
		"with \"status\":\"active\" in the same request (tswgate token activate <id> --expires-in …), or " + rotate + "."
	if pol.MaxLifetime > 0 {
		latest := t.CreatedAt.Add(pol.MaxLifetime)
		rotate = fmt.Sprintf("rotate it with an expires_in of at most %s (tswgate token rotate <id> --expires-in %s) and activate its successor",
			auth.FormatLifetime(pol.MaxLifetime), pol.MaxLifetime)
		fix = fmt.Sprintf("Activating grants the token afresh, so it must meet the policy: give an expires_at by %s "+
			"(or an expires_in ending by then) with \"status\":\"active\" in the same request "+
			"(tswgate token activate <id> --expires-in …), or %s.", stamp(latest), rotate)
		if !latest.After(now) {
			fix = fmt.Sprintf("Activating grants the token afresh, so it must meet the policy, and it was created at %s, "+
				"longer than the maximum lifetime ago: no expiry brings it within the policy. Instead, %s, or create a new token.",
				stamp(t.CreatedAt), rotate)
		}
	}
	return &refusal{
		status: http.StatusUnprocessableEntity, code: codeLifetimePolicy,
		message: fmt.Sprintf("Project %d's token lifetime policy refuses activating this token: %s. %s", t.ProjectID, reason, fix),
		detail:  "activation: " + reason,
	}
}

// lifetimePolicy holds an update that sets an expiry (expirySet) or may
// activate the token to the lifetime policy of the token's project (read
// first when project is 0, for admin keys): it returns the wrapped edit
// and the project. It answers every failure itself.
func (a *api) lifetimePolicy(w http.ResponseWriter, r *http.Request, id string, project int64, expirySet bool,
	edit func(*auth.Token) error) (func(*auth.Token) error, int64, bool) {
	if project == 0 {
		tok, err := a.Store.Get(r.Context(), id)
		if err != nil {
			a.storeError(w, r, "update token", err)
			return nil, 0, false
		}
		project = tok.ProjectID
	}
	pol, ok := a.policyOf(w, r, project)
	if !ok {
		return nil, 0, false
	}
	return policyEdit(pol, expirySet, a.Now(), edit), project, true
}
