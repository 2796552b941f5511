package filestore

// Token activity in the embedded store: paged lists, usage counts, expiry
// markers and the audit trail.
//
// Usage and the expiry markers live in a side file, "<store>.usage.json"
// (tokens.usage.json next to tokens.json), rewritten atomically at each
// usage flush:
//
//	{"version": 1,
//	 "tokens": {"tsw_…": {"last": <Unix ms>, "minutes": {"<Unix minute>": {"ok": 12, "invalid_token": 1}}}},
//	 "expired": {"tsw_…": <the expiry, Unix ms, whose token.expire was recorded>},
//	 "expiring": {"tsw_…": <the expiry, Unix ms, whose coming was warned of>}}
//
// Minutes older than auth.UsageWindow are dropped at each write; a token's
// "last" is kept as long as its record.
//
// The audit trail is an append-only JSON-lines file, "<store>.audit.jsonl",
// one auth.AuditEvent per line, synced after each event. When it holds
// Options.AuditMaxEvents events it is renamed to "<store>.audit.jsonl.1"
// (replacing the previous one) and a new file is started, so the trail
// keeps between AuditMaxEvents and twice as many events, all projects
// together.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// DefaultAuditMaxEvents is Options.AuditMaxEvents when zero.
const DefaultAuditMaxEvents = 10000

const usageVersion = 1

// activity is the Store's activity state. Lock order: mu, then the
// Store's mu (saveActivity reads the records).
type activity struct {
	mu        sync.Mutex
	usagePath string
	usage     map[string]*usageRec
	expired   map[string]int64
	expiring  map[string]int64

	auditPath  string
	audit      *os.File
	auditLines int // events in the current file
	events     []auth.AuditEvent
	seq        int64
	maxEvents  int
}

type usageRec struct {
	Last    int64                      `json:"last,omitempty"`
	Minutes map[int64]map[string]int64 `json:"minutes,omitempty"`
}

type usageDoc struct {
	Version int                  `json:"version"`
	Tokens  map[string]*usageRec `json:"tokens"`
	Expired map[string]int64     `json:"expired"`
	// Expiring was added later: files without it load as no warnings.
	Expiring map[string]int64 `json:"expiring,omitempty"`
}

// sidePath names a file next to the store file: tokens.json → tokens<suffix>.
func sidePath(path, suffix string) string {
	return strings.TrimSuffix(path, ".json") + suffix
}

// openActivity loads the usage file and the audit trail and opens the
// audit file for appending.
func (s *Store) openActivity(maxEvents int) error {
	if maxEvents <= 0 {
		maxEvents = DefaultAuditMaxEvents
	}
	a := &activity{
		usagePath: sidePath(s.path, ".usage.json"),
		usage:     map[string]*usageRec{},
		expired:   map[string]int64{},
		expiring:  map[string]int64{},
		auditPath: sidePath(s.path, ".audit.jsonl"),
		maxEvents: maxEvents,
	}
	data, err := os.ReadFile(a.usagePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("filestore: reading %s: %w", a.usagePath, err)
	default:
		var doc usageDoc
		if err := json.Unmarshal(data, &doc); err != nil || doc.Version != usageVersion {
			// Usage is not worth refusing to start over: start afresh.
			s.log.Warn("filestore: the usage file is unreadable; starting its counts afresh", "path", a.usagePath, "err", err)
		} else {
			if doc.Tokens != nil {
				a.usage = doc.Tokens
			}
			if doc.Expired != nil {
				a.expired = doc.Expired
			}
			if doc.Expiring != nil {
				a.expiring = doc.Expiring
			}
		}
	}
	for _, name := range []string{a.auditPath + ".1", a.auditPath} {
		n, err := a.loadAudit(name)
		if err != nil {
			return fmt.Errorf("filestore: reading the audit trail: %w", err)
		}
		if name == a.auditPath {
			a.auditLines = n
		}
	}
	if a.audit, err = os.OpenFile(a.auditPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("filestore: opening the audit trail: %w", err)
	}
	s.act = a
	return nil
}

// loadAudit appends the events of one audit file to a.events; a line that
// cannot be read (a write torn by a crash) is skipped.
func (a *activity) loadAudit(name string) (int, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var ev auth.AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		seq, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil {
			continue
		}
		a.seq = max(a.seq, seq)
		a.events = append(a.events, ev)
		n++
	}
	return n, nil
}

// closeActivity closes the audit file, once. It must not be called with
// s.mu held (lock order: activity, then records).
func (s *Store) closeActivity() {
	if s.act == nil {
		return
	}
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.audit == nil {
		return
	}
	if err := a.audit.Close(); err != nil {
		s.log.Warn("filestore: closing the audit trail", "err", err)
	}
	a.audit = nil
}

// ListPage returns one page of the project's live tokens matching q, in
// List order, starting after q.After.
func (s *Store) ListPage(ctx context.Context, q auth.ListQuery) (auth.ListPage, error) {
	if q.Limit <= 0 {
		return auth.ListPage{}, errors.New("filestore: list page: the limit must be above zero")
	}
	all, err := s.List(ctx, q.ProjectID)
	if err != nil {
		return auth.ListPage{}, err
	}
	i := sort.Search(len(all), func(i int) bool { return !q.After.Passed(all[i]) })
	page := auth.ListPage{Tokens: make([]*auth.Token, 0, min(q.Limit, len(all)-i))}
	for ; i < len(all); i++ {
		if !q.Matches(all[i]) {
			continue
		}
		if len(page.Tokens) == q.Limit {
			page.Next = auth.CursorAfter(page.Tokens[len(page.Tokens)-1])
			break
		}
		page.Tokens = append(page.Tokens, all[i])
	}
	return page, nil
}

// AddUsage adds flushed usage counts and writes the usage file.
func (s *Store) AddUsage(_ context.Context, recs []auth.UsageRecord) error {
	if s.isClosed() {
		return ErrClosed
	}
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	// What the batch changes, to undo it if the file cannot be written:
	// the caller keeps a failed batch and sends it again.
	type undo struct {
		id   string
		last int64
		had  bool
	}
	var undos []undo
	for _, r := range recs {
		u := a.usage[r.TokenID]
		undos = append(undos, undo{id: r.TokenID, had: u != nil})
		if u == nil {
			u = &usageRec{}
			a.usage[r.TokenID] = u
		}
		undos[len(undos)-1].last = u.Last
		u.Last = max(u.Last, r.LastUsed.UnixMilli())
		if u.Minutes == nil {
			u.Minutes = map[int64]map[string]int64{}
		}
		m := auth.UnixMinute(r.Minute)
		counts := u.Minutes[m]
		if counts == nil {
			counts = map[string]int64{}
			u.Minutes[m] = counts
		}
		for c, n := range r.Counts {
			counts[c.String()] += n
		}
	}
	if err := s.saveActivity(); err != nil {
		for i := len(recs) - 1; i >= 0; i-- {
			r, un := recs[i], undos[i]
			u := a.usage[r.TokenID]
			if u == nil {
				continue // dropped by saveActivity: its record is gone
			}
			m := auth.UnixMinute(r.Minute)
			if counts := u.Minutes[m]; counts != nil {
				for c, n := range r.Counts {
					if counts[c.String()] -= n; counts[c.String()] <= 0 {
						delete(counts, c.String())
					}
				}
				if len(counts) == 0 {
					delete(u.Minutes, m)
				}
			}
			u.Last = un.last
			if !un.had {
				delete(a.usage, r.TokenID)
			}
		}
		return fmt.Errorf("filestore: add usage: %w", err)
	}
	return nil
}

// saveActivity drops minutes past the usage window and usage of records
// that are gone, then writes the usage file. a.mu must be held.
func (s *Store) saveActivity() error {
	a := s.act
	oldest := auth.UnixMinute(s.now().Add(-auth.UsageWindow))
	s.mu.RLock()
	for id, u := range a.usage {
		if _, ok := s.byID[id]; !ok {
			delete(a.usage, id)
			continue
		}
		for m := range u.Minutes {
			if m <= oldest {
				delete(u.Minutes, m)
			}
		}
	}
	for _, claims := range []map[string]int64{a.expired, a.expiring} {
		for id := range claims {
			if _, ok := s.byID[id]; !ok {
				delete(claims, id)
			}
		}
	}
	s.mu.RUnlock()
	data, err := json.Marshal(usageDoc{Version: usageVersion, Tokens: a.usage, Expired: a.expired, Expiring: a.expiring})
	if err != nil {
		return fmt.Errorf("encoding usage: %w", err)
	}
	if _, err := writeAtomic(a.usagePath, append(data, '\n')); err != nil {
		return fmt.Errorf("saving %s: %w: %w", a.usagePath, auth.ErrUnavailable, err)
	}
	return nil
}

// UsageOf returns the usage of each of ids over the window before now;
// ids never used are left out.
func (s *Store) UsageOf(_ context.Context, ids []string, now time.Time) (map[string]auth.TokenUsage, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	oldest := auth.UnixMinute(now.Add(-auth.UsageWindow))
	out := make(map[string]auth.TokenUsage, len(ids))
	for _, id := range ids {
		u := a.usage[id]
		if u == nil {
			continue
		}
		tu := auth.TokenUsage{Counts: map[auth.Code]int64{}}
		if u.Last != 0 {
			tu.LastUsed = time.UnixMilli(u.Last).UTC()
		}
		for m, counts := range u.Minutes {
			if m <= oldest {
				continue
			}
			for name, n := range counts {
				if c, ok := auth.ParseCode(name); ok {
					tu.Counts[c] += n
				}
			}
		}
		out[id] = tu
	}
	return out, nil
}

// ClaimExpired returns the live tokens whose expiry has passed at now and
// that no earlier call returned with that same expiry: each expiry is
// claimed once (and the claims survive restarts, in the usage file).
func (s *Store) ClaimExpired(_ context.Context, now time.Time) ([]*auth.Token, error) {
	return s.claim(now, func(a *activity) map[string]int64 { return a.expired }, func(t *auth.Token) bool {
		return t.Expired(now)
	})
}

// UnclaimExpired withdraws a claim of ClaimExpired (its event could not be
// recorded), so that a later call returns the token again.
func (s *Store) UnclaimExpired(_ context.Context, t *auth.Token) error {
	return s.unclaim(t, func(a *activity) map[string]int64 { return a.expired })
}

// ClaimExpiring returns the live tokens that expire within WarnBefore
// after now and have not expired, and that no earlier call returned with
// that same expiry, like ClaimExpired.
func (s *Store) ClaimExpiring(_ context.Context, now time.Time) ([]*auth.Token, error) {
	return s.claim(now, func(a *activity) map[string]int64 { return a.expiring }, func(t *auth.Token) bool {
		return !t.ExpiresAt.IsZero() && t.ExpiresAt.After(now) && t.ExpiresAt.Sub(now) <= s.warnBefore
	})
}

// UnclaimExpiring withdraws a claim of ClaimExpiring (its event could not
// be published), so that a later call returns the token again.
func (s *Store) UnclaimExpiring(_ context.Context, t *auth.Token) error {
	return s.unclaim(t, func(a *activity) map[string]int64 { return a.expiring })
}

// WarnBefore is how long before its expiry ClaimExpiring returns a token.
func (s *Store) WarnBefore() time.Duration { return s.warnBefore }

// claim claims, in the claims map of, the live tokens that are due: a walk
// of the records in memory.
func (s *Store) claim(now time.Time, of func(*activity) map[string]int64, due func(*auth.Token) bool) ([]*auth.Token, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	var cands []*auth.Token
	for _, t := range s.byID {
		if !t.Revoked() && due(t) {
			cands = append(cands, t)
		}
	}
	s.mu.RUnlock()
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	claims := of(a)
	var claimed []*auth.Token
	for _, t := range cands {
		if ms := t.ExpiresAt.UnixMilli(); claims[t.ID] != ms {
			claims[t.ID] = ms
			claimed = append(claimed, t)
		}
	}
	if len(claimed) == 0 {
		return nil, nil
	}
	if err := s.saveActivity(); err != nil {
		for _, t := range claimed {
			delete(claims, t.ID)
		}
		return nil, fmt.Errorf("filestore: claim tokens due at %s: %w", now.UTC().Format(time.RFC3339), err)
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].ID < claimed[j].ID })
	return claimed, nil
}

// unclaim withdraws the claim of t's expiry from the claims map of.
func (s *Store) unclaim(t *auth.Token, of func(*activity) map[string]int64) error {
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	claims := of(a)
	if claims[t.ID] != t.ExpiresAt.UnixMilli() {
		return nil
	}
	delete(claims, t.ID)
	if err := s.saveActivity(); err != nil {
		return fmt.Errorf("filestore: unclaim %s: %w", t.ID, err)
	}
	return nil
}

// AppendAudit appends ev to the audit trail, setting its ID.
func (s *Store) AppendAudit(_ context.Context, ev *auth.AuditEvent) error {
	if s.isClosed() {
		return ErrClosed
	}
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.audit == nil {
		return ErrClosed
	}
	e := *ev
	e.ID = strconv.FormatInt(a.seq+1, 10)
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("filestore: encoding an audit event: %w", err)
	}
	if _, err := a.audit.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("filestore: appending to %s: %w: %w", a.auditPath, auth.ErrUnavailable, err)
	}
	if err := a.audit.Sync(); err != nil {
		return fmt.Errorf("filestore: syncing %s: %w: %w", a.auditPath, auth.ErrUnavailable, err)
	}
	a.seq++
	ev.ID = e.ID
	a.events = append(a.events, e)
	a.auditLines++
	if a.auditLines >= a.maxEvents {
		if err := a.rotate(); err != nil {
			s.log.Warn("filestore: rotating the audit trail failed; it keeps growing until a rotation succeeds", "err", err)
		}
	}
	return nil
}

// rotate renames the full audit file to .1 and starts a new one; memory
// keeps the events of the renamed file. a.mu must be held.
func (a *activity) rotate() error {
	if err := os.Rename(a.auditPath, a.auditPath+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(a.auditPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err // the old descriptor keeps appending to .1
	}
	_ = a.audit.Close()
	a.audit = f
	a.events = append([]auth.AuditEvent(nil), a.events[len(a.events)-a.auditLines:]...)
	a.auditLines = 0
	return nil
}

// ReadAudit returns a page of the project's audit trail, newest first.
func (s *Store) ReadAudit(_ context.Context, q auth.AuditQuery) (auth.AuditPage, error) {
	if q.Limit <= 0 {
		return auth.AuditPage{}, errors.New("filestore: read audit: the limit must be above zero")
	}
	before := int64(-1)
	if q.Before != "" {
		n, err := strconv.ParseInt(q.Before, 10, 64)
		if err != nil || n <= 0 {
			return auth.AuditPage{}, fmt.Errorf("filestore: read audit: cursor %q: %w", q.Before, auth.ErrBadCursor)
		}
		before = n
	}
	if s.isClosed() {
		return auth.AuditPage{}, ErrClosed
	}
	a := s.act
	a.mu.Lock()
	defer a.mu.Unlock()
	page := auth.AuditPage{Events: []auth.AuditEvent{}}
	for i := len(a.events) - 1; i >= 0; i-- {
		ev := a.events[i]
		if ev.ProjectID != q.ProjectID {
			continue
		}
		if seq, _ := strconv.ParseInt(ev.ID, 10, 64); before >= 0 && seq >= before {
			continue
		}
		if len(page.Events) == q.Limit {
			page.Next = page.Events[len(page.Events)-1].ID
			break
		}
		page.Events = append(page.Events, ev)
	}
	return page, nil
}
