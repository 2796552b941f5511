package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Secrets used by the tests; long enough to be valid.
const (
	adminKey = "admin-key-0123456789abcdefghijklmnopqrstuvwxyz"
	pepper   = "pepper-0123456789abcdefghijklmnopqrstuvwxyz"
	pepperA  = "old-pepper-A-0123456789abcdefghijklmnopqrstuvwxyz"
	pepperB  = "old-pepper-B-0123456789abcdefghijklmnopqrstuvwxyz"
	redisPW  = "redis-Pa55word-do-not-leak"
)

// errLines returns the individual problems of an error from Load or
// Validate.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// wantErrs fails unless err holds every one of want (as substrings), and
// exactly len(want) problems.
func wantErrs(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q; got:\n%s", w, msg)
		}
	}
	if got := errLines(err); len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), msg)
	}
}

func TestDefaultsValid(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
	c, err := Load("", []string{"PATH=/bin", "HOME=/root"})
	if err != nil {
		t.Fatalf("Load with empty environment: %v", err)
	}
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Load with empty environment = %v, want Defaults() = %v", c, d)
	}
	u, err := d.Upstream()
	if err != nil || u.String() != "https://api.tsw.io" {
		t.Errorf("Upstream() = %v, %v", u, err)
	}
	// Spot-check the documented defaults.
	if d.ListenAddr != ":8080" || d.AdminAddr != "127.0.0.1:8081" || d.MetricsAddr != ":9090" ||
		d.CacheTTL != 10*time.Second || d.NegativeCacheTTL != 2*time.Second || d.CacheMaxEntries != 100000 ||
		d.StaleIfError != 30*time.Second || d.StoreTimeout != 100*time.Millisecond ||
		d.RevokedRetention != 720*time.Hour || d.MaxBodyScan != 1<<20 || d.MaxHeaderBytes != 65536 ||
		d.ReadHeaderTimeout != 10*time.Second || d.ReadTimeout != 60*time.Second ||
		d.WriteTimeout != 120*time.Second || d.IdleTimeout != 120*time.Second ||
		d.UpstreamTimeout != 60*time.Second || d.ShutdownTimeout != 20*time.Second ||
		d.LogLevel != "info" || d.LogFormat != "json" || d.RedisPrefix != "tswgate:" ||
		d.DataDir != "tswgate-data" || d.RedisURL != "" || d.AdminKey != "" || d.Pepper != "" ||
		d.PassAuthorization || d.RateOwner != 0 || d.BurstOwner != 0 {
		t.Errorf("unexpected defaults: %v", d)
	}
}

func TestEnvSetsEveryField(t *testing.T) {
	tests := []struct {
		env, value string
		extra      []string // other variables needed for a valid config
		set        func(c *Config)
	}{
		{"TSWGATE_LISTEN_ADDR", "127.0.0.1:9000", nil, func(c *Config) { c.ListenAddr = "127.0.0.1:9000" }},
		{"TSWGATE_ADMIN_ADDR", "", nil, func(c *Config) { c.AdminAddr = "" }},
		{"TSWGATE_METRICS_ADDR", "[::1]:9191", nil, func(c *Config) { c.MetricsAddr = "[::1]:9191" }},
		{"TSWGATE_CONSOLE", "false", nil, func(c *Config) { c.Console = false }},
		{"TSWGATE_UPSTREAM_URL", "http://localhost:4000/v2", nil, func(c *Config) { c.UpstreamURL = "http://localhost:4000/v2" }},
		{"TSWGATE_REDIS_URL", "redis://redis:6379/2", []string{"TSWGATE_ADMIN_KEY=" + adminKey, "TSWGATE_PEPPER=" + pepper}, func(c *Config) {
			c.RedisURL, c.AdminKey, c.Pepper = "redis://redis:6379/2", adminKey, pepper
		}},
		{"TSWGATE_DATA_DIR", "/var/lib/tswgate", nil, func(c *Config) { c.DataDir = "/var/lib/tswgate" }},
		{"TSWGATE_ADMIN_KEY", adminKey, nil, func(c *Config) { c.AdminKey = adminKey }},
		{"TSWGATE_PEPPER", pepper, nil, func(c *Config) { c.Pepper = pepper }},
		{"TSWGATE_OLD_PEPPERS", pepperA + ", " + pepperB + ",", nil, func(c *Config) { c.OldPeppers = []string{pepperA, pepperB} }},
		{"TSWGATE_CACHE_TTL", "1m", nil, func(c *Config) { c.CacheTTL = time.Minute }},
		{"TSWGATE_NEGATIVE_CACHE_TTL", "500ms", nil, func(c *Config) { c.NegativeCacheTTL = 500 * time.Millisecond }},
		{"TSWGATE_CACHE_MAX_ENTRIES", "5000", nil, func(c *Config) { c.CacheMaxEntries = 5000 }},
		{"TSWGATE_STALE_IF_ERROR", "0s", nil, func(c *Config) { c.StaleIfError = 0 }},
		{"TSWGATE_STORE_TIMEOUT", "250ms", nil, func(c *Config) { c.StoreTimeout = 250 * time.Millisecond }},
		{"TSWGATE_REVOKED_RETENTION", "24h", nil, func(c *Config) { c.RevokedRetention = 24 * time.Hour }},
		{"TSWGATE_PASS_AUTHORIZATION", "true", nil, func(c *Config) { c.PassAuthorization = true }},
		{"TSWGATE_MAX_BODY_SCAN", "4096", nil, func(c *Config) { c.MaxBodyScan = 4096 }},
		{"TSWGATE_MAX_HEADER_BYTES", "8192", nil, func(c *Config) { c.MaxHeaderBytes = 8192 }},
		{"TSWGATE_MAX_CONNECTIONS", "500", nil, func(c *Config) { c.MaxConnections = 500 }},
		{"TSWGATE_READ_HEADER_TIMEOUT", "3s", nil, func(c *Config) { c.ReadHeaderTimeout = 3 * time.Second }},
		{"TSWGATE_READ_TIMEOUT", "30s", nil, func(c *Config) { c.ReadTimeout = 30 * time.Second }},
		{"TSWGATE_WRITE_TIMEOUT", "45s", nil, func(c *Config) { c.WriteTimeout = 45 * time.Second }},
		{"TSWGATE_IDLE_TIMEOUT", "90s", nil, func(c *Config) { c.IdleTimeout = 90 * time.Second }},
		{"TSWGATE_UPSTREAM_TIMEOUT", "15s", nil, func(c *Config) { c.UpstreamTimeout = 15 * time.Second }},
		{"TSWGATE_SHUTDOWN_TIMEOUT", "5s", nil, func(c *Config) { c.ShutdownTimeout = 5 * time.Second }},
		{"TSWGATE_SHUTDOWN_DELAY", "3s", nil, func(c *Config) { c.ShutdownDelay = 3 * time.Second }},
		{"TSWGATE_RATE_OWNER", "2.5", nil, func(c *Config) { c.RateOwner, c.BurstOwner = 2.5, 3 }}, // burst derived
		{"TSWGATE_BURST_OWNER", "7", []string{"TSWGATE_RATE_OWNER=5"}, func(c *Config) { c.RateOwner, c.BurstOwner = 5, 7 }},
		{"TSWGATE_RATE_ACCOUNTING", "0.5", nil, func(c *Config) { c.RateAccounting, c.BurstAccounting = 0.5, 1 }},
		{"TSWGATE_BURST_ACCOUNTING", "2", []string{"TSWGATE_RATE_ACCOUNTING=1"}, func(c *Config) { c.RateAccounting, c.BurstAccounting = 1, 2 }},
		{"TSWGATE_RATELIMIT_SCOPE", "Replica", nil, func(c *Config) { c.RateLimitScope = "replica" }},
		{"TSWGATE_RATELIMIT_LEASE", "250ms", nil, func(c *Config) { c.RateLimitLease = 250 * time.Millisecond }},
		{"TSWGATE_RATELIMIT_ON_OUTAGE", "refuse", nil, func(c *Config) { c.RateLimitOnOutage = "refuse" }},
		{"TSWGATE_RATELIMIT_SHADOW_ROLES", "owner,accounting", nil, func(c *Config) { c.RateLimitShadowRoles = []string{"owner", "accounting"} }},
		{"TSWGATE_AUTH_FAILURE_RATE", "0", nil, func(c *Config) { c.AuthFailureRate = 0 }},
		{"TSWGATE_AUTH_FAILURE_BURST", "5", nil, func(c *Config) { c.AuthFailureBurst = 5 }},
		{"TSWGATE_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8", nil, func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"} }},
		{"TSWGATE_LOG_LEVEL", "DEBUG", nil, func(c *Config) { c.LogLevel = "debug" }},
		{"TSWGATE_LOG_FORMAT", "text", nil, func(c *Config) { c.LogFormat = "text" }},
		{"TSWGATE_ACCESS_LOG", "false", nil, func(c *Config) { c.AccessLog = false }},
		{"TSWGATE_METRICS_PROJECTS", "42, 7", nil, func(c *Config) { c.MetricsProjects = []string{"42", "7"} }},
		{"TSWGATE_METRICS_TOKENS", "tsw_AbCdEfGhIjKlMnOpQrSt", nil, func(c *Config) { c.MetricsTokens = []string{"tsw_AbCdEfGhIjKlMnOpQrSt"} }},
		{"TSWGATE_REDIS_PREFIX", "gw1:", nil, func(c *Config) { c.RedisPrefix = "gw1:" }},
		{"TSWGATE_USAGE_FLUSH_INTERVAL", "30s", nil, func(c *Config) { c.UsageFlushInterval = 30 * time.Second }},
		{"TSWGATE_EXPIRY_SWEEP_INTERVAL", "10s", nil, func(c *Config) { c.ExpirySweepInterval = 10 * time.Second }},
		{"TSWGATE_AUDIT_MAX_EVENTS", "500", nil, func(c *Config) { c.AuditMaxEvents = 500 }},
		{"TSWGATE_SELF_SERVICE", "false", nil, func(c *Config) { c.SelfService = false }},
		{"TSWGATE_MAX_TOKENS_PER_PROJECT", "50", nil, func(c *Config) { c.MaxTokensPerProject = 50 }},
		{"TSWGATE_TLS_CERT_FILE", "c.pem", []string{"TSWGATE_TLS_KEY_FILE=k.pem"}, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "c.pem", "k.pem" }},
		{"TSWGATE_TLS_KEY_FILE", "k.pem", []string{"TSWGATE_TLS_CERT_FILE=c.pem"}, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "c.pem", "k.pem" }},
		{"TSWGATE_HSTS_MAX_AGE", "8760h", nil, func(c *Config) { c.HSTSMaxAge = 8760 * time.Hour }},
		{"TSWGATE_H2C", "true", nil, func(c *Config) { c.H2C = true }},
		{"TSWGATE_FAST_PATH", "false", nil, func(c *Config) { c.FastPath = false }},
		{"TSWGATE_ADMIN_MTLS", "with_key", []string{"TSWGATE_ADMIN_CLIENT_CA=ca.pem", "TSWGATE_TLS_CERT_FILE=c.pem", "TSWGATE_TLS_KEY_FILE=k.pem"},
			func(c *Config) {
				c.AdminMTLS, c.AdminClientCA, c.TLSCertFile, c.TLSKeyFile = "with_key", "ca.pem", "c.pem", "k.pem"
			}},
		{"TSWGATE_ADMIN_CLIENT_CA", "ca.pem", nil, func(c *Config) { c.AdminClientCA = "ca.pem" }},
		{"TSWGATE_UPSTREAM_CA_FILE", "ca.pem", nil, func(c *Config) { c.UpstreamCAFile = "ca.pem" }},
		{"TSWGATE_UPSTREAM_CLIENT_CERT_FILE", "c.pem", []string{"TSWGATE_UPSTREAM_CLIENT_KEY_FILE=k.pem"}, func(c *Config) {
			c.UpstreamClientCertFile, c.UpstreamClientKeyFile = "c.pem", "k.pem"
		}},
		{"TSWGATE_UPSTREAM_CLIENT_KEY_FILE", "k.pem", []string{"TSWGATE_UPSTREAM_CLIENT_CERT_FILE=c.pem"}, func(c *Config) {
			c.UpstreamClientCertFile, c.UpstreamClientKeyFile = "c.pem", "k.pem"
		}},
		{"TSWGATE_ASSERTION", "false", nil, func(c *Config) { c.Assertion = false }},
		{"TSWGATE_ASSERTION_KEY_FILES", "a.pem,b.pem", nil, func(c *Config) { c.AssertionKeyFiles = []string{"a.pem", "b.pem"} }},
		{"TSWGATE_ASSERTION_TTL", "2m", nil, func(c *Config) { c.AssertionTTL = 2 * time.Minute }},
		{"TSWGATE_ASSERTION_ISSUER", "https://gw.example", nil, func(c *Config) { c.AssertionIssuer = "https://gw.example" }},
		{"TSWGATE_OTLP_ENDPOINT", "http://otel:4318", nil, func(c *Config) { c.OTLPEndpoint = "http://otel:4318" }},
		{"TSWGATE_TRACE_SAMPLE_RATIO", "0.5", nil, func(c *Config) { c.TraceSampleRatio = 0.5 }},
		{"TSWGATE_WEBHOOKS", "false", nil, func(c *Config) { c.Webhooks = false }},
		{"TSWGATE_WEBHOOK_PRIVATE_OPERATOR", "false", nil, func(c *Config) { c.WebhookPrivateOperator = false }},
		{"TSWGATE_WEBHOOK_RATE_LIMITED_THRESHOLD", "5", nil, func(c *Config) { c.WebhookRateLimitedThreshold = 5 }},
		{"TSWGATE_WEBHOOK_MAX_PENDING", "50", nil, func(c *Config) { c.WebhookMaxPending = 50 }},
		{"TSWGATE_WEBHOOK_MAX_PENDING_PER_PROJECT", "5", nil, func(c *Config) { c.WebhookMaxPendingPerProject = 5 }},
		{"TSWGATE_SECRET_SCANNING_KEYS", "keys.json", nil, func(c *Config) { c.SecretScanningKeys = "keys.json" }},
		{"TSWGATE_PUBLIC_REVOKE", "false", nil, func(c *Config) { c.PublicRevoke = false }},
	}

	tested := make(map[string]bool)
	for _, tt := range tests {
		tested[tt.env] = true
		t.Run(tt.env, func(t *testing.T) {
			environ := append([]string{tt.env + "=" + tt.value}, tt.extra...)
			got, err := Load("", environ)
			if err != nil {
				t.Fatalf("Load(%q): %v", environ, err)
			}
			want := Defaults()
			tt.set(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q):\n got %#v\nwant %#v", environ, got, want)
			}
		})
	}
	for _, s := range Settings() {
		if !tested[s.Env] {
			t.Errorf("%s has no case in TestEnvSetsEveryField", s.Env)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tswgate.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileAndEnvPrecedence(t *testing.T) {
	path := writeFile(t, `{
		"listen_addr": ":7000",
		"metrics_addr": "",
		"cache_ttl": "30s",
		"max_body_scan": 2048,
		"pass_authorization": true,
		"rate_owner": 4,
		"old_peppers": ["`+pepperA+`"],
		"log_level": "warn"
	}`)
	environ := []string{
		"TSWGATE_LISTEN_ADDR=:7001", // overrides the file
		"TSWGATE_LOG_LEVEL=error",   // overrides the file
		"TSWGATE_STORE_TIMEOUT=1s",  // not in the file
	}
	check := func(t *testing.T, c Config) {
		t.Helper()
		want := Defaults()
		want.ListenAddr = ":7001"
		want.MetricsAddr = ""
		want.CacheTTL = 30 * time.Second
		want.MaxBodyScan = 2048
		want.PassAuthorization = true
		want.RateOwner, want.BurstOwner = 4, 4
		want.OldPeppers = []string{pepperA}
		want.LogLevel = "error"
		want.StoreTimeout = time.Second
		if !reflect.DeepEqual(c, want) {
			t.Errorf("got  %v\nwant %v", c, want)
		}
	}

	t.Run("path argument", func(t *testing.T) {
		c, err := Load(path, environ)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("TSWGATE_CONFIG", func(t *testing.T) {
		c, err := Load("", append(environ, FileEnv+"="+path))
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("path argument wins over TSWGATE_CONFIG", func(t *testing.T) {
		c, err := Load(path, append(environ, FileEnv+"=/does/not/exist.json"))
		if err != nil {
			t.Fatal(err)
		}
		check(t, c)
	})
	t.Run("first duplicate wins", func(t *testing.T) {
		c, err := Load("", []string{"TSWGATE_LOG_LEVEL=warn", "TSWGATE_LOG_LEVEL=bogus"})
		if err != nil || c.LogLevel != "warn" {
			t.Errorf("LogLevel = %q, %v; want warn", c.LogLevel, err)
		}
	})
}

func TestMultipleErrorsAtOnce(t *testing.T) {
	_, err := Load("", []string{
		"TSWGATE_CACHE_TTL=10",
		"TSWGATE_MAX_BODY_SCAN=1.5",
		"TSWGATE_PASS_AUTHORIZATION=yes please",
		"TSWGATE_RATE_OWNER=fast",
		"TSWGATE_LISTEN_ADDR=8080",
		"TSWGATE_UPSTREAM_URL=ftp://api.tsw.io",
		"TSWGATE_REDIS_URL=redis://redis:6379",
		"TSWGATE_NEGATIVE_CACHE_TTL=1m",
		"TSWGATE_CACHE_MAX_ENTRIES=10",
		"TSWGATE_STORE_TIMEOUT=11s",
		"TSWGATE_REVOKED_RETENTION=30s",
		"TSWGATE_MAX_HEADER_BYTES=100",
		"TSWGATE_MAX_CONNECTIONS=2000000",
		"TSWGATE_WRITE_TIMEOUT=0s",
		"TSWGATE_STALE_IF_ERROR=-1s",
		"TSWGATE_LOG_FORMAT=xml",
		"TSWGATE_REDIS_PREFIX=has space",
		"TSWGATE_BURST_ACCOUNTING=5",
	})
	wantErrs(t, err,
		`TSWGATE_CACHE_TTL: "10" is not a duration; use a Go duration such as 10s or 500ms`,
		`TSWGATE_MAX_BODY_SCAN: "1.5" is not a whole number`,
		`TSWGATE_PASS_AUTHORIZATION: "yes please" is not a boolean; use true or false`,
		`TSWGATE_RATE_OWNER: "fast" is not a number`,
		`TSWGATE_LISTEN_ADDR: "8080" is not a host:port address`,
		`TSWGATE_UPSTREAM_URL: "ftp://api.tsw.io" must start with https:// or http://`,
		"TSWGATE_ADMIN_KEY: required when TSWGATE_REDIS_URL is set (replicas must share one admin key); set it to a random string of at least 32 characters",
		"TSWGATE_PEPPER: required when TSWGATE_REDIS_URL is set (replicas must share one pepper); set it to a random string of at least 32 characters",
		"TSWGATE_NEGATIVE_CACHE_TTL: 1m is longer than TSWGATE_CACHE_TTL (10s)",
		"TSWGATE_CACHE_MAX_ENTRIES: 10 is too small; use at least 100",
		"TSWGATE_STORE_TIMEOUT: 11s is too long; use at most 10s",
		"TSWGATE_REVOKED_RETENTION: 30s is too short; use at least 1m",
		"TSWGATE_MAX_HEADER_BYTES: 100 is too small; use at least 4096 bytes",
		"TSWGATE_MAX_CONNECTIONS: 2000000 is too large; use at most 1000000",
		"TSWGATE_WRITE_TIMEOUT: must be greater than 0",
		"TSWGATE_STALE_IF_ERROR: must not be negative",
		`TSWGATE_LOG_FORMAT: "xml" is not valid; use json or text`,
		`TSWGATE_REDIS_PREFIX: "has space" contains spaces`,
		"TSWGATE_BURST_ACCOUNTING: has no effect without TSWGATE_RATE_ACCOUNTING",
	)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Errorf("Load error %T does not unwrap into a list of errors", err)
	}
}

func TestValidateBounds(t *testing.T) {
	tests := []struct {
		name    string
		set     func(c *Config)
		wantErr string // "" means valid
	}{
		{"cache ttl max", func(c *Config) { c.CacheTTL = 10 * time.Minute }, ""},
		{"TLS cert without key", func(c *Config) { c.TLSCertFile = "c.pem" }, "TSWGATE_TLS_CERT_FILE: needs TSWGATE_TLS_KEY_FILE too; set both or neither"},
		{"TLS key without cert", func(c *Config) { c.TLSKeyFile = "k.pem" }, "TSWGATE_TLS_KEY_FILE: needs TSWGATE_TLS_CERT_FILE too"},
		{"admin mTLS without a CA", func(c *Config) { c.AdminMTLS = "instead_of_key" }, "TSWGATE_ADMIN_MTLS: instead_of_key needs TSWGATE_ADMIN_CLIENT_CA"},
		{"cache ttl over max", func(c *Config) { c.CacheTTL = 10*time.Minute + time.Second }, "TSWGATE_CACHE_TTL: 10m1s is too long; use at most 10m"},
		{"cache ttl zero", func(c *Config) { c.CacheTTL = 0 }, "TSWGATE_CACHE_TTL: must be greater than 0"},
		{"negative ttl equal", func(c *Config) { c.NegativeCacheTTL = c.CacheTTL }, ""},
		{"negative ttl zero", func(c *Config) { c.NegativeCacheTTL = 0 }, "TSWGATE_NEGATIVE_CACHE_TTL: must be greater than 0"},
		{"max entries min", func(c *Config) { c.CacheMaxEntries = 100 }, ""},
		{"store timeout max", func(c *Config) { c.StoreTimeout = 10 * time.Second }, ""},
		{"store timeout zero", func(c *Config) { c.StoreTimeout = 0 }, "TSWGATE_STORE_TIMEOUT: must be greater than 0"},
		{"retention min", func(c *Config) { c.RevokedRetention = time.Minute }, ""},
		{"body scan min", func(c *Config) { c.MaxBodyScan = 1024 }, ""},
		{"body scan under min", func(c *Config) { c.MaxBodyScan = 1023 }, "TSWGATE_MAX_BODY_SCAN: 1023 is too small; use at least 1024 bytes"},
		{"body scan max", func(c *Config) { c.MaxBodyScan = 64 << 20 }, ""},
		{"body scan over max", func(c *Config) { c.MaxBodyScan = 64<<20 + 1 }, "TSWGATE_MAX_BODY_SCAN: 67108865 is too large; use at most 67108864 bytes"},
		{"header bytes min", func(c *Config) { c.MaxHeaderBytes = 4096 }, ""},
		{"read header timeout zero", func(c *Config) { c.ReadHeaderTimeout = 0 }, "TSWGATE_READ_HEADER_TIMEOUT: must be greater than 0"},
		{"read timeout zero", func(c *Config) { c.ReadTimeout = 0 }, "TSWGATE_READ_TIMEOUT: must be greater than 0"},
		{"idle timeout zero", func(c *Config) { c.IdleTimeout = 0 }, "TSWGATE_IDLE_TIMEOUT: must be greater than 0"},
		{"upstream timeout zero", func(c *Config) { c.UpstreamTimeout = 0 }, "TSWGATE_UPSTREAM_TIMEOUT: must be greater than 0"},
		{"shutdown timeout zero", func(c *Config) { c.ShutdownTimeout = 0 }, "TSWGATE_SHUTDOWN_TIMEOUT: must be greater than 0"},
		{"negative rate", func(c *Config) { c.RateOwner = -1 }, "TSWGATE_RATE_OWNER: -1 is negative"},
		{"huge rate", func(c *Config) { c.RateAccounting = 1e300 }, "TSWGATE_RATE_ACCOUNTING: 1e+300 is too large"},
		{"negative burst", func(c *Config) { c.RateOwner, c.BurstOwner = 1, -1 }, "TSWGATE_BURST_OWNER: -1 is negative"},
		{"burst zero with rate", func(c *Config) { c.RateOwner = 1 }, ""}, // the limiter uses ceil(rate)
		{"ratelimit scope", func(c *Config) { c.RateLimitScope = "global" }, `TSWGATE_RATELIMIT_SCOPE: "global" is not valid; use cluster or replica`},
		{"ratelimit lease zero", func(c *Config) { c.RateLimitLease = 0 }, "TSWGATE_RATELIMIT_LEASE: 0s is too short; use at least 1ms"},
		{"ratelimit outage", func(c *Config) { c.RateLimitOnOutage = "open" }, `TSWGATE_RATELIMIT_ON_OUTAGE: "open" is not valid; use share or refuse`},
		{"shadow role", func(c *Config) { c.RateLimitShadowRoles = []string{"admin"} }, `TSWGATE_RATELIMIT_SHADOW_ROLES: entry 1 ("admin") is not a role (owner or accounting)`},
		{"trusted proxy address", func(c *Config) { c.TrustedProxies = []string{"10.1.2.3"} }, `TSWGATE_TRUSTED_PROXIES: entry 1 ("10.1.2.3") is an address, not a range; use 10.1.2.3/32`},
		{"trusted proxy junk", func(c *Config) { c.TrustedProxies = []string{"lb"} }, `TSWGATE_TRUSTED_PROXIES: entry 1 ("lb") is not a CIDR range; use e.g. 10.0.0.0/8`},
		{"trusted proxy mapped", func(c *Config) { c.TrustedProxies = []string{"::ffff:10.0.0.0/104"} }, ""}, // read as 10.0.0.0/8
		{"secret scanning keys url", func(c *Config) { c.SecretScanningKeys = "https://api.github.com/meta/public_keys/secret_scanning" }, ""},
		{"secret scanning keys file", func(c *Config) { c.SecretScanningKeys = "/etc/tswgate/github-keys.json" }, ""},
		{"secret scanning keys http", func(c *Config) { c.SecretScanningKeys = "http://api.github.com/meta/public_keys/secret_scanning" },
			`TSWGATE_SECRET_SCANNING_KEYS: "http://api.github.com/meta/public_keys/secret_scanning" is not an https URL; ` +
				`fetch the keys over https (https://api.github.com/meta/public_keys/secret_scanning) or give a file path`},
		{"secret scanning keys hostless", func(c *Config) { c.SecretScanningKeys = "https:///keys" },
			`TSWGATE_SECRET_SCANNING_KEYS: "https:///keys" is not an https URL`},
		{"trusted proxy mapped short", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "::ffff:0.0.0.0/90"} },
			`TSWGATE_TRUSTED_PROXIES: entry 2 ("::ffff:0.0.0.0/90") is an IPv4-mapped range shorter than /96, which holds no IPv4 client; write the IPv4 range, e.g. 10.0.0.0/8`},
		{"auth failure burst zero", func(c *Config) { c.AuthFailureBurst = 0 }, "TSWGATE_AUTH_FAILURE_BURST: 0 is too small; use at least 1"},
		{"log level", func(c *Config) { c.LogLevel = "trace" }, `TSWGATE_LOG_LEVEL: "trace" is not valid; use debug, info, warn or error`},
		{"empty prefix", func(c *Config) { c.RedisPrefix = "" }, "TSWGATE_REDIS_PREFIX: must not be empty"},
		{"empty listen", func(c *Config) { c.ListenAddr = "" }, "TSWGATE_LISTEN_ADDR: must not be empty"},
		{"named port", func(c *Config) { c.ListenAddr = ":http" }, `TSWGATE_LISTEN_ADDR: ":http" has an invalid port`},
		{"admin disabled", func(c *Config) { c.AdminAddr = "" }, ""},
		{"metrics disabled", func(c *Config) { c.MetricsAddr = "" }, ""},
		{"admin collides", func(c *Config) { c.AdminAddr = "127.0.0.1:8080" }, "TSWGATE_ADMIN_ADDR: 127.0.0.1:8080 collides with TSWGATE_LISTEN_ADDR (:8080); use a different port"},
		{"metrics collides with admin", func(c *Config) { c.MetricsAddr = "127.0.0.1:8081" }, "TSWGATE_METRICS_ADDR: 127.0.0.1:8081 collides with TSWGATE_ADMIN_ADDR"},
		{"same port other hosts", func(c *Config) { c.ListenAddr, c.MetricsAddr = "10.0.0.1:9090", "10.0.0.2:9090" }, ""},
		{"port 0 twice", func(c *Config) { c.ListenAddr, c.AdminAddr, c.MetricsAddr = ":0", "127.0.0.1:0", ":0" }, ""},
		{"upstream http with path", func(c *Config) { c.UpstreamURL = "http://127.0.0.1:8000/api/" }, ""},
		{"upstream empty", func(c *Config) { c.UpstreamURL = "" }, "TSWGATE_UPSTREAM_URL: must not be empty"},
		{"upstream no host", func(c *Config) { c.UpstreamURL = "https:///v2" }, "TSWGATE_UPSTREAM_URL: \"https:///v2\" has no host"},
		{"upstream relative", func(c *Config) { c.UpstreamURL = "api.tsw.io" }, "must start with https:// or http://"},
		{"upstream query", func(c *Config) { c.UpstreamURL = "https://api.tsw.io?x=1" }, "must not have a query"},
		{"upstream fragment", func(c *Config) { c.UpstreamURL = "https://api.tsw.io#top" }, "must not have a fragment"},
		{"upstream credentials", func(c *Config) { c.UpstreamURL = "https://u:p@api.tsw.io" }, "must not contain a user name or password"},
		{"redis bad", func(c *Config) { c.RedisURL, c.AdminKey, c.Pepper = "http://redis", adminKey, pepper }, `TSWGATE_REDIS_URL: scheme "http" is not supported`},
		{"data dir empty with embedded store", func(c *Config) { c.DataDir = "" }, "TSWGATE_DATA_DIR: required when TSWGATE_REDIS_URL is empty"},
		{"data dir empty with redis", func(c *Config) { c.DataDir, c.RedisURL, c.AdminKey, c.Pepper = "", "redis://r", adminKey, pepper }, ""},
		{"short admin key", func(c *Config) { c.AdminKey = "short" }, "TSWGATE_ADMIN_KEY: too short (5 characters); set it to a random string of at least 32 characters"},
		{"admin key with newline", func(c *Config) { c.AdminKey = adminKey + "\n" }, "TSWGATE_ADMIN_KEY: starts or ends with white space"},
		{"short pepper", func(c *Config) { c.Pepper = strings.Repeat("p", 31) }, "TSWGATE_PEPPER: too short (31 characters)"},
		{"pepper 32 bytes", func(c *Config) { c.Pepper = strings.Repeat("p", 32) }, ""},
		{"short old pepper", func(c *Config) { c.OldPeppers = []string{pepperA, "tiny"} }, "TSWGATE_OLD_PEPPERS: entry 2 is too short (4 bytes); each old pepper must be at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.set(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			wantErrs(t, err, tt.wantErr)
		})
	}
}

func TestUnknownSettings(t *testing.T) {
	t.Run("environment", func(t *testing.T) {
		_, err := Load("", []string{
			"TSWGATE_LISTEN_ADR=:8080",
			"TSWGATE_CACHETTL=5s",
			"TSWGATE_log_level=debug",
			"TSWGATE_WHATEVER=1",
			"TSWGATE_TEST_REDIS_URL=redis://localhost", // reserved for tests: ignored
			"TSWGATE_ADMIN_URL=http://127.0.0.1:8081",  // read by the token commands: ignored
			"TSWGATE_CONFIG=",                          // empty: no file
			"OTHER_LISTEN_ADR=:1",                      // not ours: ignored
			"NOEQUALSIGN",
		})
		wantErrs(t, err,
			"TSWGATE_LISTEN_ADR: unknown setting; did you mean TSWGATE_LISTEN_ADDR?",
			"TSWGATE_CACHETTL: unknown setting; did you mean TSWGATE_CACHE_TTL?",
			"TSWGATE_log_level: unknown setting; did you mean TSWGATE_LOG_LEVEL?",
			"TSWGATE_WHATEVER: unknown setting; valid settings are TSWGATE_LISTEN_ADDR, TSWGATE_ADMIN_ADDR,",
		)
	})
	t.Run("config file", func(t *testing.T) {
		path := writeFile(t, `{"listen_adr": ":8080", "Cache_TTL": "5s", "TSWGATE_PEPPER": "x", "whatever": 1}`)
		_, err := Load(path, nil)
		wantErrs(t, err,
			fmt.Sprintf(`config file %q: "listen_adr": unknown key; did you mean "listen_addr"?`, path),
			`"Cache_TTL": unknown key; did you mean "cache_ttl"?`,
			`"TSWGATE_PEPPER": unknown key; did you mean "pepper"?`,
			`"whatever": unknown key; valid keys are listen_addr, admin_addr,`,
		)
	})
}

func TestFileErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.json")
		_, err := Load(path, nil)
		wantErrs(t, err, fmt.Sprintf("config file %q: not found", path))
		_, err = Load("", []string{FileEnv + "=" + path})
		wantErrs(t, err, fmt.Sprintf("config file %q: not found", path))
	})
	t.Run("syntax", func(t *testing.T) {
		path := writeFile(t, "{\n  \"listen_addr\": \":8080\",\n}")
		_, err := Load(path, nil)
		wantErrs(t, err, fmt.Sprintf("config file %q: invalid JSON at line 3", path))
	})
	t.Run("not an object", func(t *testing.T) {
		for _, content := range []string{`["listen_addr"]`, `null`, `"x"`} {
			_, err := Load(writeFile(t, content), nil)
			wantErrs(t, err, "must hold a JSON object")
		}
	})
	t.Run("types", func(t *testing.T) {
		path := writeFile(t, `{
			"cache_ttl": 10,
			"negative_cache_ttl": "2",
			"max_body_scan": "1MB",
			"max_header_bytes": 4096.5,
			"pass_authorization": "true",
			"rate_owner": "1",
			"old_peppers": "`+pepperA+`",
			"admin_key": 12345678901234567890123456789012345,
			"listen_addr": null,
			"log_level": "loud"
		}`)
		_, err := Load(path, []string{"TSWGATE_LOG_LEVEL=debug"})
		wantErrs(t, err,
			`"cache_ttl" (TSWGATE_CACHE_TTL): want a string such as "10s" or "500ms", not a number`,
			`"negative_cache_ttl" (TSWGATE_NEGATIVE_CACHE_TTL): "2" is not a duration`,
			`"max_body_scan" (TSWGATE_MAX_BODY_SCAN): want a whole number such as 65536, not a string`,
			`"max_header_bytes" (TSWGATE_MAX_HEADER_BYTES): "4096.5" is not a whole number`,
			`"pass_authorization" (TSWGATE_PASS_AUTHORIZATION): want true or false, not a string`,
			`"rate_owner" (TSWGATE_RATE_OWNER): want a number such as 10 or 0.5, not a string`,
			`"old_peppers" (TSWGATE_OLD_PEPPERS): want an array of strings`,
			`"admin_key" (TSWGATE_ADMIN_KEY): want a string, not a number`,
			`"listen_addr" (TSWGATE_LISTEN_ADDR): null is not allowed; remove the key to use the default`,
			// log_level "loud" is overridden by the environment: no problem.
		)
		if strings.Contains(err.Error(), pepperA) || strings.Contains(err.Error(), "1234567890") {
			t.Errorf("error shows a secret:\n%v", err)
		}
	})
	t.Run("old peppers entries", func(t *testing.T) {
		_, err := Load(writeFile(t, `{"old_peppers": ["`+pepperA+`", 7]}`), nil)
		wantErrs(t, err, `"old_peppers" (TSWGATE_OLD_PEPPERS): entry 2: want a string, not a number`)
	})
}

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url     string
		want    RedisTarget
		wantErr string
	}{
		{url: "redis://localhost", want: RedisTarget{Addrs: []string{"localhost:6379"}}},
		{url: "redis://redis.internal:6380", want: RedisTarget{Addrs: []string{"redis.internal:6380"}}},
		{url: "redis://[::1]", want: RedisTarget{Addrs: []string{"[::1]:6379"}}},
		{url: "redis://:s3cret@host:6379", want: RedisTarget{Addrs: []string{"host:6379"}, Password: "s3cret"}},
		{url: "redis://user:p%40ss%2Fw%23rd@host", want: RedisTarget{Addrs: []string{"host:6379"}, Username: "user", Password: "p@ss/w#rd"}},
		{url: "redis://host:6379/3", want: RedisTarget{Addrs: []string{"host:6379"}, DB: 3}},
		{url: "redis://host/", want: RedisTarget{Addrs: []string{"host:6379"}}},
		{url: "rediss://user:pw@host:6380/1", want: RedisTarget{Addrs: []string{"host:6380"}, Username: "user", Password: "pw", DB: 1, TLS: true}},
		{
			url:  "redis://:pw@sentinel1:26379/2?addr=sentinel2:26379&addr=sentinel3:26379&master_name=mymaster",
			want: RedisTarget{Addrs: []string{"sentinel1:26379", "sentinel2:26379", "sentinel3:26379"}, Password: "pw", DB: 2, MasterName: "mymaster"},
		},
		{
			url:  "rediss://node1:7000?addr=node2:7000&addr=node3&cluster=true",
			want: RedisTarget{Addrs: []string{"node1:7000", "node2:7000", "node3:6379"}, TLS: true, Cluster: true},
		},
		{url: "redis://node1/0?cluster=true", want: RedisTarget{Addrs: []string{"node1:6379"}, Cluster: true}},
		{url: "redis://node1?cluster=false", want: RedisTarget{Addrs: []string{"node1:6379"}}},

		{url: "http://host:6379", wantErr: `scheme "http" is not supported; use redis://`},
		{url: "localhost:6379", wantErr: `scheme "localhost" is not supported`},
		{url: "//host:6379", wantErr: "has no scheme"},
		{url: "redis://", wantErr: "has no host"},
		{url: "redis://:6379", wantErr: `address ":6379" has no valid host`},
		{url: "redis://host:abc", wantErr: "is not a valid URL"},
		{url: "redis://host:0", wantErr: `address "host:0" has an invalid port; use a port from 1 to 65535`},
		{url: "redis://host:65536", wantErr: `address "host:65536" has an invalid port`},
		{url: "redis://host/abc", wantErr: "the path must be empty or a database number such as /0"},
		{url: "redis://host/-1", wantErr: "the path must be empty or a database number"},
		{url: "redis://host/1?cluster=true&addr=h2", wantErr: "database 1 is not possible with cluster=true (Redis Cluster has only database 0); remove /1"},
		{url: "redis://host?cluster=yes", wantErr: "cluster=yes is not a boolean"},
		{url: "redis://host?master_name=", wantErr: "master_name is empty"},
		{url: "redis://host?master_name=a&master_name=b", wantErr: `parameter "master_name" is given 2 times`},
		{url: "redis://host?master_name=m&cluster=true", wantErr: "exclude each other"},
		{url: "redis://host?addr=h2", wantErr: "several addresses need cluster=true (Redis Cluster) or master_name=NAME (Sentinel)"},
		{url: "redis://host?addr=host:6379&cluster=true", wantErr: "address host:6379 is given twice"},
		{url: "redis://host?addr=h2:99999&cluster=true", wantErr: `address "h2:99999" has an invalid port`},
		{url: "redis://host?password=x", wantErr: `unknown parameter "password"; use addr, master_name or cluster`},
		{url: "redis://host#frag", wantErr: "must not have a fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseRedisURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRedisURL(%q) = %v, %v; want error containing %q", tt.url, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRedisURL(%q): %v", tt.url, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRedisURL(%q)\n got %+v\nwant %+v", tt.url, got, tt.want)
			}
		})
	}
}

func TestParseRedisURLHidesPassword(t *testing.T) {
	for _, u := range []string{
		"redis://:" + redisPW + "@host:99999",
		"redis://user:" + redisPW + "@host/x",
		"redis://user:" + redisPW + "@host?bogus=1",
		"redis://user:" + redisPW + "/oops@host", // unencoded slash
		"redis://user:" + redisPW + "#oops@host", // unencoded hash
		"redis://user:" + redisPW + "%zz@host",   // bad escape
		"http://user:" + redisPW + "@host",       // wrong scheme
		"redis://:" + redisPW + "@host?cluster=true&master_name=m",
	} {
		_, err := ParseRedisURL(u)
		if err == nil {
			t.Errorf("ParseRedisURL(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), redisPW) || strings.Contains(err.Error(), "oops") {
			t.Errorf("ParseRedisURL error shows the password: %v", err)
		}
	}
	tgt, err := ParseRedisURL("redis://u:" + redisPW + "@host")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tgt.String(), fmt.Sprint(tgt), fmt.Sprintf("%+v", tgt), fmt.Sprintf("%#v", tgt)} {
		if strings.Contains(s, redisPW) {
			t.Errorf("RedisTarget printed with its password: %s", s)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := Defaults()
	c.RedisURL = "rediss://user:" + redisPW + "@redis:6380/1"
	c.AdminKey = adminKey
	c.Pepper = pepper
	c.OldPeppers = []string{pepperA, pepperB}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	r := c.Redacted()
	if len(r) != len(Settings()) {
		t.Errorf("Redacted has %d entries, want one per setting (%d)", len(r), len(Settings()))
	}
	wantValues := map[string]string{
		"admin_key":   "set",
		"pepper":      "set",
		"old_peppers": "set (2)",
		"redis_url":   "rediss://xxxxx:xxxxx@redis:6380/1",
		"listen_addr": ":8080",
		"cache_ttl":   "10s",
	}
	for k, want := range wantValues {
		if r[k] != want {
			t.Errorf("Redacted()[%q] = %q, want %q", k, r[k], want)
		}
	}
	if r := Defaults().Redacted(); r["admin_key"] != "unset" || r["pepper"] != "unset" || r["old_peppers"] != "unset" || r["redis_url"] != "" {
		t.Errorf("Redacted of Defaults: %v", r)
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("starting", "config", c)
	outputs := map[string]string{
		"Redacted": fmt.Sprint(r),
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"slog":     logged.String(),
	}
	for name, out := range outputs {
		for _, secret := range []string{adminKey, pepper, pepperA, pepperB, redisPW} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a secret: %s", name, out)
			}
		}
	}
	if !strings.Contains(logged.String(), `"admin_key":"set"`) {
		t.Errorf("slog JSON output lacks the redacted config: %s", logged.String())
	}

	// Invalid configurations must not leak either, through Redacted or
	// through Validate's messages.
	bad := Defaults()
	bad.AdminKey = redisPW[:20]
	bad.Pepper = "  " + pepper
	bad.OldPeppers = []string{redisPW[:10]}
	bad.RedisURL = "redis://user:" + redisPW + "/slash@host?password=" + redisPW
	bad.UpstreamURL = "https://user:" + redisPW + "@api.tsw.io"
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config validated")
	}
	for name, out := range map[string]string{"Validate": err.Error(), "String": bad.String()} {
		for _, secret := range []string{redisPW, redisPW[:10], pepper} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output of an invalid config contains a secret: %s", name, out)
			}
		}
	}
	bad.RedisURL = "redis://user:pw@host:6379/0?password=" + redisPW + "&cluster=true"
	if s := bad.Redacted()["redis_url"]; strings.Contains(s, redisPW) || !strings.Contains(s, "cluster=true") {
		t.Errorf("Redacted redis_url = %q", s)
	}
}

func TestSettingsTable(t *testing.T) {
	d := Defaults()
	r := d.Redacted()
	seen := make(map[string]bool)
	for _, s := range Settings() {
		if seen[s.Env] {
			t.Errorf("%s listed twice", s.Env)
		}
		seen[s.Env] = true
		if !strings.HasPrefix(s.Env, EnvPrefix) || s.Env != strings.ToUpper(s.Env) {
			t.Errorf("bad variable name %q", s.Env)
		}
		if want := strings.ToLower(strings.TrimPrefix(s.Env, EnvPrefix)); s.JSON != want {
			t.Errorf("%s: JSON key %q, want %q", s.Env, s.JSON, want)
		}
		if s.Description == "" || !strings.HasSuffix(s.Description, ".") {
			t.Errorf("%s: description %q should be a sentence", s.Env, s.Description)
		}
		if !s.Secret && r[s.JSON] != s.Default {
			t.Errorf("%s: documented default %q, but Defaults() has %q", s.Env, s.Default, r[s.JSON])
		}
	}
	if n := reflect.TypeFor[Config]().NumField(); n != len(seen) {
		t.Errorf("Config has %d fields but there are %d settings", n, len(seen))
	}
	secrets := 0
	for _, s := range Settings() {
		if s.Secret {
			secrets++
		}
	}
	if secrets != 3 {
		t.Errorf("%d secret settings, want 3 (admin key, pepper, old peppers)", secrets)
	}

	table := MarkdownTable()
	for _, s := range Settings() {
		if !strings.Contains(table, "| `"+s.Env+"` |") {
			t.Errorf("MarkdownTable lacks %s", s.Env)
		}
	}
	if lines := strings.Count(table, "\n"); lines != len(seen)+2 {
		t.Errorf("MarkdownTable has %d lines, want %d", lines, len(seen)+2)
	}
}

// TestSettingsDocumented fails when docs/configuration.md is not what
// ConfigurationPage generates from the settings table: regenerate it with
// "make docs" (go generate ./config/).
func TestSettingsDocumented(t *testing.T) {
	const file = "docs/configuration.md"
	got, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(file)))
	if err != nil {
		t.Fatalf("%v; generate it with make docs (go generate ./config/)", err)
	}
	want := ConfigurationPage()
	if string(got) != want {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return fmt.Sprintf("%q", l[i])
			}
			return "(end of file)"
		}
		t.Errorf("%s is out of date: regenerate it with make docs (go generate ./config/)\nline %d is %s\n   want %s",
			file, i+1, line(gl), line(wl))
	}
	for _, s := range Settings() {
		if !strings.Contains(want, "| `"+s.Env+"` |") {
			t.Errorf("%s does not document %s", file, s.Env)
		}
	}
	if strings.Contains(want, strings.TrimSpace(settingsMarker)) {
		t.Errorf("%s still holds the marker %s", file, strings.TrimSpace(settingsMarker))
	}
}

func TestMetricsAllowLists(t *testing.T) {
	many := make([]string, maxMetricsIDs+1)
	for i := range many {
		many[i] = strconv.Itoa(i + 1)
	}
	for _, tt := range []struct {
		env, value, want string
	}{
		{"TSWGATE_METRICS_PROJECTS", "42,0", `TSWGATE_METRICS_PROJECTS: entry 2 ("0") is not a project id`},
		{"TSWGATE_METRICS_PROJECTS", "-3", `TSWGATE_METRICS_PROJECTS: entry 1 ("-3") is not a project id`},
		{"TSWGATE_METRICS_PROJECTS", "042", `TSWGATE_METRICS_PROJECTS: entry 1 ("042") is not a project id`},
		{"TSWGATE_METRICS_PROJECTS", "7,7", `TSWGATE_METRICS_PROJECTS: entry 2 ("7") is repeated`},
		{"TSWGATE_METRICS_PROJECTS", strings.Join(many, ","), "TSWGATE_METRICS_PROJECTS: has 1001 entries; use at most 1000"},
		{"TSWGATE_METRICS_TOKENS", "tsw_short", `TSWGATE_METRICS_TOKENS: entry 1 ("tsw_short") is not a token id`},
		{"TSWGATE_METRICS_TOKENS", "tsw_AbCdEfGhIjKlMnOpQr-t", `TSWGATE_METRICS_TOKENS: entry 1 ("tsw_AbCdEfGhIjKlMnOpQr-t") is not a token id`},
	} {
		_, err := Load("", []string{tt.env + "=" + tt.value})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%.40s: error %v, want %q", tt.env, tt.value, err, tt.want)
		}
	}
	c, err := Load("", []string{"TSWGATE_METRICS_PROJECTS=42,7"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MetricsProjectIDs(); !reflect.DeepEqual(got, []int64{42, 7}) {
		t.Errorf("MetricsProjectIDs = %v", got)
	}
	if !Defaults().AccessLog {
		t.Error("the access log is off by default")
	}
}
