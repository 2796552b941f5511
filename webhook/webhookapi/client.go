package webhookapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// Client calls the webhook API; the CLI uses it.
type Client struct {
	// API holds the base URL and credential, as for the token API: the
	// admin listener and an admin key, or an Owner token (with the public
	// listener's URL followed by /tswgate, for its own project).
	API *tokenapi.Client
	// ProjectID selects the project's endpoints; 0 selects the operator's
	// (admin key) or, with a token on the public listener, its project's.
	ProjectID int64
}

func (c *Client) base() string {
	if c.ProjectID > 0 {
		return "/v1/projects/" + strconv.FormatInt(c.ProjectID, 10) + "/webhooks"
	}
	return "/v1/webhooks"
}

func (c *Client) path(id string, rest ...string) string {
	p := c.base() + "/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Create creates an endpoint; the answer holds its secret, once.
func (c *Client) Create(ctx context.Context, req CreateRequest) (Endpoint, error) {
	var resp EndpointResponse
	err := c.API.Do(ctx, http.MethodPost, c.base(), req, &resp)
	return resp.Endpoint, err
}

// List lists the endpoints.
func (c *Client) List(ctx context.Context) ([]Endpoint, error) {
	var resp ListResponse
	err := c.API.Do(ctx, http.MethodGet, c.base(), nil, &resp)
	return resp.Endpoints, err
}

// Get shows an endpoint.
func (c *Client) Get(ctx context.Context, id string) (Endpoint, error) {
	var resp EndpointResponse
	err := c.API.Do(ctx, http.MethodGet, c.path(id), nil, &resp)
	return resp.Endpoint, err
}

// Update changes an endpoint.
func (c *Client) Update(ctx context.Context, id string, req UpdateRequest) (Endpoint, error) {
	var resp EndpointResponse
	err := c.API.Do(ctx, http.MethodPatch, c.path(id), req, &resp)
	return resp.Endpoint, err
}

// Delete deletes an endpoint.
func (c *Client) Delete(ctx context.Context, id string) (Endpoint, error) {
	var resp EndpointResponse
	err := c.API.Do(ctx, http.MethodDelete, c.path(id), nil, &resp)
	return resp.Endpoint, err
}

// RotateSecret gives an endpoint a new secret; the answer holds it, once.
func (c *Client) RotateSecret(ctx context.Context, id string, req RotateRequest) (EndpointResponse, error) {
	var resp EndpointResponse
	err := c.API.Do(ctx, http.MethodPost, c.path(id, "rotate-secret"), req, &resp)
	return resp, err
}

// Deliveries lists an endpoint's latest deliveries, newest first (limit
// 0: the server's default).
func (c *Client) Deliveries(ctx context.Context, id string, limit int) ([]Delivery, error) {
	p := c.path(id, "deliveries")
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var resp DeliveriesResponse
	err := c.API.Do(ctx, http.MethodGet, p, nil, &resp)
	return resp.Deliveries, err
}

// Delivery shows a delivery with its attempts and payload.
func (c *Client) Delivery(ctx context.Context, id, delivery string) (Delivery, error) {
	var resp DeliveryResponse
	err := c.API.Do(ctx, http.MethodGet, c.path(id, "deliveries", delivery), nil, &resp)
	return resp.Delivery, err
}

// Replay queues a delivery again, now.
func (c *Client) Replay(ctx context.Context, id, delivery string) (Delivery, error) {
	var resp DeliveryResponse
	err := c.API.Do(ctx, http.MethodPost, c.path(id, "deliveries", delivery, "replay"), nil, &resp)
	return resp.Delivery, err
}

// Test queues a webhook.test message to an endpoint.
func (c *Client) Test(ctx context.Context, id string) (Delivery, error) {
	var resp DeliveryResponse
	err := c.API.Do(ctx, http.MethodPost, c.path(id, "test"), nil, &resp)
	return resp.Delivery, err
}
