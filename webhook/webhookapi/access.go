package webhookapi

// Who may act on which endpoints, and how failures are answered.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/webhook"
)

// scope is whose endpoints a route manages.
type scope int

const (
	// scopeOperator: the operator's endpoints (project 0), admin keys only.
	scopeOperator scope = iota
	// scopeProject: the project of the path.
	scopeProject
	// scopeSelf: the calling token's project.
	scopeSelf
)

// call is an admitted request: who makes it, on which project's endpoints.
type call struct {
	action  string
	p       *tokenapi.Principal
	project int64 // 0: the operator's endpoints
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call)

// scoped admits a request for action, whose endpoint reads the query
// parameters params, and resolves the project it acts on, answering every
// refusal, then runs fn.
func (h *Handler) scoped(action string, s scope, fn handlerFunc, params ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.opts.Auth.Authorize(w, r, action, params...)
		if !ok {
			return
		}
		c := &call{action: action, p: p}
		switch s {
		case scopeOperator:
			if !p.Admin() {
				h.refuse(w, r, c, p.Token.ProjectID, http.StatusForbidden, "operator_only",
					"The operator's webhooks are managed with an admin key. Manage your project's under /v1/projects/{project}/webhooks.")
				return
			}
		case scopeProject:
			n, err := strconv.ParseInt(r.PathValue("project"), 10, 64)
			if err != nil || n <= 0 {
				const problem = "project: the path's project is not a project id (a positive integer)"
				writeError(w, http.StatusBadRequest, "invalid_request", "The path's project is not a project id (a positive integer).", problem)
				return
			}
			if !p.Admin() && p.Token.ProjectID != n {
				h.refuse(w, r, c, p.Token.ProjectID, http.StatusForbidden, "project_forbidden", fmt.Sprintf(
					"This Owner token belongs to project %d: it may manage only that project's webhooks, not project %d's.", p.Token.ProjectID, n))
				return
			}
			c.project = n
		case scopeSelf:
			if p.Admin() {
				writeError(w, http.StatusForbidden, "token_required", "Self-service webhooks are managed with an Owner token of the project.")
				return
			}
			c.project = p.Token.ProjectID
		}
		fn(w, r, c)
	}
}

// refuse answers a refusal by a rule and records it in project's trail.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, c *call, project int64, status int, code, msg string) {
	h.opts.Auth.Refused(r, c.action, c.p, project, code, "", "")
	writeError(w, status, code, msg)
}

// endpoint returns the endpoint of the path's id if it belongs to c's
// project. An unknown id and one of another project get the same 404.
func (h *Handler) endpoint(w http.ResponseWriter, r *http.Request, c *call) (*webhook.Endpoint, bool) {
	id := r.PathValue("id")
	if !validID(id, "ep_") {
		writeError(w, http.StatusNotFound, "endpoint_not_found", "No webhook endpoint has that id.")
		return nil, false
	}
	e, err := h.opts.Endpoints.Get(r.Context(), id)
	if err == nil && e.ProjectID != c.project {
		h.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "webhook API: endpoint of another project asked for",
			slog.String("action", c.action), slog.String("endpoint", id), slog.Int64("project_id", c.project),
			slog.String("actor", auth.RedactSecrets(c.p.Actor)))
		err = webhook.ErrNotFound
	}
	if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return nil, false
	}
	return e, true
}

// validID reports whether s is prefix and 1 to 60 letters and digits.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || rest == "" || len(rest) > 60 {
		return false
	}
	for _, c := range rest {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// fail answers a failed registry or queue call: ErrNotFound as 404 with
// notFoundCode, the client gone as 499, anything else as 503 (the store
// is unavailable), logged.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, c *call, err error, notFoundCode, notFoundMsg string) {
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		writeError(w, http.StatusNotFound, notFoundCode, notFoundMsg)
	case errors.Is(err, webhook.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "The endpoint was changed by another request meanwhile: retry.")
	case r.Context().Err() != nil:
		writeError(w, tokenapi.StatusClientClosed, auth.CodeClientClosed.String(), auth.CodeClientClosed.Message())
	default:
		h.opts.Logger.LogAttrs(r.Context(), slog.LevelError, "webhook API: store call failed",
			slog.String("action", c.action), slog.String("err", auth.RedactSecrets(err.Error())))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "The webhook store is unavailable: retry later.")
	}
}

// auditTimeout bounds the recording of an audit event, which goes on
// when the client has gone away: the change it records is made.
const auditTimeout = 5 * time.Second

// done logs a change and records it in the project's audit trail.
func (h *Handler) done(r *http.Request, c *call, e *webhook.Endpoint, detail string) {
	ev := auth.AuditEvent{
		Time: h.opts.Now().UTC().Truncate(time.Millisecond), Action: c.action,
		ActorKind: c.p.Kind, Actor: c.p.Actor, ProjectID: e.ProjectID, Source: r.RemoteAddr,
		Outcome: auth.OutcomeOK, Detail: strings.TrimSpace("endpoint " + e.ID + " " + detail),
	}
	for _, f := range []*string{&ev.Actor, &ev.Source, &ev.Detail} {
		*f = auth.RedactSecrets(*f)
	}
	ctx := context.WithoutCancel(r.Context())
	h.opts.Logger.LogAttrs(ctx, slog.LevelInfo, c.action, slog.Any("endpoint", e),
		slog.String("actor_kind", ev.ActorKind), slog.String("actor", ev.Actor), slog.String("detail", ev.Detail))
	if h.opts.Audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	if err := h.opts.Audit.AppendAudit(ctx, &ev); err != nil {
		h.opts.Logger.LogAttrs(ctx, slog.LevelError, "recording an audit event failed; the log line above stands for it",
			slog.String("action", ev.Action), slog.String("err", auth.RedactSecrets(err.Error())))
	}
}

var (
	writeJSON  = tokenapi.WriteJSON
	writeError = tokenapi.WriteError
	decodeBody = tokenapi.DecodeBody
)

// truncate shortens s, a value of the request echoed in a problem, to at
// most 64 bytes (cut at a rune's start).
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
