package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// refusedEndpoint is an endpoint as an earlier version may have saved
// it: its host is a form the rules now refuse.
func refusedEndpoint(t *testing.T) *Endpoint {
	t.Helper()
	e, err := NewEndpoint(42, "https://hooks.example.com/", nil, time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	e.URL = "https://127.1/hook"
	return e
}

// runRefusedURL checks that an endpoint stored with a URL now refused can
// be disabled (and changed while disabled), and given a valid URL, but
// not kept enabled on its URL: that update is refused with ErrURLRefused.
func runRefusedURL(t *testing.T, r managed, e *Endpoint) {
	ctx := context.Background()
	set := func(f func(*Endpoint)) error {
		_, err := r.Update(ctx, e.ID, func(c *Endpoint) error { f(c); return nil })
		return err
	}
	if err := set(func(c *Endpoint) { c.Description = "still on" }); !errors.Is(err, ErrURLRefused) {
		t.Errorf("an update keeping it enabled on the refused URL: %v, want ErrURLRefused", err)
	}
	if err := set(func(c *Endpoint) { c.Disabled = true }); err != nil {
		t.Fatalf("disabling it: %v", err)
	}
	if err := set(func(c *Endpoint) { c.Description = "off"; _, _ = c.RotateSecret(time.Now(), 0) }); err != nil {
		t.Errorf("changing it while disabled: %v", err)
	}
	if err := set(func(c *Endpoint) { c.Disabled = false }); !errors.Is(err, ErrURLRefused) {
		t.Errorf("enabling it on the refused URL: %v, want ErrURLRefused", err)
	}
	if err := set(func(c *Endpoint) { c.URL = "https://127.2/" }); errors.Is(err, ErrURLRefused) || err == nil {
		t.Errorf("setting another refused URL: %v, want the url problem", err)
	}
	if err := set(func(c *Endpoint) { c.URL, c.Disabled = "https://hooks.example.com/", false }); err != nil {
		t.Fatalf("setting a valid URL: %v", err)
	}
	got, err := r.Get(ctx, e.ID)
	if err != nil || got.URL != "https://hooks.example.com/" || got.Disabled || got.Description != "off" {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

func TestFileRegistryRefusedURL(t *testing.T) {
	e := refusedEndpoint(t)
	path := filepath.Join(t.TempDir(), "endpoints.json")
	data, _ := json.Marshal([]*Endpoint{e})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenFileRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	runRefusedURL(t, r, e)
}

func TestRedisRegistryRefusedURL(t *testing.T) {
	srv := startRedis(t)
	c := srv.Client(t)
	prefix := newPrefix()
	r := NewRedisRegistry(c, prefix)
	e := refusedEndpoint(t)
	data, _ := json.Marshal(e)
	ctx := context.Background()
	if err := c.Set(ctx, r.key(e.ID), data, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.SAdd(ctx, r.setKey(e.ProjectID), e.ID).Err(); err != nil {
		t.Fatal(err)
	}
	runRefusedURL(t, r, e)
}
