package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// FileRegistry is the embedded Registry: endpoints in memory, saved to a
// JSON file (written to a temporary file and renamed) after every change
// when it has a path.
type FileRegistry struct {
	path string
	mu   sync.RWMutex
	byID map[string]*Endpoint
}

var _ Registry = (*FileRegistry)(nil)

// OpenFileRegistry loads the registry saved at path, or starts an empty
// one when there is no file. An empty path keeps the endpoints in memory
// only.
func OpenFileRegistry(path string) (*FileRegistry, error) {
	r := &FileRegistry{path: path, byID: map[string]*Endpoint{}}
	if path == "" {
		return r, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: reading endpoints: %w", err)
	}
	var es []*Endpoint
	if err := json.Unmarshal(data, &es); err != nil {
		return nil, fmt.Errorf("webhook: endpoints file %s: %w", path, err)
	}
	for _, e := range es {
		r.byID[e.ID] = e
	}
	return r, nil
}

// Put stores e and saves the registry.
func (r *FileRegistry) Put(_ context.Context, e *Endpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[e.ID]
	if err := checkPut(old, e); err != nil {
		return err
	}
	c := *e
	r.byID[e.ID] = &c
	if err := r.save(); err != nil {
		if old != nil {
			r.byID[e.ID] = old
		} else {
			delete(r.byID, e.ID)
		}
		return err
	}
	return nil
}

// Get returns a copy of the endpoint of id.
func (r *FileRegistry) Get(_ context.Context, id string) (*Endpoint, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byID[id]
	if !ok {
		return nil, notFound("endpoint", id)
	}
	c := *e
	return &c, nil
}

// List returns copies of a project's endpoints, oldest first.
func (r *FileRegistry) List(_ context.Context, projectID int64) ([]*Endpoint, error) {
	return r.filter(func(e *Endpoint) bool { return e.ProjectID == projectID }), nil
}

// Match returns copies of the project's and the operator's endpoints that
// want typ.
func (r *FileRegistry) Match(_ context.Context, projectID int64, typ string) ([]*Endpoint, error) {
	return r.filter(func(e *Endpoint) bool {
		return (e.ProjectID == projectID || e.Operator()) && e.Wants(typ)
	}), nil
}

func (r *FileRegistry) filter(keep func(*Endpoint) bool) []*Endpoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []*Endpoint{}
	for _, e := range r.byID {
		if keep(e) {
			c := *e
			out = append(out, &c)
		}
	}
	sortEndpoints(out)
	return out
}

// Delete removes the endpoint of id and saves the registry.
func (r *FileRegistry) Delete(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.byID[id]
	if !ok {
		return notFound("endpoint", id)
	}
	delete(r.byID, id)
	if err := r.save(); err != nil {
		r.byID[id] = old
		return err
	}
	return nil
}

// save writes every endpoint to the file; r.mu is held.
func (r *FileRegistry) save() error {
	if r.path == "" {
		return nil
	}
	es := make([]*Endpoint, 0, len(r.byID))
	for _, e := range r.byID {
		es = append(es, e)
	}
	sortEndpoints(es)
	data, err := json.MarshalIndent(es, "", "  ")
	if err != nil {
		return fmt.Errorf("webhook: encoding endpoints: %w", err)
	}
	return writeFileAtomic(r.path, data)
}

// writeFileAtomic replaces path with data (mode 0600: it holds secrets),
// through a synced temporary file renamed over it.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("webhook: saving %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("webhook: saving %s: %w", path, err)
	}
	return nil
}
