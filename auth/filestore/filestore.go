// Package filestore is the embedded auth.Store of a single tswgate process:
// token records are held in memory and persisted to one JSON file, which
// every change rewrites atomically.
//
// The file is a versioned document,
//
//	{"version": 1, "tokens": [{"id": "tsw_…", "project": 42, "name": "…",
//	  "role": "owner", "status": "active", "created": 1700000000000,
//	  "expires": 1800000000000, "hash": "<64 hex>", "pepper": "…"}, …]}
//
// with times in Unix milliseconds and the fields named as in the Redis
// store; "expires" is absent when the token never expires, "rate" and
// "burst" (a per-token rate-limit override) when zero, "rotated_to" (the
// successor of a token rotated with a grace period) when it was not,
// "scopes" (permission names) and "allowed_ips" (CIDR ranges) when the
// token has none, and
// tombstones have "revoked" and no "hash" or "pepper". Records written
// before a field existed load without it. The file is written with mode
// 0600.
//
// Only one process may use a file: Open takes an exclusive lock on
// Path+".lock" and holds it until Close.
package filestore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// DefaultRevokedRetention is how long tombstones are kept when
// Options.RevokedRetention is zero.
const DefaultRevokedRetention = 30 * 24 * time.Hour

// fileVersion is the version of the file format this package reads and
// writes.
const fileVersion = 1

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("filestore: store closed")

// Options configure a Store. Only Path is required.
type Options struct {
	// Path is the JSON file. Its directory is created (mode 0700) if
	// missing; a missing file is an empty store.
	Path string
	// RevokedRetention is how long a tombstone is kept after revocation;
	// DefaultRevokedRetention when zero.
	RevokedRetention time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Logger receives the store's operational messages; nil discards them.
	Logger *slog.Logger
	// AuditMaxEvents is when the audit trail file is rotated (see
	// activity.go); DefaultAuditMaxEvents when zero.
	AuditMaxEvents int
	// WarnBefore is how long before its expiry a token is returned by
	// ClaimExpiring; DefaultWarnBefore when zero.
	WarnBefore time.Duration
}

// DefaultWarnBefore is the default Options.WarnBefore: seven days, as
// webhook.ExpiringWithin.
const DefaultWarnBefore = 7 * 24 * time.Hour

// Store is an auth.Store in a local file. It is safe for concurrent use.
// Its memory always mirrors the file: a change that cannot be written is
// not made.
type Store struct {
	path      string
	retention time.Duration
	// warnBefore is Options.WarnBefore.
	warnBefore time.Duration
	now        func() time.Time
	log        *slog.Logger
	lock       *os.File // holds the flock on path+".lock"
	// watchBuffer is the capacity of each watcher's event buffer.
	watchBuffer int

	// wmu serializes changes and is held across the file write; mu guards
	// the fields below and is held only briefly, so readers never wait for
	// the disk. Changes take wmu, then mu to apply; while holding wmu, a
	// writer may read the maps without mu, as only writers modify them.
	wmu       sync.Mutex
	mu        sync.RWMutex
	closed    bool
	done      chan struct{}                    // closed by Close
	byID      map[string]*auth.Token           // records and tombstones
	byProject map[int64]map[string]*auth.Token // live records
	watchers  map[*watcher]struct{}
	// act holds usage, expiry claims and the audit trail (activity.go).
	act *activity
	// pol holds the project policies (policy.go).
	pol *policies
}

var _ auth.Store = (*Store)(nil)

// Open loads the store at opts.Path and locks it against other processes.
// A file that cannot be read as a store is an error naming it; it is never
// replaced.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("filestore: Options.Path is empty")
	}
	s := &Store{
		path:       filepath.Clean(opts.Path),
		retention:  opts.RevokedRetention,
		warnBefore: opts.WarnBefore,
		now:        opts.Now,
		log:        opts.Logger,
		done:       make(chan struct{}),
		byID:       make(map[string]*auth.Token),
		byProject:  make(map[int64]map[string]*auth.Token),
		watchers:   make(map[*watcher]struct{}),

		watchBuffer: defaultWatchBuffer,
	}
	if s.retention == 0 {
		s.retention = DefaultRevokedRetention
	}
	if s.warnBefore == 0 {
		s.warnBefore = DefaultWarnBefore
	}
	if s.retention < 0 || s.warnBefore < 0 {
		return nil, errors.New("filestore: RevokedRetention and WarnBefore must not be negative")
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: creating data dir: %w", err)
	}
	if err := s.lockFile(); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		s.lock.Close()
		return nil, err
	}
	if err := s.openActivity(opts.AuditMaxEvents); err != nil {
		s.lock.Close()
		return nil, err
	}
	if err := s.openPolicies(); err != nil {
		s.closeActivity()
		s.lock.Close()
		return nil, err
	}
	s.removeTemps()
	return s, nil
}

// lockFile takes an exclusive, non-blocking flock on path+".lock".
func (s *Store) lockFile() error {
	name := s.path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("filestore: opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("filestore: %s is locked: another tswgate process is using the data dir %s; "+
				"stop it, or give this one its own data dir (TSWGATE_DATA_DIR) and its own ports", name, filepath.Dir(s.path))
		}
		return fmt.Errorf("filestore: locking %s: %w", name, err)
	}
	s.lock = f
	return nil
}

// load reads the file into memory, leaving out tombstones past retention.
func (s *Store) load() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Info("filestore: no token file yet; starting empty", "path", s.path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("filestore: reading %s: %w", s.path, err)
	}
	var doc document
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("filestore: %s is corrupt: %w", s.path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("filestore: %s is corrupt: data after the document", s.path)
	}
	if doc.Version != fileVersion {
		return fmt.Errorf("filestore: %s has version %d; this tswgate reads version %d", s.path, doc.Version, fileVersion)
	}
	now := s.now()
	purged := 0
	seen := make(map[string]bool, len(doc.Tokens))
	for i, r := range doc.Tokens {
		t, err := r.token()
		if err != nil {
			return fmt.Errorf("filestore: %s is corrupt: token %d (%q): %w", s.path, i, r.ID, err)
		}
		if seen[t.ID] {
			return fmt.Errorf("filestore: %s is corrupt: token %q appears twice", s.path, t.ID)
		}
		seen[t.ID] = true
		if s.expired(t, now) {
			purged++
			continue
		}
		s.put(t)
	}
	s.log.Info("filestore: loaded tokens", "path", s.path, "records", len(s.byID), "purged_tombstones", purged)
	return nil
}

// removeTemps deletes temporary files a crash in save may have left.
func (s *Store) removeTemps() {
	temps, _ := filepath.Glob(s.tempPattern())
	for _, name := range temps {
		if err := os.Remove(name); err != nil {
			s.log.Warn("filestore: removing a stale temporary file", "path", name, "err", err)
		}
	}
}

func (s *Store) tempPattern() string {
	return filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp-*")
}

// expired reports whether t is a tombstone past retention.
func (s *Store) expired(t *auth.Token, now time.Time) bool {
	return t.Revoked() && !now.Before(t.RevokedAt.Add(s.retention))
}

// put records t in memory, replacing any record of its id. s.mu must be
// held for writing (or the Store not yet shared).
func (s *Store) put(t *auth.Token) {
	s.byID[t.ID] = t
	live := s.byProject[t.ProjectID]
	if t.Revoked() {
		delete(live, t.ID)
		if len(live) == 0 {
			delete(s.byProject, t.ProjectID)
		}
		return
	}
	if live == nil {
		live = make(map[string]*auth.Token)
		s.byProject[t.ProjectID] = live
	}
	live[t.ID] = t
}

// remove forgets the record of id. s.mu must be held for writing.
func (s *Store) remove(id string) {
	t, ok := s.byID[id]
	if !ok {
		return
	}
	delete(s.byID, id)
	if live := s.byProject[t.ProjectID]; live != nil {
		delete(live, id)
		if len(live) == 0 {
			delete(s.byProject, t.ProjectID)
		}
	}
}

// Get returns the record of id, which may be a tombstone. The record is
// shared: treat it as read-only.
func (s *Store) Get(_ context.Context, id string) (*auth.Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	t, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("filestore: token %s: %w", id, auth.ErrNotFound)
	}
	return t, nil
}

// Create stores a copy of t, at millisecond precision, and announces it.
// It may also store a tombstone (a record with RevokedAt set), for imports.
func (s *Store) Create(_ context.Context, t *auth.Token) error {
	return s.create(t, 0)
}

// CreateWithin is Create while t's project has fewer than limit live
// tokens (see auth.ActivityStore): counted and stored under the write
// lock, which serializes every change of the store (one process alone
// uses its file).
func (s *Store) CreateWithin(_ context.Context, t *auth.Token, limit int) error {
	return s.create(t, limit)
}

// create stores t, a live one only while its project has fewer than limit
// live tokens when limit is above 0.
func (s *Store) create(t *auth.Token, limit int) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("filestore: create %s: invalid record: %s", t.ID, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	nt, err := newRecord(t).token() // the copy kept is exactly what the file holds
	if err != nil {
		return fmt.Errorf("filestore: create %s: %w", t.ID, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if _, ok := s.byID[t.ID]; ok {
		return fmt.Errorf("filestore: create %s: %w", t.ID, auth.ErrExists)
	}
	// Only writers change byProject, and wmu is held.
	if n := len(s.byProject[t.ProjectID]); limit > 0 && !t.Revoked() && n >= limit {
		return fmt.Errorf("filestore: create %s: %w", t.ID, &auth.TokenLimitError{ProjectID: t.ProjectID, Live: n, Limit: limit})
	}
	if err := s.save(nt); err != nil {
		return fmt.Errorf("filestore: create %s: %w", t.ID, err)
	}
	return nil
}

// List returns the project's live tokens, oldest first, ties broken by id,
// as an empty non-nil slice when there are none. The records are shared:
// treat them as read-only.
func (s *Store) List(_ context.Context, projectID int64) ([]*auth.Token, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	live := s.byProject[projectID]
	tokens := make([]*auth.Token, 0, len(live))
	for _, t := range live {
		tokens = append(tokens, t)
	}
	s.mu.RUnlock()
	slices.SortFunc(tokens, func(a, b *auth.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return tokens, nil
}

// CountProject returns the number of the project's live tokens.
func (s *Store) CountProject(_ context.Context, projectID int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return len(s.byProject[projectID]), nil
}

// Revoke turns the record of id into a tombstone revoked at at (now when at
// is zero) and announces the change. Revoking a tombstone returns it
// unchanged.
func (s *Store) Revoke(_ context.Context, id string, at time.Time) (*auth.Token, error) {
	if at.IsZero() {
		at = s.now()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	t, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("filestore: revoke %s: %w", id, auth.ErrNotFound)
	}
	if t.Revoked() {
		return t, nil
	}
	ts := *t
	ts.RevokedAt = time.UnixMilli(at.UnixMilli()).UTC()
	ts.SecretHash = [32]byte{}
	ts.PepperID = ""
	if err := s.save(&ts); err != nil {
		return nil, fmt.Errorf("filestore: revoke %s: %w", id, err)
	}
	return &ts, nil
}

// Update changes the live record of id (see auth.Store.Update): under the
// write lock, it calls fn on a copy, checks the result, writes the file with
// it (at millisecond precision, like Create) and announces it. fn runs
// under the lock: it must not call the store. A failed write changes
// nothing, in memory or on disk, and announces nothing.
func (s *Store) Update(_ context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	old, ok := s.byID[id] // only writers change byID, and wmu is held
	if !ok {
		return nil, fmt.Errorf("filestore: update %s: %w", id, auth.ErrNotFound)
	}
	if old.Revoked() {
		return nil, fmt.Errorf("filestore: update %s: %w", id, auth.ErrRevoked)
	}
	t := *old // records are shared: fn edits a copy
	t.AllowedIPs = slices.Clone(old.AllowedIPs)
	if err := fn(&t); err != nil {
		return nil, fmt.Errorf("filestore: update %s: %w", id, err)
	}
	if err := auth.ValidateUpdate(old, &t); err != nil {
		return nil, fmt.Errorf("filestore: update %s: invalid change: %s", id, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	nt, err := newRecord(&t).token() // the copy kept is exactly what the file holds
	if err != nil {
		return nil, fmt.Errorf("filestore: update %s: %w", id, err)
	}
	if err := s.save(nt); err != nil {
		return nil, fmt.Errorf("filestore: update %s: %w", id, err)
	}
	return nt, nil
}

// Close stops every Watch and releases the file lock. Later calls of any
// method return ErrClosed.
func (s *Store) Close() error {
	s.wmu.Lock() // let a write in progress finish while the file is ours
	defer s.wmu.Unlock()
	// Once s.mu is released: activity calls take s.mu under their own lock.
	defer s.closeActivity()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	if err := s.lock.Close(); err != nil { // closing the descriptor drops the flock
		return fmt.Errorf("filestore: releasing the lock: %w", err)
	}
	return nil
}

// isClosed reports whether Close was called.
func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// save writes the store with put added (or replacing the record of its id)
// and tombstones past retention left out, then applies the same to memory
// and announces put. On a failed write, memory is unchanged. s.wmu must be
// held.
func (s *Store) save(put *auth.Token) error {
	now := s.now()
	doc := document{Version: fileVersion, Tokens: make([]record, 0, len(s.byID)+1)}
	var purged []string
	for id, t := range s.byID {
		switch {
		case id == put.ID:
		case s.expired(t, now):
			purged = append(purged, id)
		default:
			doc.Tokens = append(doc.Tokens, newRecord(t))
		}
	}
	doc.Tokens = append(doc.Tokens, newRecord(put))
	slices.SortFunc(doc.Tokens, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding tokens: %w", err)
	}
	data = append(data, '\n')

	durable, err := writeAtomic(s.path, data)
	if err != nil && !durable {
		return fmt.Errorf("saving %s: %w: %w", s.path, auth.ErrUnavailable, err)
	}
	// The file holds the change now: memory follows it even if the
	// directory sync failed.
	s.mu.Lock()
	for _, id := range purged {
		s.remove(id)
	}
	s.put(put)
	s.notify(put.ID)
	s.mu.Unlock()
	if len(purged) > 0 {
		s.log.Info("filestore: purged expired tombstones", "count", len(purged))
	}
	if err != nil {
		return fmt.Errorf("saved %s, but it may not survive a crash: %w: %w", s.path, auth.ErrUnavailable, err)
	}
	return nil
}

// writeAtomic replaces path with data: it writes a temporary file (mode
// 0600) in the same directory, syncs it, renames it over path and syncs the
// directory. renamed reports whether path holds data, which is also the case
// when only the final directory sync fails.
func writeAtomic(path string, data []byte) (renamed bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return true, err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return true, fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return true, nil
}

// document is the file's content.
type document struct {
	Version int      `json:"version"`
	Tokens  []record `json:"tokens"`
}

// record is one token in the file. Times are Unix milliseconds; zero
// expires, revoked, rate and burst mean unset.
type record struct {
	ID      string  `json:"id"`
	Project int64   `json:"project"`
	Name    string  `json:"name"`
	Role    string  `json:"role"`
	Status  string  `json:"status"`
	Created int64   `json:"created"`
	Expires int64   `json:"expires,omitempty"`
	Revoked int64   `json:"revoked,omitempty"`
	Rate    float64 `json:"rate,omitempty"`
	Burst   int     `json:"burst,omitempty"`
	Shadow  bool    `json:"shadow,omitempty"`
	// RotatedTo is Token.RotatedTo.
	RotatedTo string `json:"rotated_to,omitempty"`
	// Replaced is Token.Replaced.
	Replaced bool `json:"replaced,omitempty"`
	// Scopes are the names of Token.Scopes, AllowedIPs the CIDR ranges of
	// Token.AllowedIPs; both absent when empty.
	Scopes     []string `json:"scopes,omitempty"`
	AllowedIPs []string `json:"allowed_ips,omitempty"`
	// Lineage is Token.Lineage; absent for a root (and in files written
	// before it existed).
	Lineage *lineage `json:"lineage,omitempty"`
	Hash    string   `json:"hash,omitempty"`
	Pepper  string   `json:"pepper,omitempty"`
}

// lineage is Token.Lineage in the file.
type lineage struct {
	Root   string  `json:"root"`
	Rate   float64 `json:"rate,omitempty"`
	Burst  int     `json:"burst,omitempty"`
	Shadow bool    `json:"shadow,omitempty"`
	// Via is Lineage.Via, root's child first; absent when empty.
	Via []lineageLink `json:"via,omitempty"`
	// Successor is Lineage.Successor.
	Successor bool `json:"successor,omitempty"`
}

// lineageLink is an auth.LineageLink in the file.
type lineageLink struct {
	ID     string  `json:"id"`
	Rate   float64 `json:"rate,omitempty"`
	Burst  int     `json:"burst,omitempty"`
	Shadow bool    `json:"shadow,omitempty"`
}

// fileLineage returns l as it is written in the file.
func fileLineage(l *auth.Lineage) *lineage {
	fl := &lineage{Root: l.Root, Rate: l.Rate, Burst: l.Burst, Shadow: l.Shadow, Successor: l.Successor}
	for i := 1; i < l.Depth(); i++ {
		a := l.Ancestor(i)
		fl.Via = append(fl.Via, lineageLink{ID: a.ID, Rate: a.Rate, Burst: a.Burst, Shadow: a.Shadow})
	}
	return fl
}

// token returns the lineage fl stands for.
func (fl *lineage) token() (auth.Lineage, error) {
	l := auth.Lineage{Root: fl.Root, Rate: fl.Rate, Burst: fl.Burst, Shadow: fl.Shadow, Successor: fl.Successor}
	if len(fl.Via) > len(l.Via) {
		return l, fmt.Errorf("lineage via: more than %d ancestors", len(l.Via))
	}
	for i, a := range fl.Via {
		l.Via[i] = auth.LineageLink{ID: a.ID, Rate: a.Rate, Burst: a.Burst, Shadow: a.Shadow}
	}
	return l, nil
}

func newRecord(t *auth.Token) record {
	r := record{
		ID:      t.ID,
		Project: t.ProjectID,
		Name:    t.Name,
		Role:    t.Role.String(),
		Status:  t.Status.String(),
		Created: t.CreatedAt.UnixMilli(),
		Rate:    t.RateLimit,
		Burst:   t.RateBurst,
		Shadow:  t.RateShadow,

		RotatedTo:  t.RotatedTo,
		Replaced:   t.Replaced,
		Scopes:     t.Scopes.Names(),
		AllowedIPs: auth.FormatPrefixes(t.AllowedIPs),
	}
	if !t.ExpiresAt.IsZero() {
		r.Expires = t.ExpiresAt.UnixMilli()
	}
	if l := t.Lineage; !l.IsZero() {
		r.Lineage = fileLineage(&l)
	}
	if t.Revoked() {
		r.Revoked = t.RevokedAt.UnixMilli()
	} else {
		r.Hash = hex.EncodeToString(t.SecretHash[:])
		r.Pepper = t.PepperID
	}
	return r
}

// token parses r and checks the result.
func (r record) token() (*auth.Token, error) {
	var errs []error
	t := &auth.Token{
		ID:         r.ID,
		ProjectID:  r.Project,
		Name:       r.Name,
		CreatedAt:  time.UnixMilli(r.Created).UTC(),
		PepperID:   r.Pepper,
		RateLimit:  r.Rate,
		RateBurst:  r.Burst,
		RateShadow: r.Shadow,
		RotatedTo:  r.RotatedTo,
		Replaced:   r.Replaced,
	}
	var err error
	if t.Role, err = auth.ParseRole(r.Role); err != nil {
		errs = append(errs, err)
	}
	if t.Status, err = auth.ParseStatus(r.Status); err != nil {
		errs = append(errs, err)
	}
	if t.Scopes, err = auth.ParsePermSet(r.Scopes); err != nil {
		errs = append(errs, fmt.Errorf("scopes: %w", err))
	}
	if t.AllowedIPs, err = auth.ParsePrefixes(r.AllowedIPs); err != nil {
		errs = append(errs, fmt.Errorf("allowed ips: %w", err))
	}
	if r.Expires != 0 {
		t.ExpiresAt = time.UnixMilli(r.Expires).UTC()
	}
	if l := r.Lineage; l != nil {
		if t.Lineage, err = l.token(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Revoked != 0 {
		t.RevokedAt = time.UnixMilli(r.Revoked).UTC()
	}
	switch {
	case r.Hash != "":
		if t.SecretHash, err = auth.ParseHash(r.Hash); err != nil {
			errs = append(errs, err)
		}
	case !t.Revoked():
		errs = append(errs, errors.New("secret hash: missing"))
	}
	if len(errs) == 0 {
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "; "))
	}
	return t, nil
}

// CountTokens counts the live tokens (tombstones excluded) by role and
// status, for the tswgate_tokens gauge. It is O(tokens).
func (s *Store) CountTokens(_ context.Context) (map[auth.Role]map[auth.Status]int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make(map[auth.Role]map[auth.Status]int)
	for _, t := range s.byID {
		if !t.RevokedAt.IsZero() {
			continue
		}
		byStatus := out[t.Role]
		if byStatus == nil {
			byStatus = make(map[auth.Status]int)
			out[t.Role] = byStatus
		}
		byStatus[t.Status]++
	}
	return out, nil
}
