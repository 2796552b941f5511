package webhookapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tswgate/tswgate/webhook"
)

// Delivery is a delivery as the API shows it: one event's message to one
// endpoint, and where it stands.
type Delivery struct {
	ID         string        `json:"id"`
	EventID    string        `json:"event_id"`
	EventType  string        `json:"event_type"`
	EndpointID string        `json:"endpoint_id"`
	State      webhook.State `json:"state"`
	Attempts   int           `json:"attempts"`
	CreatedAt  time.Time     `json:"created_at"`
	// NextAttempt is when the next attempt is due (state retrying).
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// LastStatus and LastError are those of the latest attempt.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// Recent are the latest attempts, oldest first (shown singly only).
	Recent []Attempt `json:"recent,omitempty"`
	// Payload is the message's body (shown singly only).
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Attempt is one try of a delivery as the API shows it: without the
// replica that made it, whose host name is the gateway's own.
type Attempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	// Status is the endpoint's HTTP status (0 when none came).
	Status int `json:"status,omitempty"`
	// Error says why the attempt failed, when it did.
	Error string `json:"error,omitempty"`
}

// DeliveryView converts a delivery for display; full adds its attempts
// and payload.
func DeliveryView(d *webhook.Delivery, full bool) Delivery {
	v := Delivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, EndpointID: d.EndpointID,
		State: d.State, Attempts: d.Attempts, CreatedAt: d.CreatedAt,
	}
	if !d.NextAttempt.IsZero() && d.State == webhook.StateRetrying {
		n := d.NextAttempt
		v.NextAttempt = &n
	}
	if n := len(d.Recent); n > 0 {
		v.LastStatus, v.LastError = d.Recent[n-1].Status, d.Recent[n-1].Error
	}
	if full {
		v.Payload = d.Payload
		for _, a := range d.Recent {
			v.Recent = append(v.Recent, Attempt{At: a.At, Duration: a.Duration, Status: a.Status, Error: a.Error})
		}
	}
	return v
}

type (
	// DeliveryResponse answers show, replay and test.
	DeliveryResponse struct {
		Success  bool     `json:"success"`
		Message  string   `json:"message"`
		Delivery Delivery `json:"delivery"`
	}
	// DeliveriesResponse answers a list: the endpoint's latest
	// deliveries, newest first.
	DeliveriesResponse struct {
		Success    bool       `json:"success"`
		Message    string     `json:"message"`
		EndpointID string     `json:"endpoint_id"`
		Deliveries []Delivery `json:"deliveries"`
	}
)

func (h *Handler) deliveries(w http.ResponseWriter, r *http.Request, c *call) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		// One spelling per value: "+5" and "05" are refused, as in the token API.
		if err != nil || n < 1 || n > MaxPageSize || strconv.Itoa(n) != s {
			problem := fmt.Sprintf("limit: %q is not a whole number from 1 to %d", truncate(s), MaxPageSize)
			writeError(w, http.StatusBadRequest, "invalid_request", "The query is invalid: "+problem+".", problem)
			return
		}
		limit = n
	}
	e, ok := h.endpoint(w, r, c)
	if !ok {
		return
	}
	ds, err := h.opts.Queue.List(r.Context(), e.ID, limit)
	if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	out := make([]Delivery, len(ds))
	for i, d := range ds {
		out[i] = DeliveryView(d, false)
	}
	writeJSON(w, http.StatusOK, DeliveriesResponse{Success: true, EndpointID: e.ID, Deliveries: out})
}

// ownDelivery returns the delivery of the path if it is one of the
// path's endpoint, which must be c's.
func (h *Handler) ownDelivery(w http.ResponseWriter, r *http.Request, c *call) (*webhook.Endpoint, *webhook.Delivery, bool) {
	e, ok := h.endpoint(w, r, c)
	if !ok {
		return nil, nil, false
	}
	id := r.PathValue("delivery")
	var d *webhook.Delivery
	err := webhook.ErrNotFound
	if validID(id, "dlv_") {
		d, err = h.opts.Queue.Get(r.Context(), id)
	}
	if err == nil && d.EndpointID != e.ID {
		err = webhook.ErrNotFound
	}
	if err != nil {
		h.fail(w, r, c, err, "delivery_not_found", "The endpoint has no delivery of that id (deliveries are kept 7 days).")
		return nil, nil, false
	}
	return e, d, true
}

func (h *Handler) delivery(w http.ResponseWriter, r *http.Request, c *call) {
	if _, d, ok := h.ownDelivery(w, r, c); ok {
		writeJSON(w, http.StatusOK, DeliveryResponse{Success: true, Delivery: DeliveryView(d, true)})
	}
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request, c *call) {
	if !decodeBody(w, r, &struct{}{}, true) { // it takes none: {} at most
		return
	}
	e, d, ok := h.ownDelivery(w, r, c)
	if !ok {
		return
	}
	d, err := h.opts.Queue.Replay(r.Context(), d.ID)
	if errors.Is(err, webhook.ErrInFlight) {
		writeError(w, http.StatusConflict, "delivery_in_flight", "The delivery is queued already: it is attempted now.")
		return
	}
	if errors.Is(err, webhook.ErrQueueFull) {
		writeFull(w, err, "the delivery is not queued again (0 queued, 1 refused); replay it")
		return
	}
	if err != nil {
		h.fail(w, r, c, err, "delivery_not_found", "The endpoint has no delivery of that id (deliveries are kept 7 days).")
		return
	}
	h.done(r, c, e, "delivery "+d.ID)
	writeJSON(w, http.StatusAccepted, DeliveryResponse{Success: true, Delivery: DeliveryView(d, false),
		Message: "Delivery queued again, with the same webhook-id: it is attempted now."})
}

func (h *Handler) test(w http.ResponseWriter, r *http.Request, c *call) {
	if !decodeBody(w, r, &struct{}{}, true) { // it takes none: {} at most
		return
	}
	e, ok := h.endpoint(w, r, c)
	if !ok {
		return
	}
	if wait, ok := h.tests.allow(e.ID, h.opts.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		h.refuse(w, r, c, c.project, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf(
			"This endpoint was sent %d test messages lately: send the next after the time in Retry-After.", testBurst))
		return
	}
	d, err := webhook.NewTestDelivery(e, h.opts.Now())
	if err == nil {
		err = h.opts.Queue.Enqueue(r.Context(), d)
	}
	if errors.Is(err, webhook.ErrQueueFull) {
		writeFull(w, err, "no message is queued for it; send one")
		return
	}
	if err != nil {
		h.fail(w, r, c, err, "endpoint_not_found", "No webhook endpoint has that id.")
		return
	}
	h.done(r, c, e, "delivery "+d.ID)
	msg := "A webhook.test message is queued: follow it in the endpoint's deliveries."
	if e.Disabled {
		msg = "A webhook.test message is queued, but the endpoint is disabled: it will be canceled."
	}
	writeJSON(w, http.StatusAccepted, DeliveryResponse{Success: true, Delivery: DeliveryView(d, false), Message: msg})
}

// writeFull answers 409 to a message not queued because its endpoint's
// queue, or its project's share of it, is full (err, which may say how
// full); what says what was not done.
func writeFull(w http.ResponseWriter, err error, what string) {
	var fe *webhook.FullError
	if errors.Is(err, webhook.ErrProjectQueueFull) {
		have := "its share of the endpoint's undelivered messages"
		if errors.As(err, &fe) {
			have = fmt.Sprintf("%d undelivered messages to this endpoint, its share (%d)", fe.Pending, fe.Max)
		}
		writeError(w, http.StatusConflict, "project_queue_full", "This project has "+have+
			" (the endpoint receives every project's events): "+what+" when some are delivered or dead "+
			"(see its queue in GET of the endpoint).")
		return
	}
	have := "the most undelivered messages allowed"
	if errors.As(err, &fe) {
		have = fmt.Sprintf("%d undelivered messages, the most allowed (%d)", fe.Pending, fe.Max)
	}
	writeError(w, http.StatusConflict, "queue_full", "This endpoint has "+have+": "+
		what+" when some are delivered or dead (see its queue in GET of the endpoint).")
}
