package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// policyVersion is the version of the policies file this package reads
// and writes.
const policyVersion = 1

// policies holds the project policies, persisted next to the store file
// (tokens.json → tokens.policies.json) as
//
//	{"version": 1, "projects": {"42": {"max_lifetime": "2160h0m0s",
//	  "require_expiry": true, "rate": 50, "burst": 100,
//	  "updated": 1700000000000}}}
//
// with every field but "updated" absent when zero. The file is rewritten
// atomically on every change.
type policies struct {
	mu     sync.Mutex
	path   string
	byProj map[int64]auth.ProjectPolicy
}

type policyDoc struct {
	Version  int                     `json:"version"`
	Projects map[string]policyRecord `json:"projects"`
}

type policyRecord struct {
	MaxLifetime   string  `json:"max_lifetime,omitempty"`
	RequireExpiry bool    `json:"require_expiry,omitempty"`
	Rate          float64 `json:"rate,omitempty"`
	Burst         int     `json:"burst,omitempty"`
	Updated       int64   `json:"updated"`
}

// openPolicies loads the policies file; a missing file is no policies.
func (s *Store) openPolicies() error {
	s.pol = &policies{path: sidePath(s.path, ".policies.json"), byProj: make(map[int64]auth.ProjectPolicy)}
	data, err := os.ReadFile(s.pol.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("filestore: reading %s: %w", s.pol.path, err)
	}
	var doc policyDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("filestore: %s is not a policies file: %w", s.pol.path, err)
	}
	if doc.Version != policyVersion {
		return fmt.Errorf("filestore: %s has version %d; this tswgate reads version %d", s.pol.path, doc.Version, policyVersion)
	}
	for key, rec := range doc.Projects {
		id, err := strconv.ParseInt(key, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("filestore: %s: %q is not a project id", s.pol.path, key)
		}
		p := auth.ProjectPolicy{RequireExpiry: rec.RequireExpiry, RateLimit: rec.Rate, Burst: rec.Burst, UpdatedAt: time.UnixMilli(rec.Updated).UTC()}
		if rec.MaxLifetime != "" {
			if p.MaxLifetime, err = time.ParseDuration(rec.MaxLifetime); err != nil {
				return fmt.Errorf("filestore: %s: project %d: max_lifetime: %w", s.pol.path, id, err)
			}
		}
		s.pol.byProj[id] = p
	}
	return nil
}

// ProjectPolicy returns the policy of a project; the zero policy when none
// is set.
func (s *Store) ProjectPolicy(_ context.Context, projectID int64) (auth.ProjectPolicy, error) {
	if s.isClosed() {
		return auth.ProjectPolicy{}, ErrClosed
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	return s.pol.byProj[projectID], nil
}

// ProjectPolicies returns every project's policy.
func (s *Store) ProjectPolicies(_ context.Context) (map[int64]auth.ProjectPolicy, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	return maps.Clone(s.pol.byProj), nil
}

// SetProjectPolicy stores (or, when p is zero, removes) the policy of a
// project and rewrites the policies file; a change that cannot be written
// is not made.
func (s *Store) SetProjectPolicy(_ context.Context, projectID int64, p auth.ProjectPolicy) error {
	if s.isClosed() {
		return ErrClosed
	}
	if projectID <= 0 {
		return errors.New("filestore: project id: must be a positive integer")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("filestore: invalid policy: %w", err)
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	next := maps.Clone(s.pol.byProj)
	if p.IsZero() {
		delete(next, projectID)
	} else {
		p.UpdatedAt = p.UpdatedAt.UTC().Truncate(time.Millisecond)
		next[projectID] = p
	}
	doc := policyDoc{Version: policyVersion, Projects: make(map[string]policyRecord, len(next))}
	for id, q := range next {
		rec := policyRecord{RequireExpiry: q.RequireExpiry, Rate: q.RateLimit, Burst: q.Burst, Updated: q.UpdatedAt.UnixMilli()}
		if q.MaxLifetime > 0 {
			rec.MaxLifetime = q.MaxLifetime.String()
		}
		doc.Projects[strconv.FormatInt(id, 10)] = rec
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("filestore: encoding policies: %w", err)
	}
	if renamed, err := writeAtomic(s.pol.path, append(data, '\n')); err != nil && !renamed {
		return fmt.Errorf("filestore: saving %s: %w: %w", s.pol.path, auth.ErrUnavailable, err)
	}
	s.pol.byProj = next
	s.mu.Lock()
	s.announce(auth.Event{Kind: auth.EventPolicyChanged, Project: projectID, At: s.now()})
	s.mu.Unlock()
	return nil
}
