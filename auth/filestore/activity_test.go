package filestore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

// TestActivityPersists checks that usage, expiry claims and the audit trail
// survive a restart, and that the audit file is rotated at its bound.
func TestActivityPersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.json")
	open := func() *Store {
		s, err := Open(Options{Path: path, AuditMaxEvents: 3})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	tok, _ := storetest.NewToken(t, 7, auth.RoleOwner)
	now := time.Now().UTC().Truncate(time.Millisecond)
	tok.ExpiresAt = now.Add(-time.Second)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, []auth.UsageRecord{{TokenID: tok.ID, Minute: now.Truncate(time.Minute),
		Counts: map[auth.Code]int64{auth.OK: 4}, LastUsed: now}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimExpired(ctx, now); err != nil || len(got) != 1 {
		t.Fatalf("ClaimExpired = %v, %v", got, err)
	}
	for i := range 7 {
		ev := auth.AuditEvent{Time: now, Action: "token.create", ActorKind: auth.ActorSystem, ProjectID: 7,
			Outcome: auth.OutcomeOK, Detail: strings.Repeat("x", i)}
		if err := s.AppendAudit(ctx, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokens.usage.json", "tokens.audit.jsonl", "tokens.audit.jsonl.1"} {
		fi, err := os.Stat(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	s = open()
	defer s.Close()
	u, err := s.UsageOf(ctx, []string{tok.ID}, now)
	if err != nil || u[tok.ID].Counts[auth.OK] != 4 || !u[tok.ID].LastUsed.Equal(now) {
		t.Errorf("usage after a restart = %+v, %v; want 4 allowed, last used %v", u, err, now)
	}
	if got, err := s.ClaimExpired(ctx, now); err != nil || len(got) != 0 {
		t.Errorf("ClaimExpired after a restart = %v, %v; want the claim remembered", got, err)
	}
	p, err := s.ReadAudit(ctx, auth.AuditQuery{ProjectID: 7, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 7 events with rotation at 3: the current file holds 1, the rotated
	// one 3; the oldest 3 are gone.
	if len(p.Events) != 4 || p.Events[0].ID != "7" || p.Events[3].ID != "4" {
		t.Errorf("audit after a restart = %+v, want events 7 down to 4", p.Events)
	}
	ev := auth.AuditEvent{Time: now, Action: "token.revoke", ActorKind: auth.ActorSystem, ProjectID: 7, Outcome: auth.OutcomeOK}
	if err := s.AppendAudit(ctx, &ev); err != nil || ev.ID != "8" {
		t.Errorf("AppendAudit after a restart: id %q, %v; want 8", ev.ID, err)
	}
}

// TestActivityCloseRace closes the store while usage is flushed and events
// appended: no deadlock, no race, and every call either works or says the
// store is closed.
func TestActivityCloseRace(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := storetest.NewToken(t, 7, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			now := time.Now()
			err1 := s.AddUsage(ctx, []auth.UsageRecord{{TokenID: tok.ID, Minute: now, Counts: map[auth.Code]int64{auth.OK: 1}, LastUsed: now}})
			err2 := s.AppendAudit(ctx, &auth.AuditEvent{Time: now, Action: "token.update", ActorKind: auth.ActorSystem, ProjectID: 7, Outcome: auth.OutcomeOK})
			_, err3 := s.ClaimExpired(ctx, now)
			for _, err := range []error{err1, err2, err3} {
				if err != nil && err != ErrClosed {
					t.Errorf("call %d: %v", i, err)
					return
				}
			}
			if err1 == ErrClosed {
				return
			}
		}
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestAddUsageFailedWriteChangesNothing: a batch whose file write fails is
// undone, since the caller keeps it and sends it again; nothing is counted
// twice.
func TestAddUsageFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Path: filepath.Join(dir, "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	batch := []auth.UsageRecord{{TokenID: tok.ID, Minute: now, LastUsed: now, Counts: map[auth.Code]int64{auth.OK: 5}}}
	// The usage file cannot be written: its path is a non-empty directory.
	up := filepath.Join(dir, "tokens.usage.json")
	if err := os.MkdirAll(filepath.Join(up, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, batch); err == nil {
		t.Fatal("AddUsage succeeded although its file cannot be written")
	}
	if err := os.RemoveAll(up); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, batch); err != nil { // the caller's retry
		t.Fatal(err)
	}
	u, err := s.UsageOf(ctx, []string{tok.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := u[tok.ID].Counts[auth.OK]; got != 5 {
		t.Fatalf("5 requests sent twice after a failed write: stored %d, want 5", got)
	}
}
