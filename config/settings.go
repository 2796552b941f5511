package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Setting documents one setting: its environment variable, its JSON key in
// the config file, its default as text, what it does, and whether it is a
// secret (never shown by Redacted).
type Setting struct {
	// Env is the environment variable, such as TSWGATE_LISTEN_ADDR.
	Env string
	// JSON is the config file key, such as listen_addr.
	JSON string
	// Default is the default value as text; empty for an empty default.
	Default string
	// Description says what the setting does, in one or two sentences.
	Description string
	// Secret is set for the admin key and the peppers.
	Secret bool
}

// Settings returns every setting, in the order of the Config fields.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i := range settings {
		out[i] = settings[i].Setting
	}
	return out
}

// MarkdownTable renders Settings as a Markdown table (Variable | Default |
// Description), the table of docs/configuration.md (see ConfigurationPage).
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Description |\n")
	b.WriteString("|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, s := range Settings() {
		def := "(empty)"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		desc := s.Description
		if s.Secret {
			desc += " Secret."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Env, cell(def), cell(desc))
	}
	return b.String()
}

// setting is one row of the table that drives Defaults, Load, Validate,
// Redacted and Settings.
type setting struct {
	Setting
	setDefault func(c *Config)
	// fromEnv sets the field from an environment variable's value.
	fromEnv func(c *Config, value string) error
	// fromJSON sets the field from the config file's value.
	fromJSON func(c *Config, raw json.RawMessage) error
	// show renders the field for Redacted.
	show func(c *Config) string
	// check reports each problem of the field with bad; nil accepts all.
	check func(c *Config, bad problem)
}

// problem reports one validation problem: what is wrong and how to fix it.
type problem func(format string, args ...any)

// kind is how values of one Go type are parsed, decoded and shown.
type kind[T any] struct {
	// parse parses an environment variable's value. Its errors quote the
	// value and say what to use instead.
	parse func(s string) (T, error)
	// decode converts the config file's value (decoded with UseNumber)
	// into T; nil means: accept a JSON string and parse it.
	decode func(v any) (T, error)
	// want describes the JSON value expected, for type mismatches.
	want string
	// format renders a value for Redacted and the documented default.
	format func(T) string
}

// field makes the setting for the Config field that ptr selects. Its JSON
// key is derived from env.
func field[T any](k kind[T], env string, def T, ptr func(*Config) *T, desc string, check func(c *Config, v T, bad problem)) setting {
	s := setting{
		Setting: Setting{
			Env:         env,
			JSON:        strings.ToLower(strings.TrimPrefix(env, EnvPrefix)),
			Default:     k.format(def),
			Description: desc,
		},
		setDefault: func(c *Config) { *ptr(c) = def },
		fromEnv: func(c *Config, value string) error {
			v, err := k.parse(value)
			if err != nil {
				return err
			}
			*ptr(c) = v
			return nil
		},
		show: func(c *Config) string { return k.format(*ptr(c)) },
	}
	s.fromJSON = func(c *Config, raw json.RawMessage) error {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return err // cannot happen: raw is valid JSON
		}
		if v == nil {
			return fmt.Errorf("null is not allowed; remove the key to use the default")
		}
		var (
			val T
			err error
		)
		if k.decode != nil {
			val, err = k.decode(v)
		} else if str, ok := v.(string); ok {
			val, err = k.parse(str)
		} else {
			err = errWant(k.want, v)
		}
		if err != nil {
			return err
		}
		*ptr(c) = val
		return nil
	}
	if check != nil {
		s.check = func(c *Config, bad problem) { check(c, *ptr(c), bad) }
	}
	return s
}

// secret marks s as a secret: Redacted shows only whether it is set.
func secret(s setting, show func(c *Config) string) setting {
	s.Secret = true
	s.show = show
	return s
}

func errWant(want string, got any) error {
	return fmt.Errorf("want %s, not %s", want, jsonTypeName(got))
}

// jsonTypeName names the JSON type of v, a value decoded by encoding/json
// or the Value of a json.UnmarshalTypeError. It never includes the value
// itself, which may be secret.
func jsonTypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		switch v { // UnmarshalTypeError.Value
		case "array":
			return "an array"
		case "object":
			return "an object"
		case "number", "string", "bool":
			return "a " + v
		}
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

var (
	stringKind = kind[string]{
		parse:  func(s string) (string, error) { return s, nil },
		want:   "a string",
		format: func(s string) string { return s },
	}
	// wordKind is a string that is one of a few words, in any letter case.
	wordKind = kind[string]{
		parse:  func(s string) (string, error) { return strings.ToLower(strings.TrimSpace(s)), nil },
		want:   "a string",
		format: func(s string) string { return s },
	}
	listKind = kind[[]string]{
		parse: func(s string) ([]string, error) {
			var out []string
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			return out, nil
		},
		decode: func(v any) ([]string, error) {
			arr, ok := v.([]any)
			if !ok {
				return nil, errWant(`an array of strings such as ["first", "second"]`, v)
			}
			out := make([]string, 0, len(arr))
			for i, e := range arr {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("entry %d: want a string, not %s", i+1, jsonTypeName(e))
				}
				out = append(out, s)
			}
			return out, nil
		},
		format: func(l []string) string { return strings.Join(l, ",") },
	}
	durationKind = kind[time.Duration]{
		parse: func(s string) (time.Duration, error) {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration; use a Go duration such as 10s or 500ms", s)
			}
			return d, nil
		},
		want:   `a string such as "10s" or "500ms"`,
		format: formatDuration,
	}
	boolKind = kind[bool]{
		parse: func(s string) (bool, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return false, fmt.Errorf("%q is not a boolean; use true or false", s)
			}
			return b, nil
		},
		decode: func(v any) (bool, error) {
			b, ok := v.(bool)
			if !ok {
				return false, errWant("true or false", v)
			}
			return b, nil
		},
		format: strconv.FormatBool,
	}
	floatKind = kind[float64]{
		parse: parseFloat,
		decode: func(v any) (float64, error) {
			n, ok := v.(json.Number)
			if !ok {
				return 0, errWant("a number such as 10 or 0.5", v)
			}
			return parseFloat(string(n))
		},
		format: func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) },
	}
	intKind   = integerKind[int]()
	int64Kind = integerKind[int64]()
)

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number; use a number such as 10 or 0.5", s)
	}
	return f, nil
}

func integerKind[T int | int64]() kind[T] {
	var k kind[T]
	k.parse = func(s string) (T, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || int64(T(n)) != n {
			return 0, fmt.Errorf("%q is not a whole number; use digits only, such as 65536", s)
		}
		return T(n), nil
	}
	k.decode = func(v any) (T, error) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, errWant("a whole number such as 65536", v)
		}
		return k.parse(string(n))
	}
	k.format = func(n T) string { return strconv.FormatInt(int64(n), 10) }
	return k
}

// formatDuration is time.Duration.String without zero trailing units:
// 720h rather than 720h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

const (
	minSecretLen = 32
	maxRate      = 1e6
	minRate      = 1e-6
	mib          = 1 << 20
)

// settings is the table of every setting, in the order of the Config
// fields.
var settings = []setting{
	field(stringKind, "TSWGATE_LISTEN_ADDR", ":8080", func(c *Config) *string { return &c.ListenAddr },
		"Address (host:port) the proxy listens on.",
		checkAddr(false, ":8080")),
	field(stringKind, "TSWGATE_ADMIN_ADDR", "127.0.0.1:8081", func(c *Config) *string { return &c.AdminAddr },
		"Address (host:port) of the admin API; empty disables it. Keep it private.",
		checkAddr(true, "127.0.0.1:8081", "TSWGATE_LISTEN_ADDR")),
	field(stringKind, "TSWGATE_METRICS_ADDR", ":9090", func(c *Config) *string { return &c.MetricsAddr },
		"Address (host:port) of the Prometheus metrics endpoint; empty disables it.",
		checkAddr(true, ":9090", "TSWGATE_LISTEN_ADDR", "TSWGATE_ADMIN_ADDR")),
	field(boolKind, "TSWGATE_CONSOLE", true, func(c *Config) *bool { return &c.Console },
		"Serve the web console, to list, generate, deactivate, rotate and revoke a project's tokens in a browser: "+
			"at /console/ on the admin listener (TSWGATE_ADMIN_ADDR), for the admin key or an Owner token, and at "+
			"/tswgate/console/ on the public listener, for Owner tokens, when TSWGATE_SELF_SERVICE is on.",
		nil),
	withShow(field(stringKind, "TSWGATE_UPSTREAM_URL", "https://api.tsw.io", func(c *Config) *string { return &c.UpstreamURL },
		"Base URL of the TeraSwitch API that requests are forwarded to (http or https, no query).",
		func(c *Config, v string, bad problem) {
			if _, msg := parseUpstream(v); msg != "" {
				bad("%s", msg)
			}
		}),
		func(c *Config) string { return redactURL(c.UpstreamURL, nil) }),
	withShow(field(stringKind, "TSWGATE_REDIS_URL", "", func(c *Config) *string { return &c.RedisURL },
		"Redis URL of the shared token store, redis://[user:password@]host:port[/db] (rediss:// for TLS; "+
			"?addr=host:port to add addresses, &master_name=name for Sentinel, &cluster=true for Redis Cluster). "+
			"Empty uses the embedded store in TSWGATE_DATA_DIR (a single replica only).",
		func(c *Config, v string, bad problem) {
			if v == "" {
				return
			}
			if _, err := ParseRedisURL(v); err != nil {
				bad("%v", err)
			}
		}),
		func(c *Config) string { return redactURL(c.RedisURL, redisParams) }),
	field(stringKind, "TSWGATE_DATA_DIR", "tswgate-data", func(c *Config) *string { return &c.DataDir },
		"Directory of the embedded store (used when TSWGATE_REDIS_URL is empty).",
		func(c *Config, v string, bad problem) {
			if v == "" && c.RedisURL == "" {
				bad("required when TSWGATE_REDIS_URL is empty (the embedded store keeps its data there); set it to a directory path such as tswgate-data")
			}
		}),
	secret(field(stringKind, "TSWGATE_ADMIN_KEY", "", func(c *Config) *string { return &c.AdminKey },
		"Key of the admin API (at least 32 characters). Required with TSWGATE_REDIS_URL; "+
			"with the embedded store, one is generated on first start when empty.",
		checkSecret("replicas must share one admin key")),
		func(c *Config) string { return setOrUnset(c.AdminKey != "") }),
	secret(field(stringKind, "TSWGATE_PEPPER", "", func(c *Config) *string { return &c.Pepper },
		"Key of the token hashes (at least 32 bytes). Required with TSWGATE_REDIS_URL; "+
			"with the embedded store, one is generated on first start when empty. "+
			"Changing it invalidates every token unless the former value is kept in TSWGATE_OLD_PEPPERS.",
		checkSecret("replicas must share one pepper")),
		func(c *Config) string { return setOrUnset(c.Pepper != "") }),
	secret(field(listKind, "TSWGATE_OLD_PEPPERS", nil, func(c *Config) *[]string { return &c.OldPeppers },
		"Former peppers, comma-separated (a JSON array in the config file), still accepted for tokens issued under them.",
		func(c *Config, v []string, bad problem) {
			for i, p := range v {
				if len(p) < minSecretLen {
					bad("entry %d is too short (%d bytes); each old pepper must be at least %d bytes", i+1, len(p), minSecretLen)
				}
			}
		}),
		func(c *Config) string {
			if len(c.OldPeppers) == 0 {
				return "unset"
			}
			return fmt.Sprintf("set (%d)", len(c.OldPeppers))
		}),

	field(durationKind, "TSWGATE_CACHE_TTL", 10*time.Second, func(c *Config) *time.Duration { return &c.CacheTTL },
		"How long a token record is served from memory before it is read again: the bound on staleness should change announcements be lost (revocations apply at once through the store). Allowed: more than 0, at most 10m.",
		checkDuration(positive, 10*time.Minute, "10s")),
	field(durationKind, "TSWGATE_NEGATIVE_CACHE_TTL", 2*time.Second, func(c *Config) *time.Duration { return &c.NegativeCacheTTL },
		"How long an unknown token id is remembered. Allowed: more than 0, at most TSWGATE_CACHE_TTL.",
		func(c *Config, v time.Duration, bad problem) {
			checkDuration(positive, 0, "2s")(c, v, bad)
			if v > c.CacheTTL && c.CacheTTL > 0 {
				bad("%s is longer than TSWGATE_CACHE_TTL (%s); use at most %s", formatDuration(v), formatDuration(c.CacheTTL), formatDuration(c.CacheTTL))
			}
		}),
	field(int64Kind, "TSWGATE_CACHE_MAX_ENTRIES", 100000, func(c *Config) *int64 { return &c.CacheMaxEntries },
		"Most tokens kept in the memory cache. Allowed: at least 100.",
		checkInt[int64](100, 0, "")),
	field(durationKind, "TSWGATE_STALE_IF_ERROR", 30*time.Second, func(c *Config) *time.Duration { return &c.StaleIfError },
		"How long a verified token keeps working from the cache while the store is down; 0 disables this. Allowed: 0 or more.",
		checkDuration(0, 0, "30s")),
	field(durationKind, "TSWGATE_STORE_TIMEOUT", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.StoreTimeout },
		"Timeout of each token store call. Allowed: more than 0, at most 10s.",
		checkDuration(positive, 10*time.Second, "100ms")),
	field(durationKind, "TSWGATE_REVOKED_RETENTION", 720*time.Hour, func(c *Config) *time.Duration { return &c.RevokedRetention },
		"How long revoked tokens are kept (and listed) before they are deleted. Allowed: at least 1m.",
		checkDuration(time.Minute, 0, "720h")),

	field(boolKind, "TSWGATE_PASS_AUTHORIZATION", false, func(c *Config) *bool { return &c.PassAuthorization },
		"Forward the client's Authorization header to the upstream API.",
		nil),
	field(int64Kind, "TSWGATE_MAX_BODY_SCAN", 1*mib, func(c *Config) *int64 { return &c.MaxBodyScan },
		"Largest request body accepted, in bytes: a body is read whole and checked before it is forwarded; a longer one is refused (413 body_too_large). Allowed: 1024 to 67108864.",
		checkInt[int64](1024, 64*mib, " bytes")),
	field(intKind, "TSWGATE_MAX_HEADER_BYTES", 65536, func(c *Config) *int { return &c.MaxHeaderBytes },
		"Largest request header accepted, in bytes. Allowed: at least 4096.",
		checkInt[int](4096, 0, " bytes")),
	field(intKind, "TSWGATE_MAX_CONNECTIONS", 10000, func(c *Config) *int { return &c.MaxConnections },
		"Most client connections the public listener keeps open at once; at the limit, new connections wait in the kernel's accept queue until one closes (the process keeps file descriptors for the upstream and the store). 0 means no limit. Allowed: 0 to 1000000.",
		checkInt[int](0, 1000000, "")),

	field(durationKind, "TSWGATE_READ_HEADER_TIMEOUT", 10*time.Second, func(c *Config) *time.Duration { return &c.ReadHeaderTimeout },
		"Time allowed to read a request's headers. Allowed: more than 0.",
		checkDuration(positive, 0, "10s")),
	field(durationKind, "TSWGATE_READ_TIMEOUT", 60*time.Second, func(c *Config) *time.Duration { return &c.ReadTimeout },
		"Time allowed to read a whole request. Allowed: more than 0.",
		checkDuration(positive, 0, "60s")),
	field(durationKind, "TSWGATE_WRITE_TIMEOUT", 120*time.Second, func(c *Config) *time.Duration { return &c.WriteTimeout },
		"Time allowed to write a response. Allowed: more than 0.",
		checkDuration(positive, 0, "120s")),
	field(durationKind, "TSWGATE_IDLE_TIMEOUT", 120*time.Second, func(c *Config) *time.Duration { return &c.IdleTimeout },
		"How long an idle keep-alive connection is kept open. Allowed: more than 0.",
		checkDuration(positive, 0, "120s")),
	field(durationKind, "TSWGATE_UPSTREAM_TIMEOUT", 60*time.Second, func(c *Config) *time.Duration { return &c.UpstreamTimeout },
		"Time allowed for the upstream API to send its response headers. Allowed: more than 0.",
		checkDuration(positive, 0, "60s")),
	field(durationKind, "TSWGATE_SHUTDOWN_TIMEOUT", 20*time.Second, func(c *Config) *time.Duration { return &c.ShutdownTimeout },
		"Time allowed for in-flight requests to finish on shutdown. Allowed: more than 0.",
		checkDuration(positive, 0, "20s")),
	field(durationKind, "TSWGATE_SHUTDOWN_DELAY", 0, func(c *Config) *time.Duration { return &c.ShutdownDelay },
		"On shutdown, how long to keep serving while /readyz already answers 503, so load balancers stop sending first; set it to their readiness-probe period. Allowed: 0 to 5m.",
		checkDuration(0, 5*time.Minute, "5s")),

	field(floatKind, "TSWGATE_RATE_OWNER", 0, func(c *Config) *float64 { return &c.RateOwner },
		"Requests per second allowed to each owner token; 0 means unlimited. A token's own limit (tswgate token limit) overrides it. Allowed: 0, or 0.000001 to 1000000.",
		checkRate),
	field(intKind, "TSWGATE_BURST_OWNER", 0, func(c *Config) *int { return &c.BurstOwner },
		"Burst of requests allowed to each owner token; 0 means ceil(TSWGATE_RATE_OWNER). Allowed: 0 or more; more than 0 only with TSWGATE_RATE_OWNER.",
		checkBurst("TSWGATE_RATE_OWNER", func(c *Config) float64 { return c.RateOwner })),
	field(floatKind, "TSWGATE_RATE_ACCOUNTING", 0, func(c *Config) *float64 { return &c.RateAccounting },
		"Requests per second allowed to each accounting token; 0 means unlimited. A token's own limit (tswgate token limit) overrides it. Allowed: 0, or 0.000001 to 1000000.",
		checkRate),
	field(intKind, "TSWGATE_BURST_ACCOUNTING", 0, func(c *Config) *int { return &c.BurstAccounting },
		"Burst of requests allowed to each accounting token; 0 means ceil(TSWGATE_RATE_ACCOUNTING). Allowed: 0 or more; more than 0 only with TSWGATE_RATE_ACCOUNTING.",
		checkBurst("TSWGATE_RATE_ACCOUNTING", func(c *Config) float64 { return c.RateAccounting })),

	field(wordKind, "TSWGATE_RATELIMIT_SCOPE", "cluster", func(c *Config) *string { return &c.RateLimitScope },
		"cluster: with Redis, a token's limit holds across every replica (one budget per token in Redis, leased in batches); "+
			"replica: each replica applies the whole limit on its own. The embedded store is always replica.",
		checkOneOf("cluster", "replica")),
	field(durationKind, "TSWGATE_RATELIMIT_LEASE", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.RateLimitLease },
		"Cluster scope: a replica leases about rate × this many requests from Redis at a time (at least 1, at most the burst). "+
			"Longer means fewer Redis calls and a looser bound (see docs/rate-limits.md). Allowed: 1ms to 10s.",
		checkDuration(time.Millisecond, 10*time.Second, "100ms")),
	field(wordKind, "TSWGATE_RATELIMIT_ON_OUTAGE", "share", func(c *Config) *string { return &c.RateLimitOnOutage },
		"Cluster scope, while Redis is unreachable: share holds each token to its share of the limit on each replica "+
			"(limit ÷ live replicas); refuse answers store_unavailable (503) to limited tokens.",
		checkOneOf("share", "refuse")),
	field(listKind, "TSWGATE_RATELIMIT_SHADOW_ROLES", nil, func(c *Config) *[]string { return &c.RateLimitShadowRoles },
		"Roles (owner, accounting; comma-separated) whose limits are in shadow mode: requests over the limit are counted "+
			"(tswgate_ratelimit_decisions_total{decision=\"shadow\"}) and logged, not refused. A token can be put in shadow mode on its own too.",
		checkIDList(func(s string) bool { return s == "owner" || s == "accounting" }, "a role (owner or accounting)")),
	field(floatKind, "TSWGATE_AUTH_FAILURE_RATE", 1, func(c *Config) *float64 { return &c.AuthFailureRate },
		"Failed authentications (malformed or invalid token) allowed per client address per second, on average; "+
			"past it the address gets 429 auth_rate_limited without any store read. 0 disables. Allowed: 0, or 0.000001 to 1000000.",
		checkRate),
	field(intKind, "TSWGATE_AUTH_FAILURE_BURST", 20, func(c *Config) *int { return &c.AuthFailureBurst },
		"Failed authentications a client address may make at once before TSWGATE_AUTH_FAILURE_RATE applies. Allowed: 1 to 1000000.",
		checkInt(1, 1_000_000, "")),
	field(listKind, "TSWGATE_TRUSTED_PROXIES", nil, func(c *Config) *[]string { return &c.TrustedProxies },
		"CIDR ranges (comma-separated) of the load balancers in front of tswgate: from them X-Forwarded-For names the client "+
			"address (the right-most address not in these ranges), and their traceparent is continued. Empty: the connection's address is the client.",
		checkCIDRs),

	field(wordKind, "TSWGATE_LOG_LEVEL", "info", func(c *Config) *string { return &c.LogLevel },
		"Least severe log level written: debug, info, warn or error.",
		checkOneOf("debug", "info", "warn", "error")),
	field(wordKind, "TSWGATE_LOG_FORMAT", "json", func(c *Config) *string { return &c.LogFormat },
		"Log format: json or text.",
		checkOneOf("json", "text")),
	field(boolKind, "TSWGATE_ACCESS_LOG", true, func(c *Config) *bool { return &c.AccessLog },
		"Write one log line per request (message \"request\", in TSWGATE_LOG_FORMAT, to stderr through a buffer flushed every 100ms): "+
			"request id, method, path (never the query), status, token id, project, role, permission, refusal code, gateway and upstream milliseconds, "+
			"the rate-limit decision (limited tokens), the client address and the trace id (traced requests).",
		nil),
	field(listKind, "TSWGATE_METRICS_PROJECTS", nil, func(c *Config) *[]string { return &c.MetricsProjects },
		"Project ids, comma-separated (a JSON array in the config file), that get their own series tswgate_project_requests_total; "+
			"at most 1000. Each costs 3 series.",
		checkIDList(func(s string) bool {
			n, err := strconv.ParseInt(s, 10, 64)
			return err == nil && n > 0 && strconv.FormatInt(n, 10) == s
		}, "a project id (a positive whole number such as 42)")),
	field(listKind, "TSWGATE_METRICS_TOKENS", nil, func(c *Config) *[]string { return &c.MetricsTokens },
		"Token ids (tsw_…, never secrets), comma-separated (a JSON array in the config file), that get their own series "+
			"tswgate_token_requests_total; at most 1000. Each costs 3 series.",
		checkIDList(validTokenID, "a token id (tsw_ and 20 letters or digits)")),

	field(stringKind, "TSWGATE_REDIS_PREFIX", "tswgate:", func(c *Config) *string { return &c.RedisPrefix },
		"Prefix of every Redis key tswgate uses, to share a Redis database with other applications.",
		func(c *Config, v string, bad problem) {
			switch {
			case v == "":
				bad("must not be empty; use e.g. tswgate:")
			case strings.IndexFunc(v, isSpaceOrControl) >= 0:
				bad("%q contains spaces or control characters; use e.g. tswgate:", v)
			}
		}),

	field(durationKind, "TSWGATE_USAGE_FLUSH_INTERVAL", 10*time.Second, func(c *Config) *time.Duration { return &c.UsageFlushInterval },
		"How often each replica writes its per-token request counts and last-used times to the store (one batched write), and on shutdown: "+
			"the bound on how stale last_used and usage_24h are. Allowed: 1s to 5m.",
		checkDuration(time.Second, 5*time.Minute, "10s")),
	field(durationKind, "TSWGATE_EXPIRY_SWEEP_INTERVAL", time.Minute, func(c *Config) *time.Duration { return &c.ExpirySweepInterval },
		"How often each replica looks for tokens whose expiry passed (a walk of every token with Redis) to record their token.expire audit event, once cluster-wide. "+
			"Refusing expired tokens needs no sweep. Allowed: 1s to 1h.",
		checkDuration(time.Second, time.Hour, "1m")),
	field(intKind, "TSWGATE_AUDIT_MAX_EVENTS", 10000, func(c *Config) *int { return &c.AuditMaxEvents },
		"Audit events kept: per project with Redis (about: a capped stream), in all with the embedded store "+
			"(its audit file is rotated at this many events, keeping the previous file). Allowed: 100 to 10000000.",
		checkInt[int](100, 10_000_000, " events")),
	field(boolKind, "TSWGATE_SELF_SERVICE", true, func(c *Config) *bool { return &c.SelfService },
		"Serve the token API on the public listener under /tswgate/v1/ to Owner tokens, each for its own project (admin keys are not accepted there).",
		nil),
	field(intKind, "TSWGATE_MAX_TOKENS_PER_PROJECT", 1000, func(c *Config) *int { return &c.MaxTokensPerProject },
		"Most live tokens a project may have: creating one more, or rotating with a grace period, is refused (409 project_token_limit). "+
			"Bounds what an Owner token can mint through self-service. 0 means no bound. Allowed: 0 to 1000000.",
		checkInt(0, 1_000_000, " tokens")),

	field(stringKind, "TSWGATE_TLS_CERT_FILE", "", func(c *Config) *string { return &c.TLSCertFile },
		"PEM certificate (chain) of the public listener: with TSWGATE_TLS_KEY_FILE it serves HTTPS, HTTP/2 by ALPN and TLS 1.2 or later. "+
			"Both files are read again when they change (checked every 10s), so a renewal needs no restart. Empty: plain HTTP.",
		checkPair("TSWGATE_TLS_KEY_FILE", func(c *Config) string { return c.TLSKeyFile })),
	field(stringKind, "TSWGATE_TLS_KEY_FILE", "", func(c *Config) *string { return &c.TLSKeyFile },
		"PEM private key of TSWGATE_TLS_CERT_FILE.",
		checkPair("TSWGATE_TLS_CERT_FILE", func(c *Config) string { return c.TLSCertFile })),
	field(durationKind, "TSWGATE_HSTS_MAX_AGE", 0, func(c *Config) *time.Duration { return &c.HSTSMaxAge },
		"With TLS, the max-age of the Strict-Transport-Security header on every answer (e.g. 8760h); 0 sends none. Allowed: 0 to 17520h.",
		checkDuration(0, 2*8760*time.Hour, "8760h")),
	field(wordKind, "TSWGATE_ADMIN_MTLS", "off", func(c *Config) *string { return &c.AdminMTLS },
		"Client certificates on the admin listener, which then serves HTTPS with TSWGATE_TLS_CERT_FILE: off; with_key (a certificate "+
			"signed by TSWGATE_ADMIN_CLIENT_CA is required, and the admin key or an Owner token as before); instead_of_key (such a "+
			"certificate is required, and a request without Authorization is the admin).",
		func(c *Config, v string, bad problem) {
			checkOneOf("off", "with_key", "instead_of_key")(c, v, bad)
			if v != "off" && (c.AdminClientCA == "" || c.TLSCertFile == "") {
				bad("%s needs TSWGATE_ADMIN_CLIENT_CA and TSWGATE_TLS_CERT_FILE (with TSWGATE_TLS_KEY_FILE)", v)
			}
		}),
	field(stringKind, "TSWGATE_ADMIN_CLIENT_CA", "", func(c *Config) *string { return &c.AdminClientCA },
		"PEM bundle of the CAs whose client certificates the admin listener accepts (TSWGATE_ADMIN_MTLS).",
		nil),
	field(boolKind, "TSWGATE_H2C", false, func(c *Config) *bool { return &c.H2C },
		"Without TLS, also accept HTTP/2 over cleartext (h2c, prior knowledge) on the public listener, for a trusted load balancer in front.",
		nil),
	field(boolKind, "TSWGATE_FAST_PATH", true, func(c *Config) *bool { return &c.FastPath },
		"Without TLS, read plain HTTP/1.1 requests to /v1/ and /v2/ with tswgate's own strict reader, which costs less per request; "+
			"a request outside its narrow grammar (and the rest of its connection) is served by net/http, as with false.",
		nil),
	field(stringKind, "TSWGATE_UPSTREAM_CA_FILE", "", func(c *Config) *string { return &c.UpstreamCAFile },
		"PEM bundle of the CAs that the upstream API's certificate must chain to (https upstreams); empty: the system's.",
		nil),
	field(stringKind, "TSWGATE_UPSTREAM_CLIENT_CERT_FILE", "", func(c *Config) *string { return &c.UpstreamClientCertFile },
		"PEM client certificate presented to the upstream API (mTLS), so that it can accept the gateway alone; with TSWGATE_UPSTREAM_CLIENT_KEY_FILE.",
		checkPair("TSWGATE_UPSTREAM_CLIENT_KEY_FILE", func(c *Config) string { return c.UpstreamClientKeyFile })),
	field(stringKind, "TSWGATE_UPSTREAM_CLIENT_KEY_FILE", "", func(c *Config) *string { return &c.UpstreamClientKeyFile },
		"PEM private key of TSWGATE_UPSTREAM_CLIENT_CERT_FILE.",
		checkPair("TSWGATE_UPSTREAM_CLIENT_CERT_FILE", func(c *Config) string { return c.UpstreamClientCertFile })),

	field(boolKind, "TSWGATE_ASSERTION", true, func(c *Config) *bool { return &c.Assertion },
		"Send a signed identity assertion (an ES256 JWT, header X-Tsw-Assertion) with every forwarded request, its keys published at "+
			"/.well-known/jwks.json on the public listener. Keys come from TSWGATE_ASSERTION_KEY_FILES; when none are given, one is "+
			"generated: into TSWGATE_DATA_DIR with the embedded store, or into Redis sealed with TSWGATE_PEPPER, shared by the replicas.",
		nil),
	field(listKind, "TSWGATE_ASSERTION_KEY_FILES", nil, func(c *Config) *[]string { return &c.AssertionKeyFiles },
		"PEM files of P-256 keys (comma-separated): the first signs, all are published. To rotate: add the new key second, then make it first, "+
			"then remove the old one once TSWGATE_ASSERTION_TTL has passed. Replicas must share them.",
		nil),
	field(durationKind, "TSWGATE_ASSERTION_TTL", time.Minute, func(c *Config) *time.Duration { return &c.AssertionTTL },
		"How long an identity assertion is valid; each token's is reused for half of that. Allowed: 10s to 1h.",
		checkDuration(10*time.Second, time.Hour, "1m")),
	field(stringKind, "TSWGATE_ASSERTION_ISSUER", "tswgate", func(c *Config) *string { return &c.AssertionIssuer },
		"The iss claim of identity assertions (e.g. the gateway's public URL); their aud claim is TSWGATE_UPSTREAM_URL.",
		nil),

	field(stringKind, "TSWGATE_OTLP_ENDPOINT", "", func(c *Config) *string { return &c.OTLPEndpoint },
		"OpenTelemetry collector (OTLP over HTTP) to send traces to, e.g. http://otel-collector:4318: a span per request with child spans "+
			"for the decision, store reads, limiter leases and the upstream call, whose traceparent is sent upstream; trace ids go in the "+
			"access log. Empty: no tracing, at no cost.",
		func(c *Config, v string, bad problem) {
			if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				bad("%q is not an http(s) URL; use e.g. http://otel-collector:4318", v)
			}
		}),
	field(floatKind, "TSWGATE_TRACE_SAMPLE_RATIO", 0.1, func(c *Config) *float64 { return &c.TraceSampleRatio },
		"Share of requests traced when TSWGATE_OTLP_ENDPOINT is set; a traceparent from TSWGATE_TRUSTED_PROXIES decides for its "+
			"request, one from another peer is only linked. Allowed: 0 to 1.",
		func(c *Config, v float64, bad problem) {
			if v < 0 || v > 1 {
				bad("%g is not between 0 and 1; use e.g. 0.1", v)
			}
		}),

	field(boolKind, "TSWGATE_WEBHOOKS", true, func(c *Config) *bool { return &c.Webhooks },
		"Deliver signed webhooks (Standard Webhooks) of token events to the endpoints registered through the token API, from a durable queue "+
			"(a Redis stream, or a file in TSWGATE_DATA_DIR).",
		nil),
	field(boolKind, "TSWGATE_WEBHOOK_PRIVATE_OPERATOR", true, func(c *Config) *bool { return &c.WebhookPrivateOperator },
		"Let the operator's webhook endpoints (admin key) be on private addresses and plain http; a project's endpoints never may.",
		nil),
	field(intKind, "TSWGATE_WEBHOOK_RATE_LIMITED_THRESHOLD", 100, func(c *Config) *int { return &c.WebhookRateLimitedThreshold },
		"rate_limited refusals of one token within a minute, on one replica, that raise a token.rate_limited event (at most one per token per 15m). Allowed: 1 to 1000000.",
		checkInt(1, 1_000_000, " refusals")),
	field(intKind, "TSWGATE_WEBHOOK_MAX_PENDING", 1000, func(c *Config) *int { return &c.WebhookMaxPending },
		"Undelivered webhook messages kept per endpoint (pending or retrying); beyond it new events for that endpoint are dropped, "+
			"counted in tswgate_webhook_deliveries_dropped_total and shown in the endpoint's queue in the webhook API. Allowed: 1 to 1000000.",
		checkInt(1, 1_000_000, " messages")),
	field(intKind, "TSWGATE_WEBHOOK_MAX_PENDING_PER_PROJECT", 100, func(c *Config) *int { return &c.WebhookMaxPendingPerProject },
		"Undelivered webhook messages of one project kept per endpoint that receives every project's events (the operator's), so that "+
			"one busy project cannot fill it; beyond it that project's new events for it are dropped (reason project_queue_full). Allowed: 1 to 1000000.",
		checkInt(1, 1_000_000, " messages")),
	field(stringKind, "TSWGATE_SECRET_SCANNING_KEYS", "", func(c *Config) *string { return &c.SecretScanningKeys },
		"GitHub's secret scanning public keys, a file path or an https URL (https://api.github.com/meta/public_keys/secret_scanning): "+
			"enables the partner endpoint POST /tswgate/v1/secret-scanning/github on the public listener. Empty disables it.",
		checkKeySource),
	field(boolKind, "TSWGATE_PUBLIC_REVOKE", true, func(c *Config) *bool { return &c.PublicRevoke },
		"Serve POST /tswgate/v1/credentials/revoke on the public listener: anyone holding a leaked token may revoke it (rate-limited per address).",
		nil),
}

func withShow(s setting, show func(c *Config) string) setting {
	s.show = show
	return s
}

func setOrUnset(set bool) string {
	if set {
		return "set"
	}
	return "unset"
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// checkAddr checks a listen address. An empty one is allowed if optional.
// others are the settings it must not collide with.
func checkAddr(optional bool, example string, others ...string) func(c *Config, v string, bad problem) {
	return func(c *Config, v string, bad problem) {
		if v == "" {
			if !optional {
				bad("must not be empty; use a host:port address such as %s", example)
			}
			return
		}
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			bad("%q is not a host:port address; use e.g. %s, or :port to listen on every interface", v, example)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("%q has an invalid port; use a port number from 1 to 65535, e.g. %s", v, example)
			return
		}
		for _, o := range others {
			if ov := addrOf(c, o); collide(v, ov) {
				bad("%s collides with %s (%s); use a different port", v, o, ov)
			}
		}
	}
}

func addrOf(c *Config, env string) string {
	switch env {
	case "TSWGATE_LISTEN_ADDR":
		return c.ListenAddr
	case "TSWGATE_ADMIN_ADDR":
		return c.AdminAddr
	}
	return ""
}

// collide reports whether listening on a and b would conflict: same port,
// and same host or either on every interface.
func collide(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if n, err := strconv.Atoi(pa); err != nil || n == 0 { // port 0 picks a free port
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// parseUpstream parses and checks an upstream URL; msg says what is wrong.
func parseUpstream(v string) (u *url.URL, msg string) {
	const fix = "use the API's base URL such as https://api.tsw.io"
	if v == "" {
		return nil, "must not be empty; " + fix
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return nil, "is not a valid URL; " + fix // v is not shown: it may hold credentials
	case u.User != nil:
		return nil, "must not contain a user name or password (it would be logged); " + fix
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Sprintf("%q must start with https:// or http://; %s", v, fix)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Sprintf("%q has no host; %s", v, fix)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Sprintf("%q must not have a query (?...); %s", v, fix)
	case u.Fragment != "" || strings.Contains(v, "#"):
		return nil, fmt.Sprintf("%q must not have a fragment (#...); %s", v, fix)
	}
	return u, ""
}

// checkSecret checks the admin key or the pepper: required with Redis
// (why says why), at least minSecretLen bytes when set. It never shows the
// value.
func checkSecret(why string) func(c *Config, v string, bad problem) {
	return func(c *Config, v string, bad problem) {
		const fix = "set it to a random string of at least 32 characters"
		switch {
		case v == "" && c.RedisURL != "":
			bad("required when TSWGATE_REDIS_URL is set (%s); %s", why, fix)
		case v != "" && len(v) < minSecretLen:
			bad("too short (%d characters); %s", len(v), fix)
		case v != "" && strings.TrimSpace(v) != v:
			bad("starts or ends with white space, probably by mistake; remove it")
		}
	}
}

// positive is the lower bound of checkDuration for durations that must be
// greater than 0.
const positive = time.Nanosecond

// checkDuration checks that a duration is at least lo and, if hi > 0, at
// most hi. example is a valid value to suggest.
func checkDuration(lo, hi time.Duration, example string) func(c *Config, v time.Duration, bad problem) {
	return func(c *Config, v time.Duration, bad problem) {
		switch {
		case v < lo && lo == positive:
			bad("must be greater than 0; use a duration such as %s", example)
		case v < lo && lo == 0:
			bad("must not be negative; use 0 to disable or a duration such as %s", example)
		case v < lo:
			bad("%s is too short; use at least %s", formatDuration(v), formatDuration(lo))
		case hi > 0 && v > hi:
			bad("%s is too long; use at most %s", formatDuration(v), formatDuration(hi))
		}
	}
}

// checkInt checks that a number is at least lo and, if hi > 0, at most hi.
func checkInt[T int | int64](lo, hi T, unit string) func(c *Config, v T, bad problem) {
	return func(c *Config, v T, bad problem) {
		switch {
		case v < lo:
			bad("%d is too small; use at least %d%s", v, lo, unit)
		case hi > 0 && v > hi:
			bad("%d is too large; use at most %d%s", v, hi, unit)
		}
	}
}

// checkPair checks that a file setting and its partner are both set or
// both empty.
func checkPair(otherEnv string, other func(*Config) string) func(c *Config, v string, bad problem) {
	return func(c *Config, v string, bad problem) {
		if v != "" && other(c) == "" {
			bad("needs %s too; set both or neither", otherEnv)
		}
	}
}

func checkRate(c *Config, v float64, bad problem) {
	switch {
	case v < 0:
		bad("%g is negative; use 0 for unlimited or a rate in requests per second such as 10", v)
	case v > maxRate:
		bad("%g is too large; use at most %g requests per second, or 0 for unlimited", v, float64(maxRate))
	case v > 0 && v < minRate:
		bad("%g is too small; use at least %g requests per second (one request in 11 days), or 0 for unlimited", v, minRate)
	}
}

func checkBurst(rateEnv string, rate func(*Config) float64) func(c *Config, v int, bad problem) {
	return func(c *Config, v int, bad problem) {
		switch {
		case v < 0:
			bad("%d is negative; use 0 for ceil(%s) or a positive number of requests", v, rateEnv)
		case v > 0 && rate(c) == 0:
			bad("has no effect without %s (0 means unlimited); set %s too, or remove this setting", rateEnv, rateEnv)
		}
	}
}

// maxMetricsIDs bounds TSWGATE_METRICS_PROJECTS and TSWGATE_METRICS_TOKENS,
// and so the cardinality of their series.
const maxMetricsIDs = 1000

// checkIDList checks an allow-list of ids: each valid (what says what one
// is), none repeated, at most maxMetricsIDs.
func checkIDList(valid func(string) bool, what string) func(c *Config, v []string, bad problem) {
	return func(c *Config, v []string, bad problem) {
		if len(v) > maxMetricsIDs {
			bad("has %d entries; use at most %d (each adds series to every scrape)", len(v), maxMetricsIDs)
		}
		seen := make(map[string]bool, len(v))
		for i, s := range v {
			switch {
			case !valid(s):
				bad("entry %d (%q) is not %s", i+1, s, what)
			case seen[s]:
				bad("entry %d (%q) is repeated; list each id once", i+1, s)
			}
			seen[s] = true
		}
	}
}

// validTokenID is auth.ValidID (config imports nothing of tswgate):
// "tsw_" and 20 base62 characters. A test in cmd/tswgate checks that they
// agree.
func validTokenID(s string) bool {
	const prefix, randLen = "tsw_", 20
	if len(s) != len(prefix)+randLen || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// ValidTokenID reports whether s is a well-formed token id, as
// TSWGATE_METRICS_TOKENS requires.
func ValidTokenID(s string) bool { return validTokenID(s) }

func checkCIDRs(c *Config, v []string, bad problem) {
	for i, s := range v {
		p, err := netip.ParsePrefix(s)
		if err == nil && p.Addr().Is4In6() && p.Bits() < 96 {
			bad("entry %d (%q) is an IPv4-mapped range shorter than /96, which holds no IPv4 client; write the IPv4 range, e.g. 10.0.0.0/8", i+1, s)
			continue
		}
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				bad("entry %d (%q) is an address, not a range; use %s/%d", i+1, s, s, a.BitLen())
				continue
			}
			bad("entry %d (%q) is not a CIDR range; use e.g. 10.0.0.0/8 or fd00::/8", i+1, s)
		}
	}
}

// checkKeySource checks TSWGATE_SECRET_SCANNING_KEYS: a value naming a
// URL scheme must be an https URL with a host (the gateway reads anything
// else as a file path, and would never find "http://…"); others are file
// paths.
func checkKeySource(_ *Config, v string, bad problem) {
	if !strings.Contains(v, "://") {
		return
	}
	if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Hostname() == "" {
		bad("%q is not an https URL; fetch the keys over https (https://api.github.com/meta/public_keys/secret_scanning) "+
			"or give a file path", v)
	}
}

func checkOneOf(words ...string) func(c *Config, v string, bad problem) {
	return func(c *Config, v string, bad problem) {
		if !slices.Contains(words, v) {
			bad("%q is not valid; use %s", v, orList(words))
		}
	}
}

// orList renders a, b or c.
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
