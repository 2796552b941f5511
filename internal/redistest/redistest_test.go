package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServer(t *testing.T) {
	s := Start(t)
	if strings.HasSuffix(s.Addr(), ":6379") {
		t.Fatalf("Addr() = %s: the default port must never be used", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	if opts.Addr != s.Addr() || opts.DB != 0 {
		t.Errorf("ParseURL(URL()) = %s db %d, want %s db 0", opts.Addr, opts.DB, s.Addr())
	}

	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	// Pause: calls time out; Resume: they work again.
	s.Pause()
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = c.Get(pctx, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("GET on a paused server succeeded")
	}
	s.Resume()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after Resume = %q, %v; want v", got, err)
	}

	// Restart: same address, empty data set.
	addr := s.Addr()
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	// The first call may fail on the pooled connection the restart broke.
	var got error
	for range 3 {
		if got = c.Get(ctx, "k").Err(); got == redis.Nil {
			break
		}
	}
	if got != redis.Nil {
		t.Fatalf("GET after Restart: %v, want redis.Nil (empty data set)", got)
	}

	s.Stop()
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Ping(sctx).Err(); err == nil {
		t.Fatal("PING on a stopped server succeeded")
	}
	s.Stop() // idempotent
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET on the other server: %v, want redis.Nil", err)
	}
}
