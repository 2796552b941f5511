package tokenapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls the token API; the CLI uses it.
type Client struct {
	// BaseURL is the admin listener's URL, e.g. http://127.0.0.1:8081.
	BaseURL string
	// AdminKey authenticates the calls: an admin key, or an Owner API
	// token (tsw_…:tswsk_…), which manages its own project only. With a
	// token, BaseURL may be the public listener's URL followed by
	// /tswgate.
	AdminKey string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is a refusal from the API.
type APIError struct {
	Status  int
	Code    string
	Message string
	Errors  []string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
	for _, p := range e.Errors {
		msg += "\n  - " + p
	}
	return msg
}

// Create creates a token; the response holds its secret, once.
func (c *Client) Create(ctx context.Context, req CreateRequest) (Token, error) {
	var resp TokenResponse
	err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &resp)
	return resp.Token, err
}

// List lists all of a project's tokens, following every page.
func (c *Client) List(ctx context.Context, projectID int64) ([]Token, error) {
	return c.ListAll(ctx, ListOptions{ProjectID: projectID})
}

// ListOptions select tokens for ListPage and ListAll. Zero values are
// left out of the query: ProjectID 0 is the calling token's project
// (self-service), Limit 0 the server's page size.
type ListOptions struct {
	ProjectID int64
	// Status is "active" or "inactive"; Role "owner" or "accounting".
	Status, Role string
	Limit        int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

func (o ListOptions) query() string {
	q := url.Values{}
	if o.ProjectID != 0 {
		q.Set("project_id", strconv.FormatInt(o.ProjectID, 10))
	}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Role != "" {
		q.Set("role", o.Role)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q.Encode()
}

// ListPage lists one page of a project's tokens.
func (c *Client) ListPage(ctx context.Context, o ListOptions) (ListResponse, error) {
	var resp ListResponse
	err := c.do(ctx, http.MethodGet, "/v1/tokens?"+o.query(), nil, &resp)
	return resp, err
}

// ListAll lists every token o selects, following the pages from o.Cursor.
func (c *Client) ListAll(ctx context.Context, o ListOptions) ([]Token, error) {
	var all []Token
	for {
		resp, err := c.ListPage(ctx, o)
		if err != nil {
			return all, err
		}
		all = append(all, resp.Tokens...)
		if resp.NextCursor == "" {
			return all, nil
		}
		o.Cursor = resp.NextCursor
	}
}

// AuditOptions select audit events: the project's (0: the calling token's
// project), newest first, Limit at a time (0: the server's default), from
// Cursor (the NextCursor of the previous page).
type AuditOptions struct {
	ProjectID int64
	Limit     int
	Cursor    string
}

// Audit reads one page of a project's audit trail.
func (c *Client) Audit(ctx context.Context, o AuditOptions) (AuditResponse, error) {
	q := ListOptions{ProjectID: o.ProjectID, Limit: o.Limit, Cursor: o.Cursor}.query()
	if o.ProjectID == 0 && c.isAdminKey() {
		q = "project_id=0&" + q // an admin key's project 0: unscoped refusals
	}
	var resp AuditResponse
	err := c.do(ctx, http.MethodGet, "/v1/audit?"+q, nil, &resp)
	return resp, err
}

// isAdminKey reports whether the client authenticates with an admin key
// rather than an API token.
func (c *Client) isAdminKey() bool { return !strings.HasPrefix(c.AdminKey, "tsw_") }

// Get shows one token.
func (c *Client) Get(ctx context.Context, id string) (Token, error) {
	var resp TokenResponse
	err := c.do(ctx, http.MethodGet, "/v1/tokens/"+url.PathEscape(id), nil, &resp)
	return resp.Token, err
}

// Update changes a token's status, expiry or rate limit; only the fields
// set in req change.
func (c *Client) Update(ctx context.Context, id string, req UpdateRequest) (Token, error) {
	var resp TokenResponse
	err := c.do(ctx, http.MethodPatch, "/v1/tokens/"+url.PathEscape(id), req, &resp)
	return resp.Token, err
}

// Rotate replaces a token with a new one of the same project, name, role
// and rate limit; the response holds the new token's secret, once, and the
// old token as it is now (expiring after req.Grace, or revoked).
func (c *Client) Rotate(ctx context.Context, id string, req RotateRequest) (RotateResponse, error) {
	var resp RotateResponse
	err := c.do(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/rotate", req, &resp)
	return resp, err
}

// Revoke revokes a token.
func (c *Client) Revoke(ctx context.Context, id string) (Token, error) {
	var resp TokenResponse
	err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, &resp)
	return resp.Token, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("token API URL %q: %w", c.BaseURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling the token API at %s (is tswgate running? TSWGATE_ADMIN_URL): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the token API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return &APIError{Status: resp.StatusCode, Code: "unexpected_response", Message: strings.TrimSpace(string(data))}
		}
		return &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message, Errors: e.Errors}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the token API's answer: %w", err)
	}
	return nil
}

// Policy reads a project's policy: with an admin key at
// /v1/projects/{project}/policy, with an Owner token (project 0: its own)
// at /v1/policy.
func (c *Client) Policy(ctx context.Context, projectID int64) (Policy, error) {
	var resp PolicyResponse
	path := "/v1/projects/" + strconv.FormatInt(projectID, 10) + "/policy"
	if !c.isAdminKey() {
		path = "/v1/policy"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &resp)
	return resp.Policy, err
}

// SetPolicy replaces a project's policy (admin keys only).
func (c *Client) SetPolicy(ctx context.Context, projectID int64, req PolicyRequest) (PolicyResponse, error) {
	var resp PolicyResponse
	err := c.do(ctx, http.MethodPut, "/v1/projects/"+strconv.FormatInt(projectID, 10)+"/policy", req, &resp)
	return resp, err
}

// ClearPolicy removes a project's policy (admin keys only).
func (c *Client) ClearPolicy(ctx context.Context, projectID int64) (PolicyResponse, error) {
	var resp PolicyResponse
	err := c.do(ctx, http.MethodDelete, "/v1/projects/"+strconv.FormatInt(projectID, 10)+"/policy", nil, &resp)
	return resp, err
}

// Violations lists a project's live tokens that break its lifetime policy
// (admin keys only).
func (c *Client) Violations(ctx context.Context, projectID int64) (ViolationsResponse, error) {
	var resp ViolationsResponse
	err := c.do(ctx, http.MethodGet, "/v1/projects/"+strconv.FormatInt(projectID, 10)+"/policy/violations", nil, &resp)
	return resp, err
}
