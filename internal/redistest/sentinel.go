package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinels of a Sentinel setup monitor their
// master under.
const MasterName = "tswmaster"

// Sentinel is a Redis Sentinel setup: two redis-servers, a master and its
// replica, watched by three sentinels (quorum 2) that fail over to the
// replica when the master is down for a second.
type Sentinel struct {
	data      [2]*node // the first starts as master, the second as its replica
	sentinels []*node
}

// StartSentinel starts a Sentinel setup, waits until the sentinels know the
// master, its replica and each other, and stops it when the test ends. It
// fails the test (never skips it) when redis-server is not installed.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	s, err := LaunchSentinel(tb.TempDir())
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// LaunchSentinel is StartSentinel for callers without a test: the servers
// keep their files in dir, and the caller must call Stop.
func LaunchSentinel(dir string) (_ *Sentinel, err error) {
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	s := &Sentinel{}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	for i := range s.data {
		ndir := filepath.Join(dir, fmt.Sprintf("data%d", i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return nil, err
		}
		s.data[i], err = launchNode(bin, ndir, func(port int, _ func() (int, error)) ([]string, error) {
			// Sentinel rewrites the configuration of the servers it
			// reconfigures: give them a file.
			conf := filepath.Join(ndir, "redis.conf")
			if err := os.WriteFile(conf, nil, 0o600); err != nil {
				return nil, err
			}
			args := append([]string{conf}, serverArgs(port, ndir)...)
			// Full syncs start at once rather than after 5 s.
			args = append(args, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
			if i > 0 {
				args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(s.data[0].port))
			}
			return args, nil
		})
		if err != nil {
			return nil, fmt.Errorf("starting Sentinel data node %d: %w", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	if err := poll(ctx, func() error { return replicaLinked(ctx, s.data[1].Addr()) }); err != nil {
		return nil, fmt.Errorf("the replica %s did not sync with the master %s: %w%s",
			s.data[1].Addr(), s.data[0].Addr(), err, s.output())
	}

	master := s.data[0].port
	for i := range 3 {
		sdir := filepath.Join(dir, fmt.Sprintf("sentinel%d", i))
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			return nil, err
		}
		n, err := launchNode(bin, sdir, func(port int, _ func() (int, error)) ([]string, error) {
			// Each sentinel rewrites its own configuration file, so
			// each gets a fresh, writable one.
			conf := filepath.Join(sdir, "sentinel.conf")
			text := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
loglevel warning
dir %q
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 5000
sentinel parallel-syncs %[3]s 1
`, port, sdir, MasterName, master)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				return nil, err
			}
			return []string{conf, "--sentinel"}, nil
		})
		if err != nil {
			return nil, fmt.Errorf("starting sentinel %d: %w", i, err)
		}
		s.sentinels = append(s.sentinels, n)
	}
	if err := poll(ctx, func() error { return s.healthy(ctx, s.data[0].Addr()) }); err != nil {
		return nil, fmt.Errorf("the sentinels did not come to know the setup: %w%s", err, s.output())
	}
	return s, nil
}

// SentinelAddrs returns the "127.0.0.1:port" addresses of the sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, n := range s.sentinels {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns the setup in TSWGATE_REDIS_URL's form:
// redis://127.0.0.1:s1?addr=127.0.0.1:s2&addr=127.0.0.1:s3&master_name=tswmaster.
func (s *Sentinel) URL() string {
	return multiAddrURL(s.SentinelAddrs(), "master_name="+MasterName)
}

// Client returns a failover client (the master found through the
// sentinels) that is closed when the test ends. ContextTimeoutEnabled is
// set, so context deadlines bound its calls.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            MasterName,
		SentinelAddrs:         s.SentinelAddrs(),
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr returns the address of the master all sentinels agree on.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	var addr string
	err := poll(ctx, func() error {
		var err error
		addr, err = s.agreedMaster(ctx)
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: the sentinels do not agree on a master: %v%s", err, s.output())
	}
	return addr
}

// WaitReplicated waits until every write the master has acknowledged so
// far has reached the replica (a write on a connection of its own, then
// WAIT 1 on that connection: replication is in order). Writes made
// through any client before the call survive a later Failover.
func (s *Sentinel) WaitReplicated(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	addr := s.MasterAddr(tb)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, PoolSize: 1})
	defer c.Close()
	conn := c.Conn()
	defer conn.Close()
	if err := conn.Incr(ctx, "redistest:wait").Err(); err != nil {
		tb.Fatalf("redistest: writing to the master %s: %v", addr, err)
	}
	n, err := conn.Do(ctx, "WAIT", 1, 10000).Int()
	if err != nil || n < 1 {
		tb.Fatalf("redistest: WAIT 1 on the master %s = %d, %v: the replica did not acknowledge within 10s%s",
			addr, n, err, s.output())
	}
}

// Failover makes the sentinels promote the replica (SENTINEL FAILOVER, a
// planned failover: the old master is not stopped), and returns once every
// sentinel reports the promoted node as master and it accepts writes; this
// takes about a second.
//
// Sentinel reconfigures the old master as a replica of the new one only
// some 10 to 20 s later (it waits for 8 s of stable reports, then for its
// next INFO), and only then disconnects its clients; until then the old
// master still runs as a master, and its subscribers hear nothing. Before
// it asks, Failover waits until the replica is fit to be promoted, so a
// Failover soon after another waits that long first.
func (s *Sentinel) Failover(tb testing.TB) {
	tb.Helper()
	if err := s.failover(); err != nil {
		tb.Fatalf("redistest: Sentinel failover: %v%s", err, s.output())
	}
}

func (s *Sentinel) failover() error {
	// Twice the usual bound: the previous failover's old master may take
	// 20 s to be demoted and resynced.
	ctx, cancel := context.WithTimeout(context.Background(), 2*formTimeout)
	defer cancel()
	var old string
	if err := poll(ctx, func() error {
		var err error
		if old, err = s.agreedMaster(ctx); err != nil {
			return err
		}
		return s.healthy(ctx, old)
	}); err != nil {
		return fmt.Errorf("before the failover: %w", err)
	}
	next := s.data[0].Addr()
	if next == old {
		next = s.data[1].Addr()
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].Addr(), ContextTimeoutEnabled: true})
	defer sc.Close()
	if err := poll(ctx, func() error { return sc.Failover(ctx, MasterName).Err() }); err != nil {
		return fmt.Errorf("SENTINEL FAILOVER %s: %w", MasterName, err)
	}
	if err := poll(ctx, func() error {
		got, err := s.agreedMaster(ctx)
		if err != nil {
			return err
		}
		if got != next {
			return fmt.Errorf("the sentinels report %s as master, want %s", got, next)
		}
		return isMaster(ctx, next)
	}); err != nil {
		return fmt.Errorf("after SENTINEL FAILOVER %s (from %s to %s): %w", MasterName, old, next, err)
	}
	return nil
}

// agreedMaster returns the master address every sentinel reports, or an
// error when they differ or one cannot answer.
func (s *Sentinel) agreedMaster(ctx context.Context) (string, error) {
	var addrs []string
	for _, n := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		sc.Close()
		if err != nil {
			return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME: %w", n.Addr(), err)
		}
		if len(hp) != 2 {
			return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME = %q", n.Addr(), hp)
		}
		addrs = append(addrs, hp[0]+":"+hp[1])
	}
	slices.Sort(addrs)
	if addrs[0] != addrs[len(addrs)-1] {
		return "", fmt.Errorf("the sentinels disagree on the master: %v", addrs)
	}
	if addrs[0] != s.data[0].Addr() && addrs[0] != s.data[1].Addr() {
		return "", fmt.Errorf("the sentinels report %s as master, which is not a node of the setup", addrs[0])
	}
	return addrs[0], nil
}

// healthy checks that every sentinel sees master as a master without
// trouble, the other two sentinels, and the other data node as a linked
// replica that could be promoted.
func (s *Sentinel) healthy(ctx context.Context, master string) error {
	replica := s.data[0].Addr()
	if replica == master {
		replica = s.data[1].Addr()
	}
	if err := replicaLinked(ctx, replica); err != nil {
		return err
	}
	for _, n := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		err := func() error {
			m, err := sc.Master(ctx, MasterName).Result()
			if err != nil {
				return fmt.Errorf("SENTINEL MASTER: %w", err)
			}
			if got := m["ip"] + ":" + m["port"]; got != master {
				return fmt.Errorf("master is %s, want %s", got, master)
			}
			if m["flags"] != "master" || m["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1) {
				return fmt.Errorf("master flags %q, %s other sentinels; want flags master and %d others",
					m["flags"], m["num-other-sentinels"], len(s.sentinels)-1)
			}
			reps, err := sc.Replicas(ctx, MasterName).Result()
			if err != nil {
				return fmt.Errorf("SENTINEL REPLICAS: %w", err)
			}
			for _, r := range reps {
				if r["ip"]+":"+r["port"] == replica {
					if r["flags"] != "slave" || r["master-link-status"] != "ok" {
						return fmt.Errorf("replica %s has flags %q and link %q, want slave and ok",
							replica, r["flags"], r["master-link-status"])
					}
					return nil
				}
			}
			return fmt.Errorf("replica %s is not known", replica)
		}()
		sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", n.Addr(), err)
		}
	}
	return nil
}

// replicaLinked checks that the server at addr is a replica whose link to
// its master is up.
func replicaLinked(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	f := infoFields(info)
	if f["role"] != "slave" || f["master_link_status"] != "up" {
		return fmt.Errorf("%s has role %q and master link %q, want slave and up", addr, f["role"], f["master_link_status"])
	}
	return nil
}

// isMaster checks that the server at addr is a master.
func isMaster(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	if role := infoFields(info)["role"]; role != "master" {
		return fmt.Errorf("%s has role %q, want master", addr, role)
	}
	return nil
}

// Stop kills every server and sentinel and waits for them to exit.
// Stopping a stopped setup does nothing.
func (s *Sentinel) Stop() {
	for _, n := range s.sentinels {
		n.stop()
	}
	for _, n := range s.data {
		if n != nil {
			n.stop()
		}
	}
}

func (s *Sentinel) output() string {
	nodes := slices.Clone(s.sentinels)
	for _, n := range s.data {
		if n != nil {
			nodes = append(nodes, n)
		}
	}
	return nodesOutput(nodes)
}
