package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound means no endpoint or delivery has the id.
var ErrNotFound = errors.New("webhook: not found")

// Endpoint is where events are sent: a project's, or the operator's.
type Endpoint struct {
	// ID is "ep_" and 20 letters and digits (NewEndpoint makes one).
	ID string `json:"id"`
	// ProjectID is the project whose events the endpoint receives; 0
	// makes it the operator's, receiving every project's events.
	ProjectID int64 `json:"project_id"`
	// URL receives a POST per message: absolute http or https, no
	// credentials in it.
	URL string `json:"url"`
	// Secret signs the messages ("whsec_…"). It is never logged.
	Secret string `json:"secret"`
	// Types filters the events sent; empty means every type.
	Types []string `json:"types,omitempty"`
	// Disabled endpoints are sent nothing; deliveries queued for them are
	// canceled when their turn comes.
	Disabled    bool      `json:"disabled,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// UpdatedAt is the time of the latest change (zero: none since
	// creation).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// PreviousSecret is the secret before the latest rotation: messages
	// are signed with it too, beside Secret, until PreviousUntil, so that
	// receivers can switch without losing a message. Never logged.
	PreviousSecret string    `json:"previous_secret,omitempty"`
	PreviousUntil  time.Time `json:"previous_until,omitzero"`
}

// NewEndpoint returns an endpoint with a fresh id and secret, created at
// now.
func NewEndpoint(projectID int64, rawURL string, types []string, now time.Time) (*Endpoint, error) {
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{ID: "ep_" + randomID(20), ProjectID: projectID, URL: rawURL, Secret: secret,
		Types: types, CreatedAt: now.UTC()}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Operator reports whether e is the operator's (every project's events).
func (e *Endpoint) Operator() bool { return e.ProjectID == 0 }

// Wants reports whether e is enabled and its filter takes events of typ.
func (e *Endpoint) Wants(typ string) bool {
	return !e.Disabled && (len(e.Types) == 0 || slices.Contains(e.Types, typ))
}

// Validate checks that e can be stored and used.
func (e *Endpoint) Validate() error { return e.validate(true) }

// validate checks e; withURL false skips its URL.
func (e *Endpoint) validate(withURL bool) error {
	var errs []error
	if len(e.ID) < 4 || e.ID[:3] != "ep_" || len(e.ID) > 64 {
		errs = append(errs, errors.New("id: not an endpoint id (ep_…)"))
	}
	if e.ProjectID < 0 {
		errs = append(errs, errors.New("project id: must be 0 (operator) or a project"))
	}
	if err := validURL(e.URL); withURL && err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseSecret(e.Secret); err != nil {
		errs = append(errs, errors.New("secret: not a whsec_ secret of 24 to 64 bytes"))
	}
	if _, err := ParseSecret(e.PreviousSecret); e.PreviousSecret != "" && err != nil {
		errs = append(errs, errors.New("previous secret: not a whsec_ secret of 24 to 64 bytes"))
	}
	if len(e.Description) > MaxDescriptionLen {
		errs = append(errs, fmt.Errorf("description: at most %d bytes", MaxDescriptionLen))
	}
	for _, t := range e.Types {
		if !slices.Contains(Types(), t) {
			errs = append(errs, fmt.Errorf("types: unknown event type %q", t))
		}
	}
	return errors.Join(errs...)
}

func validURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return errors.New("url: not a URL of at most 2048 bytes")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("url: must be http or https")
	case u.Host == "" || u.Opaque != "":
		return errors.New("url: must be absolute, with a host")
	case u.User != nil:
		return errors.New("url: must not hold credentials")
	case u.Fragment != "":
		return errors.New("url: must not have a fragment")
	}
	return validHost(rawAuthority(raw))
}

// rawAuthority is the authority of an absolute URL as written, before
// url.Parse decodes it.
func rawAuthority(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// LogValue keeps the secret and the URL (which may hold a receiver's
// credential in its query) out of logs.
func (e *Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", e.ID), slog.Int64("project_id", e.ProjectID))
}

// Registry keeps the endpoints. Implementations are safe for concurrent
// use.
type Registry interface {
	// Put stores e, new or replacing the endpoint of its id (whose
	// project must not change).
	Put(ctx context.Context, e *Endpoint) error
	// Get returns the endpoint of id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Endpoint, error)
	// List returns a project's endpoints (0: the operator's), oldest
	// first.
	List(ctx context.Context, projectID int64) ([]*Endpoint, error)
	// Delete removes the endpoint of id; an unknown id is ErrNotFound.
	Delete(ctx context.Context, id string) error
	// Match returns the endpoints that want an event of typ in project:
	// the project's and the operator's.
	Match(ctx context.Context, projectID int64, typ string) ([]*Endpoint, error)
}

// sortEndpoints orders endpoints oldest first, then by id.
func sortEndpoints(es []*Endpoint) {
	slices.SortFunc(es, func(a, b *Endpoint) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
}

func projectKey(p int64) string { return strconv.FormatInt(p, 10) }

func notFound(what, id string) error { return fmt.Errorf("webhook: %s %q: %w", what, id, ErrNotFound) }

func checkPut(old, e *Endpoint) error {
	if old != nil && old.ProjectID != e.ProjectID {
		return fmt.Errorf("webhook: endpoint %s: project cannot change (from %d to %d)", e.ID, old.ProjectID, e.ProjectID)
	}
	if err := CheckUpdate(old, e); err != nil {
		return fmt.Errorf("webhook: endpoint %s: %w", e.ID, err)
	}
	return nil
}

// URLRefusedError is the error of an update refused because it would
// keep an endpoint enabled on a URL the rules now refuse. It wraps
// ErrURLRefused.
type URLRefusedError struct {
	// Problem is what the rules find wrong with the URL ("url: …").
	Problem error
}

func (e *URLRefusedError) Error() string {
	return ErrURLRefused.Error() + " (" + e.Problem.Error() + ")"
}

// Unwrap makes errors.Is(err, ErrURLRefused) hold.
func (e *URLRefusedError) Unwrap() error { return ErrURLRefused }

// CheckUpdate checks e, the endpoint old (nil: none) is to become. An
// endpoint stored with a URL the rules now refuse (saved by an earlier
// version) keeps it only while disabled: it can be disabled, changed
// while disabled, or given a valid URL; an update that leaves it enabled
// on that URL is refused with a *URLRefusedError.
func CheckUpdate(old, e *Endpoint) error {
	keep := old != nil && e.URL == old.URL
	if !keep {
		return e.Validate()
	}
	urlErr := validURL(e.URL)
	if urlErr == nil {
		return e.Validate()
	}
	if !e.Disabled {
		return &URLRefusedError{Problem: urlErr}
	}
	return e.validate(false)
}
