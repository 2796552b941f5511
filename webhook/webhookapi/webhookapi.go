// Package webhookapi is tswgate's webhook management HTTP API: create an
// endpoint (its signing secret is returned once), list, show, update
// (url, event types, enabled), delete, rotate its secret (the old one keeps
// signing beside the new for a grace period), list and show its
// deliveries, replay one, and send a webhook.test message.
//
// On the admin listener it serves the operator's endpoints under
// /v1/webhooks (admin keys only) and a project's under
// /v1/projects/{project}/webhooks (admin keys, or an Owner token of that
// project); on the public listener, under /tswgate/v1/webhooks, an Owner
// token manages its own project's endpoints. Requests are admitted as the
// token API admits its own (tokenapi.Authorizer). Every change is recorded
// in the project's audit trail (webhook.create, webhook.update,
// webhook.delete, webhook.rotate, webhook.replay, webhook.test).
package webhookapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/webhook"
)

// Registry is the part of a webhook registry the API uses;
// *webhook.RedisRegistry and *webhook.FileRegistry are ones.
type Registry interface {
	Get(ctx context.Context, id string) (*webhook.Endpoint, error)
	List(ctx context.Context, projectID int64) ([]*webhook.Endpoint, error)
	Delete(ctx context.Context, id string) error
	// Add stores a new endpoint unless its project has max already
	// (webhook.ErrEndpointLimit).
	Add(ctx context.Context, e *webhook.Endpoint, max int) error
	// Update changes an endpoint by compare-and-set.
	Update(ctx context.Context, id string, fn func(*webhook.Endpoint) error) (*webhook.Endpoint, error)
}

// Queue is the part of a webhook queue the API uses; every webhook.Queue
// is one.
type Queue interface {
	Enqueue(ctx context.Context, ds ...*webhook.Delivery) error
	Get(ctx context.Context, id string) (*webhook.Delivery, error)
	List(ctx context.Context, endpointID string, limit int) ([]*webhook.Delivery, error)
	Replay(ctx context.Context, id string) (*webhook.Delivery, error)
	// Stats says where an endpoint's queue stands.
	Stats(ctx context.Context, endpointID string) (webhook.QueueStats, error)
}

// Authorizer admits requests; *tokenapi.Authorizer is one.
type Authorizer interface {
	// Authorize admits r for action, whose endpoint reads the query
	// parameters params (any other is refused), or answers it and returns
	// false.
	Authorize(w http.ResponseWriter, r *http.Request, action string, params ...string) (*tokenapi.Principal, bool)
	// Refused records a refused attempt in project's audit trail.
	Refused(r *http.Request, action string, p *tokenapi.Principal, project int64, reason, target, detail string)
}

// AuditAppender records audit events; the token store is one.
type AuditAppender interface {
	AppendAudit(ctx context.Context, ev *auth.AuditEvent) error
}

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Defaults of Options.
const (
	DefaultMaxEndpoints = 20
	// MaxRotationGrace bounds the grace period of a rotation.
	MaxRotationGrace = 7 * 24 * time.Hour
	// MaxPageSize bounds a page of deliveries.
	MaxPageSize = 200
	// resolveTimeout bounds the look-up of an endpoint's host.
	resolveTimeout = 2 * time.Second
)

// Options configure the API. Endpoints, Queue and Auth are required.
type Options struct {
	Endpoints Registry
	Queue     Queue
	Auth      Authorizer
	// Audit records every change; nil: changes are logged only.
	Audit AuditAppender
	// Prefix is where the API is mounted: "" on the admin listener
	// (/v1/webhooks, /v1/projects/{project}/webhooks), "/tswgate" on the
	// public one (/tswgate/v1/webhooks, the calling token's project).
	Prefix string
	// MaxEndpoints bounds a project's endpoints (409 endpoint_limit);
	// DefaultMaxEndpoints when zero.
	MaxEndpoints int
	// AllowHTTP lets projects' endpoints use http:// URLs; without it
	// they must use https. The operator's may always use http.
	AllowHTTP bool
	// AllowPrivateOperator lets the operator's endpoints name loopback,
	// private and other non-public addresses (the dispatcher's operator
	// client must allow them too).
	AllowPrivateOperator bool
	// AllowPrivateProject lets projects' endpoints name non-public
	// addresses: for tests and closed networks only, never on a gateway
	// that customers reach.
	AllowPrivateProject bool
	// RotationGrace is how long a rotated secret keeps signing when the
	// request names no grace; webhook.DefaultRotationGrace when zero.
	RotationGrace time.Duration
	// Resolver looks up endpoint hosts to refuse non-public ones at
	// creation (the dispatcher checks again at every delivery);
	// net.DefaultResolver when nil.
	Resolver Resolver
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives a line per change and per failure; nil discards.
	Logger *slog.Logger
}

// Handler serves the API. Or serves it in front of another handler.
type Handler struct {
	opts  Options
	tests testLimiter
	// alone serves the API with 404 not_found off its paths.
	alone http.Handler
}

// New returns the API's handler.
func New(opts Options) (*Handler, error) {
	if opts.Endpoints == nil || opts.Queue == nil || opts.Auth == nil {
		return nil, errors.New("webhookapi: Options.Endpoints, Queue and Auth are required")
	}
	if opts.Prefix != "" && opts.Prefix[0] != '/' {
		return nil, errors.New("webhookapi: Options.Prefix must start with /")
	}
	if opts.MaxEndpoints <= 0 {
		opts.MaxEndpoints = DefaultMaxEndpoints
	}
	if opts.RotationGrace <= 0 {
		opts.RotationGrace = webhook.DefaultRotationGrace
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts}
	h.alone = h.Or(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No such endpoint: see docs/webhooks.md.")
	}))
	return h, nil
}

// ServeHTTP serves the API, answering 404 not_found off its paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.alone.ServeHTTP(w, r) }

// Or returns a handler that serves the API's paths and passes every other
// request to next.
func (h *Handler) Or(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	if h.opts.Prefix == "" {
		h.routes(mux, "/v1/webhooks", scopeOperator)
		h.routes(mux, "/v1/projects/{project}/webhooks", scopeProject)
	} else {
		h.routes(mux, h.opts.Prefix+"/v1/webhooks", scopeSelf)
	}
	mux.Handle("/", next)
	return mux
}

func (h *Handler) routes(mux *http.ServeMux, base string, s scope) {
	mux.HandleFunc("POST "+base, h.scoped("webhook.create", s, h.create))
	mux.HandleFunc("GET "+base, h.scoped("webhook.list", s, h.list))
	mux.HandleFunc("GET "+base+"/{id}", h.scoped("webhook.show", s, h.show))
	mux.HandleFunc("PATCH "+base+"/{id}", h.scoped("webhook.update", s, h.update))
	mux.HandleFunc("DELETE "+base+"/{id}", h.scoped("webhook.delete", s, h.delete))
	mux.HandleFunc("POST "+base+"/{id}/rotate-secret", h.scoped("webhook.rotate", s, h.rotate))
	mux.HandleFunc("POST "+base+"/{id}/test", h.scoped("webhook.test", s, h.test))
	mux.HandleFunc("GET "+base+"/{id}/deliveries", h.scoped("webhook.deliveries", s, h.deliveries, "limit"))
	mux.HandleFunc("GET "+base+"/{id}/deliveries/{delivery}", h.scoped("webhook.delivery", s, h.delivery))
	mux.HandleFunc("POST "+base+"/{id}/deliveries/{delivery}/replay", h.scoped("webhook.replay", s, h.replay))
	// Another method on these paths is answered 405, naming the ones
	// they serve (not 404: the path exists).
	for path, allow := range map[string]string{
		base: "GET, HEAD, POST", base + "/{id}": "GET, HEAD, PATCH, DELETE",
		base + "/{id}/rotate-secret": "POST", base + "/{id}/test": "POST",
		base + "/{id}/deliveries": "GET, HEAD", base + "/{id}/deliveries/{delivery}": "GET, HEAD",
		base + "/{id}/deliveries/{delivery}/replay": "POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if _, ok := h.opts.Auth.Authorize(w, r, ""); ok {
				tokenapi.MethodNotAllowed(w, r, allow)
			}
		})
	}
}
