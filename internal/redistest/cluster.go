package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/internal/freeport"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// formTimeout bounds how long forming a topology (a cluster agreeing on its
// slots, sentinels discovering each other) may take.
const formTimeout = 30 * time.Second

// Cluster is a Redis Cluster of masters only (no replicas), each a
// redis-server on a free loopback port with its own cluster bus port. It is
// formed with CLUSTER ADDSLOTSRANGE and CLUSTER MEET, without redis-cli.
type Cluster struct {
	nodes []*node
}

// StartCluster starts a Redis Cluster of masters nodes, each owning an equal
// share of the slots, waits until every node reports cluster_state:ok and
// knows every other, and stops it when the test ends. It fails the test
// (never skips it) when redis-server is not installed.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	c, err := LaunchCluster(masters, tb.TempDir())
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// LaunchCluster is StartCluster for callers without a test (a TestMain
// sharing one cluster between tests): the servers keep their files in
// dir, and the caller must call Stop.
func LaunchCluster(masters int, dir string) (_ *Cluster, err error) {
	if masters < 1 || masters > clusterSlots {
		return nil, fmt.Errorf("a cluster needs 1 to %d masters, not %d", clusterSlots, masters)
	}
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	for i := range masters {
		ndir := filepath.Join(dir, fmt.Sprintf("cluster-node%d", i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return nil, err
		}
		n, err := launchNode(bin, ndir, func(port int, reserve func() (int, error)) ([]string, error) {
			bus, err := reserve()
			if err != nil {
				return nil, err
			}
			return append(serverArgs(port, ndir),
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(ndir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-node-timeout", "5000",
			), nil
		})
		if err != nil {
			return nil, fmt.Errorf("starting cluster node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.form(); err != nil {
		return nil, fmt.Errorf("forming a cluster of %d masters: %w%s", masters, err, c.output())
	}
	return c, nil
}

// form assigns the slots and introduces the nodes to each other, then waits
// until every node sees the whole cluster.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		defer clients[i].Close()
	}
	// Epochs first: distinct ones up front spare the nodes the collision
	// resolution that would otherwise delay agreement.
	for i, cl := range clients {
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("CLUSTER SET-CONFIG-EPOCH on %s: %w", c.nodes[i].Addr(), err)
		}
	}
	// Then the introductions, every pair directly (gossip alone spreads
	// news of a third node about once a second), and the slots only once
	// every node is connected to every other (assigning them first made
	// forming take up to 10 s). What remains is Redis's own 2 s wait
	// before a fresh master turns writable.
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			if err := clients[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", b.port, b.busPort).Err(); err != nil {
				return fmt.Errorf("CLUSTER MEET %s from %s: %w", b.Addr(), a.Addr(), err)
			}
		}
	}
	if err := poll(ctx, func() error {
		for i, cl := range clients {
			if err := clusterConnected(ctx, cl, len(c.nodes)); err != nil {
				return fmt.Errorf("node %s: %w", c.nodes[i].Addr(), err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	per := clusterSlots / len(c.nodes)
	for i, cl := range clients {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.nodes)-1 {
			hi = clusterSlots - 1
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", lo, hi, c.nodes[i].Addr(), err)
		}
	}
	return poll(ctx, func() error {
		for i, cl := range clients {
			if err := clusterReady(ctx, cl, len(c.nodes)); err != nil {
				return fmt.Errorf("node %s: %w", c.nodes[i].Addr(), err)
			}
		}
		return nil
	})
}

// clusterReady checks that the node of cl reports the whole cluster: state
// ok, every slot assigned, every node known and connected.
func clusterReady(ctx context.Context, cl *redis.Client, nodes int) error {
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER INFO: %w", err)
	}
	fields := infoFields(info)
	for _, kv := range [][2]string{
		{"cluster_state", "ok"},
		{"cluster_slots_assigned", strconv.Itoa(clusterSlots)},
		{"cluster_slots_ok", strconv.Itoa(clusterSlots)},
		{"cluster_known_nodes", strconv.Itoa(nodes)},
		{"cluster_size", strconv.Itoa(nodes)},
	} {
		if fields[kv[0]] != kv[1] {
			return fmt.Errorf("CLUSTER INFO has %s:%s, want %s", kv[0], fields[kv[0]], kv[1])
		}
	}
	return clusterConnected(ctx, cl, nodes)
}

// clusterConnected checks that the node of cl knows nodes nodes (itself
// included) and is connected to each.
func clusterConnected(ctx context.Context, cl *redis.Client, nodes int) error {
	lines, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER NODES: %w", err)
	}
	ls := strings.Split(strings.TrimSpace(lines), "\n")
	if len(ls) != nodes {
		return fmt.Errorf("CLUSTER NODES lists %d nodes, want %d:\n%s", len(ls), nodes, lines)
	}
	for _, l := range ls {
		f := strings.Fields(l)
		// <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
		if len(f) < 8 || f[7] != "connected" || !strings.Contains(f[2], "master") ||
			strings.Contains(f[2], "fail") || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") {
			return fmt.Errorf("CLUSTER NODES line %q: want a connected master", l)
		}
	}
	return nil
}

// Addrs returns the "127.0.0.1:port" addresses of the nodes.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns the cluster in TSWGATE_REDIS_URL's form:
// redis://127.0.0.1:p1?addr=127.0.0.1:p2&addr=127.0.0.1:p3&cluster=true.
func (c *Cluster) URL() string {
	return multiAddrURL(c.Addrs(), "cluster=true")
}

// Client returns a cluster client of the nodes that is closed when the test
// ends. ContextTimeoutEnabled is set, so context deadlines bound its calls.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Stop kills every node and waits for them to exit. Stopping a stopped
// cluster does nothing.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

func (c *Cluster) output() string { return nodesOutput(c.nodes) }

// multiAddrURL is redis://first?addr=second&addr=...&param.
func multiAddrURL(addrs []string, param string) string {
	var b strings.Builder
	b.WriteString("redis://" + addrs[0] + "?")
	for _, a := range addrs[1:] {
		b.WriteString("addr=" + a + "&")
	}
	b.WriteString(param)
	return b.String()
}

// nodeArgs makes the arguments of a node for its port (and may write a
// configuration file); reserve reserves another port for the node, held
// as long as its port.
type nodeArgs func(port int, reserve func() (int, error)) ([]string, error)

// node is one redis-server process of a Cluster or a Sentinel setup,
// started with the arguments its args function makes.
type node struct {
	bin     string
	dir     string
	args    nodeArgs
	port    int
	busPort int // cluster bus port, 0 outside a cluster

	mu   sync.Mutex
	proc *process // nil when stopped
	// held are the node's reserved ports (see package freeport), released
	// when it stops for good.
	held []*freeport.Port
}

func serverBinary() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found in PATH (%v): install it, e.g. `apt-get install redis-server`", err)
	}
	return bin, nil
}

// serverArgs are the arguments of every data node: loopback only, no
// persistence, quiet.
func serverArgs(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}
}

// launchNode starts a node on a free port, trying other ports when it does
// not come up.
func launchNode(bin, dir string, args nodeArgs) (*node, error) {
	n := &node{bin: bin, dir: dir, args: args}
	var errs []error
	for range startAttempts {
		port, err := n.reserve()
		if err != nil {
			return nil, err
		}
		n.port = port
		if err := n.start(); err != nil {
			n.release()
			errs = append(errs, err)
			continue
		}
		return n, nil
	}
	return nil, fmt.Errorf("redis-server failed %d times: %w", startAttempts, errors.Join(errs...))
}

// Addr is the node's "127.0.0.1:port".
func (n *node) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// start runs the node on n.port and waits until it answers PING.
func (n *node) start() error {
	if n.port == 6379 {
		return errors.New("refusing to use the default Redis port 6379")
	}
	argv, err := n.args(n.port, n.reserve)
	if err != nil {
		return err
	}
	for i, a := range argv {
		if a == "--cluster-port" && i+1 < len(argv) {
			n.busPort, _ = strconv.Atoi(argv[i+1])
		}
	}
	out := &syncBuffer{}
	cmd := exec.Command(n.bin, argv...)
	cmd.Dir = n.dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", n.bin, err)
	}
	p := &process{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(n.Addr()); err != nil {
		p.kill()
		return fmt.Errorf("port %d: %w; server output:\n%s", n.port, err, out.String())
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return nil
}

// reserve reserves a free port for the node.
func (n *node) reserve() (int, error) {
	p, err := freeport.Reserve()
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	n.mu.Lock()
	n.held = append(n.held, p)
	n.mu.Unlock()
	return p.Num(), nil
}

// release gives back the node's reserved ports.
func (n *node) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.held {
		_ = p.Release()
	}
	n.held = nil
}

// stop kills the node, waits for it to exit and gives back its ports; it
// is not started again. Stopping a stopped node does nothing.
func (n *node) stop() {
	defer n.release()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	n.proc.kill()
	n.proc = nil
}

// output is the node's log, for failure messages.
func (n *node) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return ""
	}
	return n.proc.output.String()
}

func nodesOutput(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		if out := strings.TrimSpace(n.output()); out != "" {
			fmt.Fprintf(&b, "\n--- %s:\n%s", n.Addr(), out)
		}
	}
	return b.String()
}

// poll calls check until it returns nil or ctx is done, with a short
// growing pause between calls; it returns check's last error.
func poll(ctx context.Context, check func() error) error {
	delay := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within the deadline: %w", err)
		case <-time.After(delay): // bounded backoff between polls
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// infoFields parses the "key:value" lines of INFO or CLUSTER INFO.
func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			m[k] = v
		}
	}
	return m
}
