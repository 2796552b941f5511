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
	// AdminKey authenticates the calls.
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

// List lists a project's tokens.
func (c *Client) List(ctx context.Context, projectID int64) ([]Token, error) {
	var resp ListResponse
	err := c.do(ctx, http.MethodGet, "/v1/tokens?project_id="+strconv.FormatInt(projectID, 10), nil, &resp)
	return resp.Tokens, err
}

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
