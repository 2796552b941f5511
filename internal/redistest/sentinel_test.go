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

func TestSentinel(t *testing.T) {
	s := StartSentinel(t)
	addrs := s.SentinelAddrs()
	if len(addrs) != 3 {
		t.Fatalf("SentinelAddrs() = %v, want 3", addrs)
	}
	for _, a := range append(slices.Clone(addrs), s.data[0].Addr(), s.data[1].Addr()) {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":6379") {
			t.Fatalf("address %s: want loopback, never the default port", a)
		}
	}
	want := fmt.Sprintf("redis://%s?addr=%s&addr=%s&master_name=tswmaster", addrs[0], addrs[1], addrs[2])
	if s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	target, err := config.ParseRedisURL(s.URL())
	if err != nil {
		t.Fatalf("config.ParseRedisURL(%q): %v", s.URL(), err)
	}
	if target.MasterName != MasterName || !slices.Equal(target.Addrs, addrs) || target.Cluster {
		t.Errorf("config.ParseRedisURL(URL()) = %v, want master_name=%s and the sentinels %v", target, MasterName, addrs)
	}

	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinels: %v", err)
	}
	s.WaitReplicated(t)
	old := s.MasterAddr(t)
	if old != s.data[0].Addr() {
		t.Errorf("MasterAddr() = %s, want the first data node %s", old, s.data[0].Addr())
	}

	start := time.Now()
	s.Failover(t)
	t.Logf("failover took %v", time.Since(start))
	next := s.MasterAddr(t)
	if next == old || next != s.data[1].Addr() {
		t.Fatalf("after Failover the master is %s, want the former replica %s (was %s)", next, s.data[1].Addr(), old)
	}
	direct := redis.NewClient(&redis.Options{Addr: next, ContextTimeoutEnabled: true})
	defer direct.Close()
	if role, err := direct.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE on the new master %s = %v, %v", next, role, err)
	}
	// The replicated write survived, and the failover client writes to the
	// new master.
	if got, err := direct.Get(ctx, "k").Result(); err != nil || got != "before" {
		t.Fatalf("GET k on the new master = %q, %v; want the replicated write", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "k", "after", 0).Err()
		got, _ := direct.Get(ctx, "k").Result()
		if err == nil && got == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failover client did not write to the new master within 10s: SET %v, new master has %q", err, got)
		}
		time.Sleep(20 * time.Millisecond) // bounded by the deadline
	}

	s.Stop()
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := direct.Ping(sctx).Err(); err == nil {
		t.Error("PING on a stopped setup succeeded")
	}
	s.Stop() // idempotent
}
