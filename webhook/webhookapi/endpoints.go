package webhookapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tswgate/tswgate/webhook"
)

// Endpoint is an endpoint as the API shows it. Secret is set only in the
// answers to a create and a secret rotation.
type Endpoint struct {
	ID          string    `json:"id"`
	ProjectID   int64     `json:"project_id"`
	URL         string    `json:"url"`
	Types       []string  `json:"types"`
	Enabled     bool      `json:"enabled"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
	Secret      string    `json:"secret,omitempty"`
	// PreviousSecretUntil is when the secret before the latest rotation
	// stops signing (absent: it does not sign).
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	// Queue is where its undelivered messages stand (in show and list).
	Queue *QueueStatus `json:"queue,omitempty"`
}

// QueueStatus is where an endpoint's undelivered messages stand.
type QueueStatus struct {
	// Pending counts the messages not delivered yet (due or retrying).
	Pending int `json:"pending"`
	// MaxPending is the most kept undelivered: while Pending is at it,
	// the queue is Full and new events for the endpoint are dropped.
	MaxPending int  `json:"max_pending"`
	Full       bool `json:"full"`
	// Dropped counts the events dropped because the queue was full, the
	// latest at LastDroppedAt.
	Dropped       int64      `json:"dropped"`
	LastDroppedAt *time.Time `json:"last_dropped_at,omitempty"`
	// MaxPendingPerProject is, on the operator's endpoints (which receive
	// every project's events), the most undelivered messages of one
	// project kept; DroppedProjectQueueFull counts those of Dropped that
	// were dropped for it.
	MaxPendingPerProject    int   `json:"max_pending_per_project,omitempty"`
	DroppedProjectQueueFull int64 `json:"dropped_project_queue_full,omitempty"`
}

// withQueue adds the queue's status to v; when the queue cannot say, v is
// shown without it (the failure is logged).
func (h *Handler) withQueue(ctx context.Context, v *Endpoint) {
	operator := v.ProjectID == 0
	s, err := h.opts.Queue.Stats(ctx, v.ID)
	if err != nil {
		h.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "webhook API: reading an endpoint's queue failed",
			slog.String("endpoint", v.ID), slog.String("err", err.Error()))
		return
	}
	v.Queue = &QueueStatus{Pending: s.Pending, MaxPending: s.MaxPending, Full: s.Full(), Dropped: s.Dropped}
	if !s.LastDropped.IsZero() {
		last := s.LastDropped
		v.Queue.LastDroppedAt = &last
	}
	if operator {
		v.Queue.MaxPendingPerProject, v.Queue.DroppedProjectQueueFull = s.MaxPendingPerProject, s.DroppedProject
	}
}

// View converts an endpoint for display, without its secrets.
func View(e *webhook.Endpoint, now time.Time) Endpoint {
	v := Endpoint{
		ID: e.ID, ProjectID: e.ProjectID, URL: e.URL, Types: e.Types, Enabled: !e.Disabled,
		Description: e.Description, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if v.Types == nil {
		v.Types = []string{}
	}
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		until := e.PreviousUntil
		v.PreviousSecretUntil = &until
	}
	return v
}

// Request and response bodies.
type (
	// CreateRequest is the body of a create. Types empty means every
	// event type; Enabled absent means true.
	CreateRequest struct {
		URL         string   `json:"url"`
		Types       []string `json:"types,omitempty"`
		Enabled     *bool    `json:"enabled,omitempty"`
		Description string   `json:"description,omitempty"`
	}
	// UpdateRequest is the body of an update; only the fields given
	// change, at least one is required. Types [] means every type.
	UpdateRequest struct {
		URL         *string   `json:"url,omitempty"`
		Types       *[]string `json:"types,omitempty"`
		Enabled     *bool     `json:"enabled,omitempty"`
		Description *string   `json:"description,omitempty"`
	}
	// RotateRequest is the body of a secret rotation; it may be empty.
	// Grace is how long the old secret keeps signing beside the new one,
	// as a Go duration ("24h" when absent; "0s" stops it at once).
	RotateRequest struct {
		Grace string `json:"grace,omitempty"`
	}
	// EndpointResponse answers create, show, update, delete and rotate.
	EndpointResponse struct {
		Success  bool     `json:"success"`
		Message  string   `json:"message"`
		Endpoint Endpoint `json:"endpoint"`
	}
	// ListResponse answers a list.
	ListResponse struct {
		Success   bool       `json:"success"`
		Message   string     `json:"message"`
		ProjectID int64      `json:"project_id"`
		Endpoints []Endpoint `json:"endpoints"`
	}
)

func (h *Handler) create(w http.ResponseWriter, r *http.Request, c *call) {
	var req CreateRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	now := h.opts.Now()
	e, err := webhook.NewEndpoint(c.project, strings.TrimSpace(req.URL), req.Types, now)
	var problems []string
	if err != nil {
		problems = strings.Split(err.Error(), "\n")
	} else {
		e.Description = req.Description
		e.Disabled = req.Enabled != nil && !*req.Enabled
		problems = h.check(r.Context(), e)
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The webhook endpoint is invalid.", problems...)
		return
	}
	if err := h.opts.Endpoints.Add(r.Context(), e, h.opts.MaxEndpoints); errors.Is(err, webhook.ErrEndpointLimit) {
		h.refuse(w, r, c, c.project, http.StatusConflict, "endpoint_limit", fmt.Sprintf(
			"This project has %d webhook endpoints, the most allowed: delete one first.", h.opts.MaxEndpoints))
		return
	} else if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	h.done(r, c, e, "host "+hostOf(e.URL))
	v := View(e, now)
	v.Secret = e.Secret
	writeJSON(w, http.StatusCreated, EndpointResponse{Success: true, Endpoint: v,
		Message: "Webhook endpoint created. Copy the secret now: it cannot be retrieved again."})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, c *call) {
	es, err := h.opts.Endpoints.List(r.Context(), c.project)
	if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	now := h.opts.Now()
	out := make([]Endpoint, len(es))
	for i, e := range es {
		out[i] = View(e, now)
		h.withQueue(r.Context(), &out[i])
	}
	writeJSON(w, http.StatusOK, ListResponse{Success: true, ProjectID: c.project, Endpoints: out})
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request, c *call) {
	if e, ok := h.endpoint(w, r, c); ok {
		v := View(e, h.opts.Now())
		h.withQueue(r.Context(), &v)
		writeJSON(w, http.StatusOK, EndpointResponse{Success: true, Endpoint: v})
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c *call) {
	var req UpdateRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	if req.URL == nil && req.Types == nil && req.Enabled == nil && req.Description == nil {
		const problem = "body: nothing to change; give url, types, enabled or description"
		writeError(w, http.StatusBadRequest, "invalid_request", "The update is invalid: "+problem+".", problem)
		return
	}
	cur, ok := h.endpoint(w, r, c)
	if !ok {
		return
	}
	// The URL policy is applied before the compare-and-set, which holds
	// the file registry's lock: the look-up of a name may take a while.
	if req.URL != nil {
		if problems := h.checkURL(r.Context(), strings.TrimSpace(*req.URL), cur.Operator()); len(problems) > 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "The update is invalid.", problems...)
			return
		}
	}
	now := h.opts.Now()
	var problems []string
	e, err := h.opts.Endpoints.Update(r.Context(), cur.ID, func(e *webhook.Endpoint) error {
		old := *e
		req.apply(e)
		e.UpdatedAt = now.UTC()
		if err := webhook.CheckUpdate(&old, e); errors.Is(err, webhook.ErrURLRefused) {
			return err
		} else if err != nil {
			problems = strings.Split(err.Error(), "\n")
			return errInvalid
		}
		return nil
	})
	switch {
	case errors.Is(err, webhook.ErrURLRefused):
		writeURLRefused(w, err)
		return
	case errors.Is(err, errInvalid):
		writeError(w, http.StatusBadRequest, "invalid_request", "The update is invalid.", problems...)
		return
	case err != nil:
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	h.done(r, c, e, req.detail())
	writeJSON(w, http.StatusOK, EndpointResponse{Success: true, Endpoint: View(e, now),
		Message: "Webhook endpoint updated: messages sent from now on follow the change."})
}

var errInvalid = errors.New("invalid endpoint")

// writeURLRefused answers 409 url_refused to a change that would keep an
// endpoint enabled on a URL stored before the rules refused it; err names
// the URL's problem.
func writeURLRefused(w http.ResponseWriter, err error) {
	problem := "url: refused by the current rules"
	var re *webhook.URLRefusedError
	if errors.As(err, &re) {
		problem = re.Problem.Error()
	}
	writeError(w, http.StatusConflict, "url_refused", "The endpoint's URL was saved before the current rules "+
		"and is refused now: give it a valid url, or disable it (enabled: false); it can be changed while disabled.", problem)
}

func (req *UpdateRequest) apply(e *webhook.Endpoint) {
	if req.URL != nil {
		e.URL = strings.TrimSpace(*req.URL)
	}
	if req.Types != nil {
		e.Types = slices.Clone(*req.Types)
	}
	if req.Enabled != nil {
		e.Disabled = !*req.Enabled
	}
	if req.Description != nil {
		e.Description = *req.Description
	}
}

// detail names what an update changes, for the audit trail (not the URL,
// which may hold a receiver's credential: its host only).
func (req *UpdateRequest) detail() string {
	var parts []string
	if req.URL != nil {
		parts = append(parts, "host="+hostOf(*req.URL))
	}
	if req.Types != nil {
		parts = append(parts, "types="+strings.Join(*req.Types, ","))
	}
	if req.Enabled != nil {
		parts = append(parts, fmt.Sprintf("enabled=%t", *req.Enabled))
	}
	if req.Description != nil {
		parts = append(parts, "description")
	}
	return strings.Join(parts, " ")
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c *call) {
	e, ok := h.endpoint(w, r, c)
	if !ok {
		return
	}
	if err := h.opts.Endpoints.Delete(r.Context(), e.ID); err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	h.done(r, c, e, "")
	writeJSON(w, http.StatusOK, EndpointResponse{Success: true, Endpoint: View(e, h.opts.Now()),
		Message: "Webhook endpoint deleted: its queued messages are canceled."})
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, c *call) {
	var req RotateRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	grace := h.opts.RotationGrace
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 || d > MaxRotationGrace {
			problem := fmt.Sprintf("grace: %q is not a duration from 0s to %s, such as 24h", truncate(req.Grace), MaxRotationGrace)
			writeError(w, http.StatusBadRequest, "invalid_request", "The rotation is invalid: "+problem+".", problem)
			return
		}
		grace = d
	}
	if _, ok := h.endpoint(w, r, c); !ok {
		return
	}
	now := h.opts.Now()
	var secret string
	e, err := h.opts.Endpoints.Update(r.Context(), r.PathValue("id"), func(e *webhook.Endpoint) error {
		var err error
		secret, err = e.RotateSecret(now, grace)
		return err
	})
	if errors.Is(err, webhook.ErrURLRefused) {
		writeURLRefused(w, err)
		return
	}
	if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	h.done(r, c, e, "grace="+grace.String())
	v := View(e, now)
	v.Secret = secret
	msg := "Secret rotated. Copy it now: it cannot be retrieved again. The old secret stops signing at once."
	if grace > 0 {
		msg = fmt.Sprintf("Secret rotated. Copy it now: it cannot be retrieved again. "+
			"Until %s messages carry a signature by each secret.", e.PreviousUntil.Format(time.RFC3339))
	}
	writeJSON(w, http.StatusOK, EndpointResponse{Success: true, Endpoint: v, Message: msg})
}

// check validates e and applies the URL policy to it, returning the
// problems found.
func (h *Handler) check(ctx context.Context, e *webhook.Endpoint) []string {
	if err := e.Validate(); err != nil {
		return strings.Split(err.Error(), "\n")
	}
	return h.checkURL(ctx, e.URL, e.Operator())
}

// checkURL applies the URL policy: https for projects' endpoints (unless
// AllowHTTP), and no host that is or resolves to a non-public address
// unless allowed. It returns the problems found.
func (h *Handler) checkURL(ctx context.Context, raw string, operator bool) []string {
	if err := webhook.ValidateURL(raw); err != nil {
		return []string{err.Error()}
	}
	u, _ := url.Parse(raw) // ValidateURL parsed it
	if !operator && u.Scheme != "https" && !h.opts.AllowHTTP {
		return []string{"url: must be https"}
	}
	if operator && h.opts.AllowPrivateOperator || !operator && h.opts.AllowPrivateProject {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return []string{"url: must not name a loopback host"}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !webhook.Public(a) {
			return []string{fmt.Sprintf("url: %s is not a public address: webhooks go to the internet only", a)}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	// A name that does not resolve now is accepted: the dispatcher checks
	// every address it dials. What a name resolves to is not told: the
	// gateway's resolver knows its own network's names.
	addrs, _ := h.opts.Resolver.LookupNetIP(ctx, "ip", host)
	for _, a := range addrs {
		if !webhook.Public(a) {
			return []string{"url: the host is not at a public address: webhooks go to the internet only"}
		}
	}
	return nil
}

// hostOf is the host of a URL, for logs and the audit trail.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Hostname()
}
