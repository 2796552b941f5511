// Package config loads and validates tswgate's settings.
//
// Every setting has an environment variable (TSWGATE_LISTEN_ADDR) and a key
// in the optional JSON config file (listen_addr: the variable's name without
// the TSWGATE_ prefix, in lower case). Load starts from Defaults, applies the
// file, then the environment, so the environment wins. Every problem found
// on the way, and by Validate, is reported at once, each on its own line
// naming the setting by its environment variable.
//
// All settings are described by one table (see Settings), which also drives
// parsing, validation, logging (Redacted) and docs/configuration.md
// (ConfigurationPage).
//
// config is a leaf package: it imports nothing else from tswgate.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment variable tswgate reads.
const EnvPrefix = "TSWGATE_"

// FileEnv is the environment variable Load reads the config file's path
// from when its path argument is empty.
const FileEnv = "TSWGATE_CONFIG"

// AdminURLEnv is the environment variable the token commands (tswgate
// token ...) read the admin API's URL from. It is not a gateway setting,
// but Load accepts it in the environment, so one environment can serve both.
const AdminURLEnv = "TSWGATE_ADMIN_URL"

// testEnvPrefix marks variables reserved for test harnesses (for example
// the Redis address of integration tests). Load neither reads them nor
// reports them as unknown.
const testEnvPrefix = "TSWGATE_TEST_"

// Config holds every tswgate setting. Get one from Load, or from Defaults
// and then Validate it. See Settings for each field's environment variable,
// JSON key, default and meaning.
//
// Config's String, GoString and LogValue methods show the Redacted view, so
// printing or logging a Config never reveals its secrets.
type Config struct {
	// ListenAddr is the host:port the proxy listens on.
	ListenAddr string
	// AdminAddr is the host:port of the admin API; empty disables it.
	AdminAddr string
	// MetricsAddr is the host:port of the Prometheus metrics endpoint;
	// empty disables it.
	MetricsAddr string
	// Console serves the web console at /console/ on the admin listener.
	Console bool
	// UpstreamURL is the TeraSwitch API base URL: http or https, with a
	// host and no query or fragment. Use Upstream for the parsed form.
	UpstreamURL string
	// RedisURL is the token store's Redis URL (see ParseRedisURL); empty
	// selects the embedded store kept in DataDir.
	RedisURL string
	// DataDir is the embedded store's directory.
	DataDir string
	// AdminKey authenticates the admin API. Secret. Empty with the
	// embedded store means the caller generates one on first start; it is
	// required with Redis.
	AdminKey string
	// Pepper keys the token hashes. Secret. Empty with the embedded store
	// means the caller generates one on first start; it is required with
	// Redis.
	Pepper string
	// OldPeppers are former peppers still accepted when verifying tokens
	// issued under them. Secret.
	OldPeppers []string

	// CacheTTL is how long a verified token is cached in memory.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long an unknown token id is remembered.
	NegativeCacheTTL time.Duration
	// CacheMaxEntries bounds the token cache.
	CacheMaxEntries int64
	// StaleIfError is how long a verified token keeps working from the
	// cache while the store is unreachable; 0 disables this.
	StaleIfError time.Duration
	// StoreTimeout bounds each token store call.
	StoreTimeout time.Duration
	// RevokedRetention is how long revoked tokens are kept before deletion.
	RevokedRetention time.Duration

	// PassAuthorization forwards the client's Authorization header upstream.
	PassAuthorization bool
	// MaxBodyScan is the most request body bytes inspected, in bytes.
	MaxBodyScan int64
	// MaxHeaderBytes bounds the request header size, in bytes.
	MaxHeaderBytes int
	// MaxConnections bounds the public listener's open connections; 0
	// means no limit.
	MaxConnections int

	// ReadHeaderTimeout is http.Server.ReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout is http.Server.ReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout is http.Server.WriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout is http.Server.IdleTimeout.
	IdleTimeout time.Duration
	// UpstreamTimeout is the upstream transport's ResponseHeaderTimeout.
	UpstreamTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// ShutdownDelay is how long a replica keeps serving after it turns
	// unready on shutdown, before it stops accepting.
	ShutdownDelay time.Duration

	// RateOwner is the request rate allowed to each owner token, in
	// requests per second; 0 means unlimited. A token's own limit
	// (auth.Token.RateLimit) overrides it.
	RateOwner float64
	// BurstOwner is the burst allowed to each owner token. Load sets it to
	// ceil(RateOwner) when it is 0 and RateOwner is not.
	BurstOwner int
	// RateAccounting is RateOwner for accounting tokens.
	RateAccounting float64
	// BurstAccounting is BurstOwner for accounting tokens.
	BurstAccounting int
	// RateLimitScope is cluster (one budget per token shared by every
	// replica through Redis) or replica (each replica its own).
	RateLimitScope string
	// RateLimitLease sizes the batches a replica leases from the shared
	// budget: about rate × lease requests.
	RateLimitLease time.Duration
	// RateLimitOnOutage is share or refuse: what a replica does with
	// limited tokens while the shared budget is unreachable.
	RateLimitOnOutage string
	// RateLimitShadowRoles are the roles whose limits are in shadow mode.
	RateLimitShadowRoles []string
	// AuthFailureRate and AuthFailureBurst limit failed authentications per
	// client address (requests per second, burst); rate 0 disables.
	AuthFailureRate  float64
	AuthFailureBurst int
	// TrustedProxies are the CIDR ranges whose X-Forwarded-For is believed.
	TrustedProxies []string

	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string
	// AccessLog turns the per-request access log on.
	AccessLog bool
	// MetricsProjects are the project ids (decimal) that get their own
	// request series; see MetricsProjectIDs.
	MetricsProjects []string
	// MetricsTokens are the token ids that get their own request series.
	MetricsTokens []string

	// RedisPrefix starts every Redis key tswgate uses.
	RedisPrefix string

	// UsageFlushInterval is how often the per-token usage counts are
	// written to the store: the bound on how stale last_used and usage_24h
	// are.
	UsageFlushInterval time.Duration
	// ExpirySweepInterval is how often tokens whose expiry passed are
	// looked for, to record their token.expire audit event.
	ExpirySweepInterval time.Duration
	// AuditMaxEvents bounds the audit trail: per project with Redis, in all
	// (rotated files) with the embedded store.
	AuditMaxEvents int
	// SelfService mounts the token API on the public listener under
	// /tswgate/v1/ for Owner tokens.
	SelfService bool
	// MaxTokensPerProject bounds a project's live tokens (0: no bound).
	MaxTokensPerProject int

	// TLSCertFile and TLSKeyFile make the public listener serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// HSTSMaxAge is the Strict-Transport-Security max-age (0: none).
	HSTSMaxAge time.Duration
	// H2C accepts HTTP/2 over cleartext on the public listener.
	H2C bool
	// FastPath reads plain HTTP/1.1 API requests with internal/h1.
	FastPath bool
	// AdminMTLS is off, with_key or instead_of_key: client certificates
	// on the admin listener, verified against AdminClientCA.
	AdminMTLS     string
	AdminClientCA string
	// UpstreamCAFile verifies the upstream's certificate.
	UpstreamCAFile string
	// UpstreamClientCertFile and UpstreamClientKeyFile are the gateway's
	// client certificate toward the upstream.
	UpstreamClientCertFile, UpstreamClientKeyFile string

	// Assertion sends a signed identity assertion upstream.
	Assertion bool
	// AssertionKeyFiles are the assertion keys: the first signs.
	AssertionKeyFiles []string
	// AssertionTTL is how long an assertion is valid.
	AssertionTTL time.Duration
	// AssertionIssuer is the assertions' iss claim.
	AssertionIssuer string

	// OTLPEndpoint is the collector traces go to ("": no tracing).
	OTLPEndpoint string
	// TraceSampleRatio is the share of requests traced.
	TraceSampleRatio float64

	// Webhooks delivers token events to registered endpoints.
	Webhooks bool
	// WebhookPrivateOperator lets operator endpoints use private addresses.
	WebhookPrivateOperator bool
	// WebhookRateLimitedThreshold raises token.rate_limited events.
	WebhookRateLimitedThreshold int
	// WebhookMaxPending bounds an endpoint's undelivered deliveries.
	WebhookMaxPending int
	// WebhookMaxPendingPerProject bounds one project's undelivered
	// deliveries on an endpoint shared by projects (the operator's).
	WebhookMaxPendingPerProject int
	// SecretScanningKeys locates GitHub's secret scanning keys (file or
	// URL); empty disables the partner endpoint.
	SecretScanningKeys string
	// PublicRevoke serves the public revoke-by-value endpoint.
	PublicRevoke bool
}

// Defaults returns the default configuration. With it, tswgate runs with
// the embedded store and generates its admin key and pepper on first start.
func Defaults() Config {
	var c Config
	for i := range settings {
		settings[i].setDefault(&c)
	}
	return c
}

// Load returns the configuration made of Defaults, then the JSON config
// file, then the environment, and checks it with Validate.
//
// path names the config file; if it is empty, the file named by the
// TSWGATE_CONFIG variable is read, and if that is unset or empty too, no
// file is. A file that cannot be read is an error. The file holds one JSON
// object whose keys are the settings' JSON names; durations are strings
// such as "10s", sizes and other numbers are JSON numbers, OldPeppers is an
// array of strings.
//
// environ holds the environment in the form of os.Environ ("NAME=value");
// callers normally pass os.Environ(). Variables starting with TSWGATE_ that
// are not settings are reported as errors, with a suggestion, except
// TSWGATE_CONFIG (FileEnv), TSWGATE_ADMIN_URL (AdminURLEnv), and those
// starting with TSWGATE_TEST_, which are left to test harnesses. If a name
// appears more than once, the first wins, as with os.Getenv.
//
// Load does not stop at the first problem: the error joins (errors.Join)
// every problem found in the file, the environment and by Validate, one
// per line. The returned Config is meaningful only if the error is nil.
func Load(path string, environ []string) (Config, error) {
	c := Defaults()
	var errs []error

	env := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if _, dup := env[name]; !dup {
			env[name] = value
		}
	}

	if path == "" {
		path = env[FileEnv]
	}
	if path != "" {
		errs = append(errs, c.applyFile(path)...)
	}
	errs = append(errs, c.applyEnv(env)...)

	c.deriveBursts()
	errs = append(errs, c.problems()...)
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// applyFile applies the JSON config file at path to c.
func (c *Config) applyFile(path string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []error{fmt.Errorf("config file %q: not found; create it or correct the path", path)}
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return []error{fmt.Errorf("config file %q: cannot read it: %v", path, err)}
	}

	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := position(data, se.Offset)
			return []error{fmt.Errorf("config file %q: invalid JSON at line %d, column %d: %v", path, line, col, se)}
		case errors.As(err, &te):
			return []error{fmt.Errorf(`config file %q: must hold a JSON object such as {"listen_addr": ":8080"}, not %s`, path, jsonTypeName(te.Value))}
		default:
			return []error{fmt.Errorf("config file %q: invalid JSON: %v", path, err)}
		}
	}
	if obj == nil { // the file held null
		return []error{fmt.Errorf(`config file %q: must hold a JSON object such as {"listen_addr": ":8080"}, not null`, path)}
	}

	var errs []error
	for i := range settings {
		s := &settings[i]
		raw, ok := obj[s.JSON]
		if !ok {
			continue
		}
		delete(obj, s.JSON)
		if err := s.fromJSON(c, raw); err != nil {
			errs = append(errs, fmt.Errorf("config file %q: %q (%s): %v", path, s.JSON, s.Env, err))
		}
	}
	unknown := make([]string, 0, len(obj))
	for key := range obj {
		unknown = append(unknown, key)
	}
	sort.Strings(unknown)
	for _, key := range unknown {
		errs = append(errs, fmt.Errorf("config file %q: %q: unknown key; %s", path, key, suggestJSON(key)))
	}
	return errs
}

// applyEnv applies the TSWGATE_ variables in env to c.
func (c *Config) applyEnv(env map[string]string) []error {
	var errs []error
	seen := make(map[string]bool, len(env))
	for i := range settings {
		s := &settings[i]
		value, ok := env[s.Env]
		if !ok {
			continue
		}
		seen[s.Env] = true
		if err := s.fromEnv(c, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", s.Env, err))
		}
	}
	unknown := make([]string, 0)
	for name := range env {
		if !seen[name] && name != FileEnv && name != AdminURLEnv && !strings.HasPrefix(name, testEnvPrefix) {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("%s: unknown setting; %s", name, suggestEnv(name)))
	}
	return errs
}

// deriveBursts sets each zero burst whose rate is limited to ceil(rate).
func (c *Config) deriveBursts() {
	derive := func(rate float64, burst *int) {
		if *burst == 0 && rate > 0 && rate <= maxRate {
			*burst = int(math.Ceil(rate))
		}
	}
	derive(c.RateOwner, &c.BurstOwner)
	derive(c.RateAccounting, &c.BurstAccounting)
}

// Validate checks every setting and returns nil or the join (errors.Join)
// of all the problems found, one per line, each naming the setting by its
// environment variable and saying how to fix it. Secrets never appear in
// the messages.
func (c Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c *Config) problems() []error {
	var errs []error
	for i := range settings {
		s := &settings[i]
		if s.check == nil {
			continue
		}
		s.check(c, func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", s.Env, fmt.Sprintf(format, args...)))
		})
	}
	return errs
}

// MetricsProjectIDs returns MetricsProjects as numbers; entries that are
// not valid ids (which Validate reports) are skipped.
func (c Config) MetricsProjectIDs() []int64 {
	ids := make([]int64, 0, len(c.MetricsProjects))
	for _, p := range c.MetricsProjects {
		if n, err := strconv.ParseInt(p, 10, 64); err == nil && n > 0 {
			ids = append(ids, n)
		}
	}
	return ids
}

// Upstream returns UpstreamURL parsed. Its error is the one Validate
// reports for TSWGATE_UPSTREAM_URL, so it is nil for a validated Config.
func (c Config) Upstream() (*url.URL, error) {
	u, msg := parseUpstream(c.UpstreamURL)
	if msg != "" {
		return nil, fmt.Errorf("TSWGATE_UPSTREAM_URL: %s", msg)
	}
	return u, nil
}

// Redacted returns every setting's value as text, keyed by its JSON name,
// for the startup log. Secrets show only as "set" or "unset", and the
// credentials in the Redis URL are replaced by "xxxxx".
func (c Config) Redacted() map[string]string {
	m := make(map[string]string, len(settings))
	for i := range settings {
		m[settings[i].JSON] = settings[i].show(&c)
	}
	return m
}

// String returns the Redacted view as space-separated key=value pairs in
// the order of Settings.
func (c Config) String() string {
	var b strings.Builder
	for i := range settings {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := settings[i].show(&c)
		if v == "" || strings.ContainsAny(v, " \t\"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(settings[i].JSON)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// GoString is String, so that %#v does not reveal secrets either.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// LogValue implements slog.LogValuer: a group of the Redacted values in
// the order of Settings.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(settings))
	for i := range settings {
		attrs[i] = slog.String(settings[i].JSON, settings[i].show(&c))
	}
	return slog.GroupValue(attrs...)
}

// position converts a byte offset in data into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	line, col = 1, 1
	for _, b := range data[:offset] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
