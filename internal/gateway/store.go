package gateway

// Phase 1: the token store and the secrets.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/config"
)

// Files the embedded default keeps in the data dir. The token CLI reads
// the admin key from AdminKeyFile when TSWGATE_ADMIN_KEY is not set.
const (
	storeFile    = "tokens.json"
	pepperFile   = "pepper"
	AdminKeyFile = "admin.key"
)

// Both stores are activity stores.
var (
	_ auth.ActivityStore = (*filestore.Store)(nil)
	_ auth.ActivityStore = (*redisstore.Store)(nil)
)

// openStore opens the embedded store in the data dir, or the Redis store
// when TSWGATE_REDIS_URL is set.
func (g *Gateway) openStore() error {
	c := g.cfg
	if c.RedisURL == "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("TSWGATE_DATA_DIR: cannot create %q: %w", c.DataDir, err)
		}
		st, err := filestore.Open(filestore.Options{
			Path:             filepath.Join(c.DataDir, storeFile),
			RevokedRetention: c.RevokedRetention,
			Logger:           g.log,
			AuditMaxEvents:   c.AuditMaxEvents,
		})
		if err != nil {
			return fmt.Errorf("embedded token store: %w", err)
		}
		g.store = st
		return nil
	}
	uo, err := redisOptions(c)
	if err != nil {
		return err
	}
	// go-redis logs failed dials (every one, during an outage) through its
	// own logger; send them to ours at debug level: the gateway reports
	// outages itself (store_unavailable, /readyz, the limiter's fallback).
	redis.SetLogger(redisLogger{g.log.With(slog.String("component", "go-redis"))})
	g.rdb = redis.NewUniversalClient(uo)
	st, err := redisstore.New(redisstore.Options{
		Client:           g.rdb,
		Prefix:           c.RedisPrefix,
		RevokedRetention: c.RevokedRetention,
		Timeout:          c.StoreTimeout,
		Logger:           g.log,
		AuditMaxEvents:   c.AuditMaxEvents,
	})
	if err != nil {
		return fmt.Errorf("redis token store: %w", err)
	}
	g.store = st
	return nil
}

// redisOptions maps TSWGATE_REDIS_URL and the store timeout onto go-redis's
// options: one address, Sentinel or Cluster.
func redisOptions(c config.Config) (*redis.UniversalOptions, error) {
	t, err := config.ParseRedisURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("TSWGATE_REDIS_URL: %w", err)
	}
	uo := &redis.UniversalOptions{
		Addrs:         t.Addrs,
		Username:      t.Username,
		Password:      t.Password,
		DB:            t.DB,
		MasterName:    t.MasterName,
		IsClusterMode: t.Cluster,
		// Without it go-redis ignores context deadlines on reads, and
		// TSWGATE_STORE_TIMEOUT would not bound a call to a hung Redis.
		ContextTimeoutEnabled: true,
		DialTimeout:           2 * time.Second,
		ReadTimeout:           c.StoreTimeout * 5,
		WriteTimeout:          c.StoreTimeout * 5,
		PoolTimeout:           c.StoreTimeout * 5,
	}
	if t.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return uo, nil
}

// redisLogger sends go-redis's own log lines to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

func (g *Gateway) storeKind() string {
	if g.rdb != nil {
		return "redis"
	}
	return "embedded"
}

// loadSecrets sets up the pepper and the admin key: from configuration, or
// (embedded store only) from files in the data dir, created on first start.
func (g *Gateway) loadSecrets() error {
	c := g.cfg
	pepper := c.Pepper
	if pepper == "" {
		var err error
		if pepper, _, err = readOrCreateSecret(filepath.Join(c.DataDir, pepperFile)); err != nil {
			return fmt.Errorf("TSWGATE_PEPPER: %w", err)
		}
	}
	old := make([][]byte, 0, len(c.OldPeppers))
	for _, p := range c.OldPeppers {
		old = append(old, []byte(p))
	}
	h, err := auth.NewHasher([]byte(pepper), old...)
	if err != nil {
		return fmt.Errorf("TSWGATE_PEPPER: %w", err)
	}
	g.hasher = h
	g.adminKey = c.AdminKey
	if g.adminKey == "" {
		path := filepath.Join(c.DataDir, AdminKeyFile)
		key, created, err := readOrCreateSecret(path)
		if err != nil {
			return fmt.Errorf("TSWGATE_ADMIN_KEY: %w", err)
		}
		g.adminKey, g.AdminKeyPath = key, path
		verb := "using the"
		if created {
			verb = "generated a new"
		}
		g.log.Info(verb+" admin key, kept in a file readable only by this user", slog.String("path", path))
	}
	return nil
}

// readOrCreateSecret reads a secret file, or creates it (mode 0600) with
// 32 random bytes in hex.
func readOrCreateSecret(path string) (secret string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", false, fmt.Errorf("%s holds %d characters, want at least 32; delete it to have a new one made", path, len(s))
		}
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("generating %s: %w", path, err)
	}
	s := hex.EncodeToString(raw[:])
	if err := writeSecret(path, s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// writeSecret creates path (mode 0600, failing if it exists) holding s.
func writeSecret(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := io.WriteString(f, s+"\n"); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// CreateToken makes a token directly in the store (for quickstart),
// records its creation in the project's audit trail as the token API
// does, with actor kind "system" and "by <by>" in the detail, and returns
// its credential: show it once, never log it.
func (g *Gateway) CreateToken(ctx context.Context, project int64, role auth.Role, name, by string) (string, error) {
	id, cred, err := g.hasher.NewCredential()
	if err != nil {
		return "", err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	tok := &auth.Token{
		ID: id, ProjectID: project, Name: name, Role: role,
		Status: auth.StatusActive, CreatedAt: now,
	}
	tok.SecretHash, tok.PepperID = g.hasher.Hash(cred)
	if err := g.store.Create(ctx, tok); err != nil {
		return "", err
	}
	g.valid.Invalidate(id)
	g.log.LogAttrs(ctx, slog.LevelInfo, "token.create", slog.String("token_id", id),
		slog.Int64("project_id", project), slog.String("role", role.String()),
		slog.String("actor_kind", auth.ActorSystem), slog.String("detail", "by "+by))
	ev := auth.AuditEvent{
		Time: now, Action: "token.create", ActorKind: auth.ActorSystem,
		ProjectID: project, TokenID: id, Outcome: auth.OutcomeOK,
		Detail: fmt.Sprintf("%s token %q, by %s", role, name, by),
	}
	if err := g.store.AppendAudit(ctx, &ev); err != nil {
		return "", fmt.Errorf("recording the creation of %s in the audit trail: %w", id, err)
	}
	return cred, nil
}
