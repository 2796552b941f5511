package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/config"
)

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3 addresses", addrs)
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":6379") {
			t.Fatalf("Addrs() = %v: want loopback addresses, never the default port", addrs)
		}
	}
	want := fmt.Sprintf("redis://%s?addr=%s&addr=%s&cluster=true", addrs[0], addrs[1], addrs[2])
	if c.URL() != want {
		t.Errorf("URL() = %q, want %q", c.URL(), want)
	}
	target, err := config.ParseRedisURL(c.URL())
	if err != nil {
		t.Fatalf("config.ParseRedisURL(%q): %v", c.URL(), err)
	}
	if !target.Cluster || !slices.Equal(target.Addrs, addrs) || target.MasterName != "" {
		t.Errorf("config.ParseRedisURL(URL()) = %v, want cluster=true and addrs %v", target, addrs)
	}

	ctx := context.Background()
	for _, a := range addrs {
		n := redis.NewClient(&redis.Options{Addr: a, ContextTimeoutEnabled: true})
		err := clusterReady(ctx, n, 3)
		n.Close()
		if err != nil {
			t.Errorf("node %s: %v", a, err)
		}
	}

	// Keys spread over every node, and each is read back.
	cl := c.Client(t)
	for i := range 100 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	for i := range 100 {
		if got, err := cl.Get(ctx, fmt.Sprintf("k%d", i)).Int(); err != nil || got != i {
			t.Fatalf("GET k%d = %d, %v", i, got, err)
		}
	}
	for _, a := range addrs {
		n := redis.NewClient(&redis.Options{Addr: a, ContextTimeoutEnabled: true})
		size, err := n.DBSize(ctx).Result()
		n.Close()
		if err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v): the slots are not spread", a, size, err)
		}
	}

	// A message published on one node reaches a subscriber on another.
	sub := redis.NewClient(&redis.Options{Addr: addrs[0], ContextTimeoutEnabled: true})
	defer sub.Close()
	ps := sub.Subscribe(ctx, "news")
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatalf("SUBSCRIBE on %s: %v", addrs[0], err)
	}
	pub := redis.NewClient(&redis.Options{Addr: addrs[2], ContextTimeoutEnabled: true})
	defer pub.Close()
	if err := pub.Publish(ctx, "news", "hello").Err(); err != nil {
		t.Fatalf("PUBLISH on %s: %v", addrs[2], err)
	}
	msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
	if m, ok := msg.(*redis.Message); err != nil || !ok || m.Payload != "hello" {
		t.Fatalf("subscriber on %s received %v, %v; want the message published on %s", addrs[0], msg, err, addrs[2])
	}

	c.Stop()
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := cl.Ping(sctx).Err(); err == nil {
		t.Error("PING on a stopped cluster succeeded")
	}
	c.Stop() // idempotent
}
