package devtool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Bed is the set-up the replica tools (tswlag, tswrate) share: a temporary
// directory, the child processes, a tswgate binary, a throwaway
// redis-server and the stand-in API, with an admin key and a pepper for
// the replicas to share.
type Bed struct {
	Dir         string
	Procs       *Procs
	Bin         string
	Redis       *RedisServer
	UpstreamURL string
	AdminKey    string
	Pepper      string
	stopUp      func()
}

// NewBed sets up a Bed for tool (its name, for messages and the temporary
// directory), with the prebuilt tswgate binary or a fresh build. Close it
// to stop every child and remove the directory.
func NewBed(ctx context.Context, tool, prebuilt string, logf func(format string, args ...any)) (_ *Bed, err error) {
	b := &Bed{AdminKey: RandomHex(32), Pepper: RandomHex(32)}
	if b.Dir, err = os.MkdirTemp("", tool+"-"); err != nil {
		return nil, err
	}
	b.Procs = NewProcs(b.Dir)
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.Bin, err = GatewayBinary(ctx, tool, prebuilt, b.Dir, logf); err != nil {
		return nil, err
	}
	redisDir := filepath.Join(b.Dir, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		return nil, err
	}
	if b.Redis, err = StartRedis(ctx, b.Procs, redisDir); err != nil {
		return nil, err
	}
	logf("redis-server on %s", b.Redis.URL())
	if b.UpstreamURL, b.stopUp, err = StartStandin(0); err != nil {
		return nil, err
	}
	return b, nil
}

// Env is the environment every replica shares: the Redis, the stand-in
// upstream, the admin key and pepper, warnings only in its log; extra
// settings come after (they win).
func (b *Bed) Env(extra ...string) []string {
	return append([]string{
		"TSWGATE_REDIS_URL=" + b.Redis.URL(),
		"TSWGATE_ADMIN_KEY=" + b.AdminKey,
		"TSWGATE_PEPPER=" + b.Pepper,
		"TSWGATE_UPSTREAM_URL=" + b.UpstreamURL,
		"TSWGATE_LOG_LEVEL=warn",
	}, extra...)
}

// StartReplica starts `tswgate serve` number n (1-based) with env, on its
// own data directory and free loopback ports, and waits until it is ready.
func (b *Bed) StartReplica(ctx context.Context, n int, env []string) (*Gateway, error) {
	return StartGateway(ctx, b.Procs, GatewaySpec{
		Name: fmt.Sprintf("tswgate-%d", n), Argv: []string{b.Bin, "serve"},
		DataDir: filepath.Join(b.Dir, fmt.Sprintf("data-%d", n)), Env: env,
	})
}

// Close stops every child and removes the directory.
func (b *Bed) Close() {
	if b.stopUp != nil {
		b.stopUp()
	}
	b.Procs.StopAll(3 * time.Second)
	_ = os.RemoveAll(b.Dir)
}
