package devtool

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRedisServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	p := NewProcs(t.TempDir())
	defer p.StopAll(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := StartRedis(ctx, p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || strings.Contains(r.URL(), ":6379/") {
		t.Errorf("URL = %s", r.URL())
	}
	if err := ping(r.Addr); err != nil {
		t.Fatal(err)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(r.Addr); err != nil {
		t.Errorf("after Restart: %v", err)
	}
}
