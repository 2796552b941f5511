// Package tokenapi is tswgate's token-management HTTP API: create a token
// (its secret is returned once), list a project's tokens, show and revoke
// one. It is served on the admin listener and authenticated by admin keys.
package tokenapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Store is the part of auth.Store the API uses.
type Store interface {
	Get(ctx context.Context, id string) (*auth.Token, error)
	Create(ctx context.Context, t *auth.Token) error
	List(ctx context.Context, projectID int64) ([]*auth.Token, error)
	Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error)
}

// Options configure the API handler.
type Options struct {
	// Store holds the tokens. Required.
	Store Store
	// Hasher hashes new secrets. Required.
	Hasher *auth.Hasher
	// AdminKeys are the keys accepted in "Authorization: Bearer <key>".
	// At least one is required.
	AdminKeys []string
	// Invalidate drops a token from this replica's cache before a change
	// is acknowledged, so that this replica never serves a revoked token
	// after the revoke returns. Other replicas hear of it from the store.
	Invalidate func(id string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives an audit line per change; nil discards them.
	Logger *slog.Logger
}

type api struct {
	Options
	keys [][32]byte
}

// New returns the API's http.Handler.
func New(opts Options) (http.Handler, error) {
	if opts.Store == nil || opts.Hasher == nil {
		return nil, errors.New("tokenapi: Options.Store and Hasher are required")
	}
	if len(opts.AdminKeys) == 0 {
		return nil, errors.New("tokenapi: at least one admin key is required")
	}
	a := &api{Options: opts}
	for _, k := range opts.AdminKeys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	if a.Invalidate == nil {
		a.Invalidate = func(string) {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", a.create)
	mux.HandleFunc("GET /v1/tokens", a.list)
	mux.HandleFunc("GET /v1/tokens/{id}", a.show)
	mux.HandleFunc("DELETE /v1/tokens/{id}", a.revoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No such endpoint: see the README's token API table.")
	})
	return a.authenticate(mux), nil
}

// authenticate admits requests that carry one of the admin keys.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const scheme = "bearer "
		h := r.Header.Get("Authorization")
		if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate-admin"`)
			writeError(w, http.StatusUnauthorized, "missing_admin_key",
				"Send the admin key as Authorization: Bearer <key> (TSWGATE_ADMIN_KEY).")
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(scheme):])))
		ok := 0
		for i := range a.keys {
			ok |= subtle.ConstantTimeCompare(sum[:], a.keys[i][:])
		}
		if ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_admin_key", "The admin key is not valid.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CreateRequest is the body of POST /v1/tokens.
type CreateRequest struct {
	ProjectID int64  `json:"project_id"`
	Role      string `json:"role"`
	Name      string `json:"name"`
	// ExpiresAt (RFC 3339) or ExpiresIn (a Go duration such as "720h")
	// sets an expiry; neither means the token never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn string     `json:"expires_in,omitempty"`
}

// Token is a token as the API shows it. Secret-bearing Token is set only in
// the response to a create.
type Token struct {
	ID        string     `json:"id"`
	DisplayID string     `json:"display_id"`
	Token     string     `json:"token,omitempty"`
	ProjectID int64      `json:"project_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// View converts a record for display.
func View(t *auth.Token) Token {
	v := Token{
		ID:        t.ID,
		DisplayID: auth.DisplayID(t.ID),
		ProjectID: t.ProjectID,
		Name:      t.Name,
		Role:      t.Role.String(),
		Status:    t.Status.String(),
		CreatedAt: t.CreatedAt.UTC(),
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC()
		v.ExpiresAt = &e
	}
	if t.Revoked() {
		r := t.RevokedAt.UTC()
		v.RevokedAt = &r
		v.Status = "revoked"
	}
	return v
}

// Response bodies, each in the API's envelope.
type (
	// TokenResponse answers create, show and revoke.
	TokenResponse struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
		Token   Token  `json:"token"`
	}
	// ListResponse answers list.
	ListResponse struct {
		Success   bool    `json:"success"`
		Message   string  `json:"message"`
		ProjectID int64   `json:"project_id"`
		Tokens    []Token `json:"tokens"`
	}
	// ErrorResponse answers any failure.
	ErrorResponse struct {
		Success bool     `json:"success"`
		Message string   `json:"message"`
		Code    string   `json:"code"`
		Errors  []string `json:"errors,omitempty"`
	}
)

const maxRequestBody = 64 << 10

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body is not a valid token request: "+err.Error())
		return
	}
	now := a.Now()
	tok, problems := newRecord(&req, now)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token request is invalid.", problems...)
		return
	}
	id, cred, err := auth.NewCredential()
	if err != nil {
		a.internalError(w, r, "create token", err)
		return
	}
	tok.ID = id
	tok.SecretHash, tok.PepperID = a.Hasher.Hash(cred)
	if err := a.Store.Create(r.Context(), tok); err != nil {
		a.storeError(w, r, "create token", err)
		return
	}
	a.Invalidate(id) // drop a negative cache entry for the id, if any
	a.audit(r, "token.create", tok)
	view := View(tok)
	view.Token = cred
	writeJSON(w, http.StatusCreated, TokenResponse{
		Success: true,
		Message: "Token created. Copy the token now: its secret cannot be retrieved again.",
		Token:   view,
	})
}

func newRecord(req *CreateRequest, now time.Time) (*auth.Token, []string) {
	var problems []string
	tok := &auth.Token{
		ProjectID: req.ProjectID,
		Name:      strings.TrimSpace(req.Name),
		Status:    auth.StatusActive,
		CreatedAt: now.UTC().Truncate(time.Millisecond),
	}
	if req.ProjectID <= 0 {
		problems = append(problems, "project_id: required, a positive integer")
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		problems = append(problems, "role: "+err.Error())
	}
	tok.Role = role
	if tok.Name == "" {
		problems = append(problems, "name: required")
	} else if len(tok.Name) > auth.MaxNameLen {
		problems = append(problems, fmt.Sprintf("name: at most %d bytes", auth.MaxNameLen))
	}
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != "":
		problems = append(problems, "expires_at, expires_in: give one, not both")
	case req.ExpiresAt != nil:
		tok.ExpiresAt = req.ExpiresAt.UTC().Truncate(time.Millisecond)
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			problems = append(problems, fmt.Sprintf("expires_in: %q is not a positive duration such as 720h", req.ExpiresIn))
		}
		tok.ExpiresAt = tok.CreatedAt.Add(d)
	}
	if !tok.ExpiresAt.IsZero() && !tok.ExpiresAt.After(now) {
		problems = append(problems, "expires_at: must be in the future")
	}
	return tok, problems
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("project_id")
	project, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || project <= 0 {
		writeError(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("project_id: %q is not a positive integer; use GET /v1/tokens?project_id=42", raw))
		return
	}
	toks, err := a.Store.List(r.Context(), project)
	if err != nil {
		a.storeError(w, r, "list tokens", err)
		return
	}
	resp := ListResponse{Success: true, ProjectID: project, Tokens: make([]Token, 0, len(toks))}
	for _, t := range toks {
		resp.Tokens = append(resp.Tokens, View(t))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *api) show(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	tok, err := a.Store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, r, "get token", err)
		return
	}
	writeJSON(w, http.StatusOK, TokenResponse{Success: true, Token: View(tok)})
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	tok, err := a.Store.Revoke(r.Context(), id, a.Now())
	if err != nil {
		a.storeError(w, r, "revoke token", err)
		return
	}
	a.Invalidate(id)
	a.audit(r, "token.revoke", tok)
	writeJSON(w, http.StatusOK, TokenResponse{
		Success: true,
		Message: "Token revoked: it is refused from now on.",
		Token:   View(tok),
	})
}

func tokenID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !auth.ValidID(id) {
		writeError(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("%q is not a token id (tsw_ followed by 20 letters and digits)", id))
		return "", false
	}
	return id, true
}

func (a *api) audit(r *http.Request, action string, t *auth.Token) {
	a.Logger.LogAttrs(r.Context(), slog.LevelInfo, action,
		slog.String("token_id", t.ID), slog.Int64("project_id", t.ProjectID),
		slog.String("role", t.Role.String()), slog.String("remote_addr", r.RemoteAddr))
}

func (a *api) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		writeError(w, http.StatusNotFound, "token_not_found", "No token has that id.")
	case errors.Is(err, auth.ErrExists):
		writeError(w, http.StatusConflict, "token_exists", "A token with that id exists already; retry.")
	case errors.Is(err, auth.ErrUnavailable):
		a.Logger.LogAttrs(r.Context(), slog.LevelError, op+" failed", slog.String("err", err.Error()))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "The token store is unavailable: retry later.")
	default:
		a.internalError(w, r, op, err)
	}
}

func (a *api) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	a.Logger.LogAttrs(r.Context(), slog.LevelError, op+" failed", slog.String("err", err.Error()))
	writeError(w, http.StatusInternalServerError, "internal_error", "Internal error: see the gateway's log.")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string, problems ...string) {
	w.Header().Set("X-Tsw-Error-Code", code)
	writeJSON(w, status, ErrorResponse{Message: message, Code: code, Errors: problems})
}
