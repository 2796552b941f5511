package webhook

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func runRegistryContract(t *testing.T, open func(t *testing.T) Registry) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	mk := func(t *testing.T, project int64, types ...string) *Endpoint {
		t.Helper()
		e, err := NewEndpoint(project, "https://hooks.example.com/tsw", types, now)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
		return e
	}
	t.Run("put get list delete", func(t *testing.T) {
		r := open(t)
		a, b, op := mk(t, 42), mk(t, 42, TypeTokenLeaked), mk(t, 0)
		for _, e := range []*Endpoint{a, b, op} {
			if err := r.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := r.Get(ctx, a.ID)
		if err != nil || got.URL != a.URL || got.Secret != a.Secret || got.ProjectID != 42 {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		list, _ := r.List(ctx, 42)
		if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
			t.Errorf("List(42) = %d endpoints", len(list))
		}
		if ops, _ := r.List(ctx, 0); len(ops) != 1 || ops[0].ID != op.ID {
			t.Errorf("List(0) = %d endpoints", len(ops))
		}
		if err := r.Delete(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(ctx, a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete: %v", err)
		}
		if err := r.Delete(ctx, a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second Delete: %v", err)
		}
	})
	t.Run("match", func(t *testing.T) {
		r := open(t)
		all, leaks, other, op := mk(t, 42), mk(t, 42, TypeTokenLeaked), mk(t, 43), mk(t, 0, TypeTokenRevoked)
		off := mk(t, 42)
		off.Disabled = true
		for _, e := range []*Endpoint{all, leaks, other, op, off} {
			_ = r.Put(ctx, e)
		}
		check := func(typ string, want ...*Endpoint) {
			t.Helper()
			got, err := r.Match(ctx, 42, typ)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Match(42, %s) = %d endpoints, want %d", typ, len(got), len(want))
			}
			for i := range got {
				if got[i].ID != want[i].ID {
					t.Errorf("Match(42, %s)[%d] = %s, want %s", typ, i, got[i].ID, want[i].ID)
				}
			}
		}
		check(TypeTokenLeaked, all, leaks)
		check(TypeTokenRevoked, all, op)
		check(TypeTokenCreated, all)
	})
	t.Run("refuses invalid endpoints", func(t *testing.T) {
		r := open(t)
		e := mk(t, 42)
		for name, edit := range map[string]func(*Endpoint){
			"url scheme":    func(e *Endpoint) { e.URL = "ftp://x/" },
			"relative url":  func(e *Endpoint) { e.URL = "/hook" },
			"credentials":   func(e *Endpoint) { e.URL = "https://u:p@x/" },
			"secret":        func(e *Endpoint) { e.Secret = "hunter2" },
			"type":          func(e *Endpoint) { e.Types = []string{"token.stolen"} },
			"id":            func(e *Endpoint) { e.ID = "x" },
			"negative proj": func(e *Endpoint) { e.ProjectID = -1 },
		} {
			c := *e
			edit(&c)
			if err := r.Put(ctx, &c); err == nil {
				t.Errorf("%s: Put accepted %+v", name, c)
			}
		}
		_ = r.Put(ctx, e)
		moved := *e
		moved.ProjectID = 7
		if err := r.Put(ctx, &moved); err == nil {
			t.Error("Put moved an endpoint to another project")
		}
	})
}

func TestFileRegistryContract(t *testing.T) {
	runRegistryContract(t, func(t *testing.T) Registry {
		r, err := OpenFileRegistry(filepath.Join(t.TempDir(), "endpoints.json"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestMemoryRegistryContract(t *testing.T) {
	runRegistryContract(t, func(t *testing.T) Registry {
		r, err := OpenFileRegistry("")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestRedisRegistryContract(t *testing.T) {
	c := startRedis(t).Client(t)
	runRegistryContract(t, func(t *testing.T) Registry { return NewRedisRegistry(c, newPrefix()) })
}

func TestFileRegistryPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	r, _ := OpenFileRegistry(path)
	e, _ := NewEndpoint(42, "https://hooks.example.com/", nil, time.Now())
	if err := r.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenFileRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r2.Get(context.Background(), e.ID); err != nil || got.Secret != e.Secret {
		t.Errorf("after reopening: %+v, %v", got, err)
	}
}
