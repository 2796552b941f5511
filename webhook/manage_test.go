package webhook

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// managed is a Registry with the management operations.
type managed interface {
	Registry
	Add(ctx context.Context, e *Endpoint, max int) error
	Update(ctx context.Context, id string, fn func(*Endpoint) error) (*Endpoint, error)
}

var (
	_ managed = (*FileRegistry)(nil)
	_ managed = (*RedisRegistry)(nil)
)

func runManageContract(t *testing.T, open func(t *testing.T) managed) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	mk := func(t *testing.T, project int64) *Endpoint {
		t.Helper()
		e, err := NewEndpoint(project, "https://hooks.example.com/tsw", nil, now)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	t.Run("add bounds a project's endpoints across callers", func(t *testing.T) {
		r := open(t)
		var ok, limited atomic.Int64
		var wg sync.WaitGroup
		for range 30 {
			wg.Go(func() {
				switch err := r.Add(ctx, mk(t, 42), 20); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrEndpointLimit):
					limited.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 20 || limited.Load() != 10 {
			t.Errorf("added %d, limited %d; want 20 and 10", ok.Load(), limited.Load())
		}
		if list, _ := r.List(ctx, 42); len(list) != 20 {
			t.Errorf("List = %d endpoints, want 20", len(list))
		}
		if err := r.Add(ctx, mk(t, 43), 20); err != nil {
			t.Errorf("another project: %v", err)
		}
	})
	t.Run("add refuses a taken id", func(t *testing.T) {
		r := open(t)
		e := mk(t, 42)
		if err := r.Add(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(ctx, e, 0); !errors.Is(err, ErrExists) {
			t.Errorf("second Add: %v, want ErrExists", err)
		}
	})
	t.Run("concurrent updates all apply", func(t *testing.T) {
		r := open(t)
		e := mk(t, 42)
		if err := r.Add(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					_, err := r.Update(ctx, e.ID, func(e *Endpoint) error {
						n, _ := strconv.Atoi(e.Description)
						e.Description = strconv.Itoa(n + 1)
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if got, _ := r.Get(ctx, e.ID); got.Description != "40" {
			t.Errorf("after 40 increments: %q", got.Description)
		}
	})
	t.Run("update refusals change nothing", func(t *testing.T) {
		r := open(t)
		e := mk(t, 42)
		_ = r.Add(ctx, e, 0)
		stop := errors.New("stop")
		if _, err := r.Update(ctx, e.ID, func(e *Endpoint) error { e.URL = "x"; return stop }); !errors.Is(err, stop) {
			t.Errorf("fn error: %v", err)
		}
		if _, err := r.Update(ctx, e.ID, func(e *Endpoint) error { e.URL = "ftp://x/"; return nil }); err == nil {
			t.Error("Update stored an invalid URL")
		}
		if _, err := r.Update(ctx, "ep_unknown", func(*Endpoint) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
		if got, _ := r.Get(ctx, e.ID); got.URL != e.URL {
			t.Errorf("URL = %q", got.URL)
		}
	})
}

func TestFileRegistryManage(t *testing.T) {
	runManageContract(t, func(t *testing.T) managed {
		r, err := OpenFileRegistry(filepath.Join(t.TempDir(), "endpoints.json"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestRedisRegistryManage(t *testing.T) {
	c := startRedis(t).Client(t)
	runManageContract(t, func(t *testing.T) managed { return NewRedisRegistry(c, newPrefix()) })
}

func TestRotatedSecretSignsDuringGrace(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e, err := NewEndpoint(42, "https://hooks.example.com/", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	old := e.Secret
	secret, err := e.RotateSecret(now, time.Hour)
	if err != nil || secret == old || e.Secret != secret || e.PreviousSecret != old {
		t.Fatalf("RotateSecret = %v; secret changed %v", err, secret != old)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"webhook.test"}`)
	for _, c := range []struct {
		at          time.Time
		oldVerifies bool
	}{{now.Add(time.Minute), true}, {now.Add(time.Hour), false}} {
		keys, err := e.signingKeys(c.at)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		SetHeadersKeys(h, keys, "msg_1", c.at, body)
		if err := Verify(secret, h, body, c.at, 0); err != nil {
			t.Errorf("at %v: new secret: %v", c.at, err)
		}
		if err := Verify(old, h, body, c.at, 0); (err == nil) != c.oldVerifies {
			t.Errorf("at %v: old secret verifies: %v, want %v", c.at, err == nil, c.oldVerifies)
		}
	}
}
