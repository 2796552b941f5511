package webhookapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/webhook"
)

// refusedBackends are backends holding, for project 42, an endpoint saved
// by an earlier version with a host form the rules now refuse.
func refusedBackends(parent *testing.T, e *webhook.Endpoint) []backend {
	data, _ := json.Marshal(e)
	var srv *redistest.Server
	return []backend{
		{name: "file", open: func(t *testing.T) (managedRegistry, webhook.Queue) {
			dir := t.TempDir()
			path := filepath.Join(dir, "endpoints.json")
			if err := os.WriteFile(path, []byte("["+string(data)+"]"), 0o600); err != nil {
				t.Fatal(err)
			}
			reg, err := webhook.OpenFileRegistry(path)
			if err != nil {
				t.Fatal(err)
			}
			q, err := webhook.OpenFileQueue(webhook.FileQueueOptions{Path: filepath.Join(dir, "webhooks.queue")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = q.Close() })
			return reg, q
		}},
		{name: "redis", redis: true, open: func(t *testing.T) (managedRegistry, webhook.Queue) {
			if srv == nil {
				srv = redistest.Start(parent)
			}
			c := srv.Client(t)
			prefix := fmt.Sprintf("whapi%d:", prefixes.Add(1))
			ctx := context.Background()
			if err := c.Set(ctx, prefix+"webhook:ep:"+e.ID, data, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.SAdd(ctx, prefix+"webhook:eps:42", e.ID).Err(); err != nil {
				t.Fatal(err)
			}
			q, err := webhook.NewRedisQueue(webhook.RedisQueueOptions{Client: c, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return webhook.NewRedisRegistry(c, prefix), q
		}},
	}
}

// An endpoint saved with a URL now refused can be disabled and given a
// valid URL through the API; an update or rotation that keeps it enabled
// on that URL is refused with 409 url_refused, naming the problem.
func TestRefusedURLEndpointIsManageable(t *testing.T) {
	e, err := webhook.NewEndpoint(42, "https://hooks.example.com/", nil, time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	e.URL = "https://127.1/hook"
	for _, b := range refusedBackends(t, e) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b, fixtureOptions{noDisp: true})
			c := client(f.admin, adminKey, 42)
			desc := "still on"
			_, err := c.Update(ctx, e.ID, UpdateRequest{Description: &desc})
			if apiCode(err) != "url_refused" || !strings.Contains(err.Error(), `host "127.1"`) {
				t.Errorf("update keeping it enabled: %v, want url_refused naming the host", err)
			}
			if _, err := c.RotateSecret(ctx, e.ID, RotateRequest{}); apiCode(err) != "url_refused" {
				t.Errorf("rotation while enabled: %v, want url_refused", err)
			}
			off := false
			if got, err := c.Update(ctx, e.ID, UpdateRequest{Enabled: &off}); err != nil || got.Enabled {
				t.Fatalf("disabling it: %+v, %v", got, err)
			}
			bad := "https://0x7f.1/"
			if _, err := c.Update(ctx, e.ID, UpdateRequest{URL: &bad}); apiCode(err) != "invalid_request" {
				t.Errorf("setting another refused URL: %v, want invalid_request", err)
			}
			good, on := "https://hooks.example.com/tsw", true
			got, err := c.Update(ctx, e.ID, UpdateRequest{URL: &good, Enabled: &on})
			if err != nil || got.URL != good || !got.Enabled {
				t.Errorf("setting a valid URL: %+v, %v", got, err)
			}
		})
	}
}
