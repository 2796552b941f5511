package config

import (
	"strings"
	"testing"
)

// documentedBounds are the values each number and duration setting
// accepts, as its description states them in a closing "Allowed: …"
// sentence (docs/configuration.md). ok are values at the bounds, bad
// values just past them; with are other settings a probe needs.
var documentedBounds = []struct {
	env     string
	allowed string
	ok, bad []string
	with    []string
}{
	{env: "TSWGATE_CACHE_TTL", allowed: "more than 0, at most 10m", ok: []string{"1ns", "10m"}, bad: []string{"0", "10m1ns"},
		with: []string{"TSWGATE_NEGATIVE_CACHE_TTL=1ns"}},
	{env: "TSWGATE_NEGATIVE_CACHE_TTL", allowed: "more than 0, at most TSWGATE_CACHE_TTL", ok: []string{"1ns", "10s"}, bad: []string{"0", "10s1ns"}},
	{env: "TSWGATE_CACHE_MAX_ENTRIES", allowed: "at least 100", ok: []string{"100"}, bad: []string{"99"}},
	{env: "TSWGATE_STALE_IF_ERROR", allowed: "0 or more", ok: []string{"0"}, bad: []string{"-1ns"}},
	{env: "TSWGATE_STORE_TIMEOUT", allowed: "more than 0, at most 10s", ok: []string{"1ns", "10s"}, bad: []string{"0", "10s1ns"}},
	{env: "TSWGATE_REVOKED_RETENTION", allowed: "at least 1m", ok: []string{"1m"}, bad: []string{"59s"}},
	{env: "TSWGATE_MAX_BODY_SCAN", allowed: "1024 to 67108864", ok: []string{"1024", "67108864"}, bad: []string{"1023", "67108865"}},
	{env: "TSWGATE_MAX_HEADER_BYTES", allowed: "at least 4096", ok: []string{"4096"}, bad: []string{"4095"}},
	{env: "TSWGATE_MAX_CONNECTIONS", allowed: "0 to 1000000", ok: []string{"0", "1000000"}, bad: []string{"-1", "1000001"}},
	{env: "TSWGATE_READ_HEADER_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_READ_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_WRITE_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_IDLE_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_UPSTREAM_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_SHUTDOWN_TIMEOUT", allowed: "more than 0", ok: []string{"1ns"}, bad: []string{"0"}},
	{env: "TSWGATE_SHUTDOWN_DELAY", allowed: "0 to 5m", ok: []string{"0", "5m"}, bad: []string{"-1ns", "5m1ns"}},
	{env: "TSWGATE_RATE_OWNER", allowed: "0, or 0.000001 to 1000000", ok: []string{"0", "0.000001", "1000000"},
		bad: []string{"-0.1", "0.0000009", "1000000.1"}},
	{env: "TSWGATE_BURST_OWNER", allowed: "0 or more; more than 0 only with TSWGATE_RATE_OWNER", ok: []string{"0", "1"}, bad: []string{"-1"},
		with: []string{"TSWGATE_RATE_OWNER=1"}},
	{env: "TSWGATE_RATE_ACCOUNTING", allowed: "0, or 0.000001 to 1000000", ok: []string{"0", "0.000001", "1000000"},
		bad: []string{"-0.1", "0.0000009", "1000000.1"}},
	{env: "TSWGATE_BURST_ACCOUNTING", allowed: "0 or more; more than 0 only with TSWGATE_RATE_ACCOUNTING", ok: []string{"0", "1"}, bad: []string{"-1"},
		with: []string{"TSWGATE_RATE_ACCOUNTING=1"}},
	{env: "TSWGATE_RATELIMIT_LEASE", allowed: "1ms to 10s", ok: []string{"1ms", "10s"}, bad: []string{"999us", "10s1ns"}},
	{env: "TSWGATE_AUTH_FAILURE_RATE", allowed: "0, or 0.000001 to 1000000", ok: []string{"0", "0.000001", "1000000"},
		bad: []string{"-0.1", "0.0000009", "1000000.1"}},
	{env: "TSWGATE_AUTH_FAILURE_BURST", allowed: "1 to 1000000", ok: []string{"1", "1000000"}, bad: []string{"0", "1000001"}},
	{env: "TSWGATE_HSTS_MAX_AGE", allowed: "0 to 17520h", ok: []string{"0", "17520h"}, bad: []string{"-1ns", "17520h0m0.000000001s"}},
	{env: "TSWGATE_ASSERTION_TTL", allowed: "10s to 1h", ok: []string{"10s", "1h"}, bad: []string{"9s", "1h0m0.000000001s"}},
	{env: "TSWGATE_TRACE_SAMPLE_RATIO", allowed: "0 to 1", ok: []string{"0", "1"}, bad: []string{"-0.1", "1.1"}},
	{env: "TSWGATE_WEBHOOK_RATE_LIMITED_THRESHOLD", allowed: "1 to 1000000", ok: []string{"1", "1000000"}, bad: []string{"0", "1000001"}},
	{env: "TSWGATE_WEBHOOK_MAX_PENDING", allowed: "1 to 1000000", ok: []string{"1", "1000000"}, bad: []string{"0", "1000001"}},
	{env: "TSWGATE_WEBHOOK_MAX_PENDING_PER_PROJECT", allowed: "1 to 1000000", ok: []string{"1", "1000000"}, bad: []string{"0", "1000001"}},
	{env: "TSWGATE_USAGE_FLUSH_INTERVAL", allowed: "1s to 5m", ok: []string{"1s", "5m"}, bad: []string{"999ms", "5m1ns"}},
	{env: "TSWGATE_EXPIRY_SWEEP_INTERVAL", allowed: "1s to 1h", ok: []string{"1s", "1h"}, bad: []string{"999ms", "1h0m0.000000001s"}},
	{env: "TSWGATE_AUDIT_MAX_EVENTS", allowed: "100 to 10000000", ok: []string{"100", "10000000"}, bad: []string{"99", "10000001"}},
	{env: "TSWGATE_MAX_TOKENS_PER_PROJECT", allowed: "0 to 1000000", ok: []string{"0", "1000000"}, bad: []string{"-1", "1000001"}},
}

// loadProblem loads the environment env and returns the problems it
// reports of the variable name, "" when there are none.
func loadProblem(name string, env []string) string {
	_, err := Load("", env)
	var mine []string
	for _, l := range errLines(err) {
		if strings.HasPrefix(l, name+":") {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, "; ")
}

// TestSettingsDocumentBounds: every number and duration setting states
// the values it accepts in its description ("Allowed: …"), and the
// validation accepts exactly those: each bound itself, and not the value
// just past it.
func TestSettingsDocumentBounds(t *testing.T) {
	desc := map[string]string{}
	for _, s := range Settings() {
		desc[s.Env] = s.Description
	}
	listed := map[string]bool{}
	for _, b := range documentedBounds {
		listed[b.env] = true
		if d, ok := desc[b.env]; !ok {
			t.Errorf("%s is not a setting", b.env)
			continue
		} else if want := "Allowed: " + b.allowed + "."; !strings.HasSuffix(d, want) {
			t.Errorf("%s: description %q does not end with %q", b.env, d, want)
		}
		for _, v := range b.ok {
			if p := loadProblem(b.env, append([]string{b.env + "=" + v}, b.with...)); p != "" {
				t.Errorf("%s=%s is refused (%s), but the docs allow %s", b.env, v, p, b.allowed)
			}
		}
		for _, v := range b.bad {
			if p := loadProblem(b.env, append([]string{b.env + "=" + v}, b.with...)); p == "" {
				t.Errorf("%s=%s is accepted, but the docs allow %s", b.env, v, b.allowed)
			}
		}
	}
	// Every setting that takes a number or a duration is listed.
	for _, s := range Settings() {
		p := loadProblem(s.Env, []string{s.Env + "=x"})
		numeric := strings.Contains(p, "is not a number") || strings.Contains(p, "is not a whole number") ||
			strings.Contains(p, "is not a duration")
		if numeric && !listed[s.Env] {
			t.Errorf("%s takes a number or a duration: add its bounds to documentedBounds and its description", s.Env)
		}
	}
}

// TestSettingsDocumentWords: a setting that takes one of a few words names
// each of them in its description.
func TestSettingsDocumentWords(t *testing.T) {
	words := 0
	for _, s := range Settings() {
		_, err := Load("", []string{s.Env + "=x"})
		var list string
		for _, l := range errLines(err) {
			if after, ok := strings.CutPrefix(l, s.Env+`: "x" is not valid; use `); ok {
				list = after
			}
		}
		if list == "" {
			continue
		}
		words++
		for _, w := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
			if w != "or" && !strings.Contains(s.Description, w) {
				t.Errorf("%s accepts %q, which its description does not name", s.Env, w)
			}
		}
	}
	if words < 5 {
		t.Errorf("found %d settings that take words: is the probe broken?", words)
	}
}

// TestCheckExampleDocumented: the example of "tswgate serve --check" on
// docs/configuration.md shows the errors Load reports.
func TestCheckExampleDocumented(t *testing.T) {
	_, err := Load("", []string{"TSWGATE_CACHE_TTL=10", "TSWGATE_LISTEN_ADR=:8080"})
	lines := errLines(err)
	if len(lines) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	for _, l := range lines {
		if !strings.Contains(configurationTemplate, "\n"+l+"\n") {
			t.Errorf("configuration.md.tmpl's example lacks the line %q", l)
		}
	}
}
