package tokenapi

// Listing tokens (filtered, paged, with usage) and reading the audit trail.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tswgate/tswgate/auth"
)

// Page sizes of list and audit.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// The query parameters of list and audit; every other is refused.
var (
	listParams  = []string{"project_id", "status", "role", "limit", "cursor"}
	auditParams = []string{"project_id", "limit", "cursor"}
)

// pageQuery reads the query parameters shared by list and audit:
// project_id (defaulting to the principal's project; 0 only where
// allowZero), limit and cursor.
type pageQuery struct {
	project int64
	limit   int
	cursor  string
}

func parsePageQuery(r *http.Request, p *principal, defaultLimit int, allowZero bool, problems *[]string) pageQuery {
	q := r.URL.Query()
	pq := pageQuery{project: p.defaultProject(), limit: defaultLimit, cursor: q.Get("cursor")}
	if raw := q.Get("project_id"); raw != "" || pq.project == 0 {
		n, ok := parseWhole(raw)
		switch {
		case raw == "":
			*problems = append(*problems, "project_id: required with an admin key; use e.g. ?project_id=42")
		case !ok || n == 0 && !allowZero:
			*problems = append(*problems, fmt.Sprintf("project_id: %q is not a positive integer written without a sign or leading zeros; use e.g. ?project_id=42", truncate(raw)))
		}
		pq.project = n
	}
	if raw := q.Get("limit"); raw != "" {
		n, ok := parseWhole(raw)
		if !ok || n < 1 || n > MaxPageSize {
			*problems = append(*problems, fmt.Sprintf("limit: %q is not a whole number from 1 to %d, written without a sign or leading zeros", truncate(raw), MaxPageSize))
		}
		pq.limit = int(n)
	}
	return pq
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	var problems []string
	p := principalOf(r)
	pq := parsePageQuery(r, p, DefaultPageSize, false, &problems)
	lq := auth.ListQuery{ProjectID: pq.project, Limit: pq.limit}
	q := r.URL.Query()
	if raw := q.Get("status"); raw != "" {
		st, err := auth.ParseStatus(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("status: %q is not active or inactive", raw))
		}
		lq.Status = st
	}
	if raw := q.Get("role"); raw != "" {
		role, err := auth.ParseRole(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("role: %q is not owner or accounting", raw))
		}
		lq.Role = role
	}
	var err error
	if lq.After, err = auth.ParseListCursor(pq.cursor); err != nil {
		problems = append(problems, "cursor: not the next_cursor of a previous page; start again without cursor")
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The list request is invalid.", problems...)
		return
	}
	if !a.allowProject(w, r, "token.list", p, pq.project, "") {
		return
	}
	page, err := a.Store.ListPage(r.Context(), lq)
	if err != nil {
		a.storeError(w, r, "list tokens", err)
		return
	}
	views, err := a.views(r.Context(), page.Tokens)
	if err != nil {
		a.storeError(w, r, "list token usage", err)
		return
	}
	writeJSON(w, http.StatusOK, ListResponse{
		Success: true, ProjectID: pq.project, Tokens: views, NextCursor: page.Next.String(),
	})
}

// views converts records for display, with their usage (one store round
// trip for all of them).
func (a *api) views(ctx context.Context, toks []*auth.Token) ([]Token, error) {
	out := make([]Token, 0, len(toks))
	if len(toks) == 0 {
		return out, nil
	}
	ids := make([]string, len(toks))
	for i, t := range toks {
		ids[i] = t.ID
	}
	usage, err := a.Store.UsageOf(ctx, ids, a.Now())
	if err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	for _, t := range toks {
		v := View(t)
		v.setUsage(usage[t.ID])
		out = append(out, v)
	}
	return out, nil
}

// setUsage adds a token's usage to its view.
func (v *Token) setUsage(u auth.TokenUsage) {
	if !u.LastUsed.IsZero() {
		last := u.LastUsed.UTC()
		v.LastUsed = &last
	}
	if len(u.Counts) == 0 {
		return
	}
	v.Usage24h = &Usage{Refused: map[string]int64{}}
	for c, n := range u.Counts {
		switch c {
		case auth.OK:
			v.Usage24h.Allowed += n
		case auth.CodeRateLimited, auth.CodeProjectRateLimited:
			v.Usage24h.RateLimited += n
		default:
			v.Usage24h.Refused[c.String()] += n
		}
	}
}

func (a *api) readAudit(w http.ResponseWriter, r *http.Request) {
	var problems []string
	p := principalOf(r)
	// Admin keys may read project 0: refused attempts that named no
	// project (a wrong admin key).
	pq := parsePageQuery(r, p, 50, p.token == nil, &problems)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The audit request is invalid.", problems...)
		return
	}
	if !a.allowProject(w, r, "audit.read", p, pq.project, "") {
		return
	}
	page, err := a.Store.ReadAudit(r.Context(), auth.AuditQuery{ProjectID: pq.project, Before: pq.cursor, Limit: pq.limit})
	if errors.Is(err, auth.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "invalid_request", "The audit request is invalid.",
			"cursor: not the next_cursor of a previous page; start again without cursor")
		return
	}
	if err != nil {
		a.storeError(w, r, "read the audit trail", err)
		return
	}
	writeJSON(w, http.StatusOK, AuditResponse{
		Success: true, ProjectID: pq.project, Events: page.Events, NextCursor: page.Next,
	})
}
