package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/redistest"
)

// contractMetrics lists every metric family of the metric contract, which
// the Grafana dashboard and the Prometheus alert rules (deploy/) are built
// on. TestE2EMetricsContract checks that a running gateway exposes each.
var contractMetrics = []string{
	"tswgate_requests_total",
	"tswgate_request_duration_seconds",
	"tswgate_gateway_duration_seconds",
	"tswgate_upstream_duration_seconds",
	"tswgate_refusals_total",
	"tswgate_cache_lookups_total",
	"tswgate_cache_evictions_total",
	"tswgate_store_reads_total",
	"tswgate_store_read_duration_seconds",
	"tswgate_store_writes_total",
	"tswgate_ratelimit_decisions_total",
	"tswgate_invalidations_total",
	"tswgate_invalidation_lag_seconds",
	"tswgate_pubsub_reconnects_total",
	"tswgate_tokens",
	"tswgate_connections_open",
	"tswgate_connection_limit_waits_total",
	"tswgate_build_info",
	"tswgate_project_requests_total",
	"tswgate_token_requests_total",
	"go_goroutines",
	"go_memstats_heap_alloc_bytes",
	"process_open_fds",
}

// scrape is one /metrics page: the families (from # TYPE) and the samples.
type scrape struct {
	families map[string]string // name → type
	samples  []sample
	text     string
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func mustScrape(t testing.TB, g *testGateway) *scrape {
	t.Helper()
	r := g.MustGet(t, g.MetricsURL+"/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	s := &scrape{families: map[string]string{}, text: string(r.Body)}
	sc := bufio.NewScanner(strings.NewReader(s.text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			s.families[name] = typ
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			t.Fatalf("unreadable sample %q", line)
		}
		series := line[:cut]
		smp := sample{name: series, labels: map[string]string{}, value: v}
		if i := strings.IndexByte(series, '{'); i >= 0 {
			smp.name = series[:i]
			for _, kv := range splitLabels(series[i+1 : len(series)-1]) {
				k, val, _ := strings.Cut(kv, "=")
				smp.labels[k], _ = strconv.Unquote(val)
			}
		}
		s.samples = append(s.samples, smp)
	}
	return s
}

// splitLabels splits `a="x",b="y,z"` at the commas between labels.
func splitLabels(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// sum adds the samples of name whose labels include want.
func (s *scrape) sum(name string, want map[string]string) (total float64, found bool) {
	for _, smp := range s.samples {
		if smp.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if smp.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			total += smp.value
			found = true
		}
	}
	return total, found
}

// labelValues returns the values label takes in name's samples.
func (s *scrape) labelValues(name, label string) []string {
	var out []string
	for _, smp := range s.samples {
		if v, ok := smp.labels[label]; smp.name == name && ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// mustCreateWithCredential stores a token record under an id chosen before
// the gateway started (so that it can be allow-listed) and returns its
// credential.
func (g *testGateway) mustCreateWithCredential(t testing.TB, id, cred string, project int64, role auth.Role) {
	t.Helper()
	tok := &auth.Token{
		ID: id, ProjectID: project, Name: "listed", Role: role, Status: auth.StatusActive,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	rememberSecret(cred)
	tok.SecretHash, tok.PepperID = g.Hasher().Hash(cred)
	if err := g.Store().Create(context.Background(), tok); err != nil {
		t.Fatalf("store.Create: %v", err)
	}
}

// TestE2EMetricsContract drives traffic of every kind through a gateway
// and checks /metrics against the metric contract.
func TestE2EMetricsContract(t *testing.T) {
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") == "1" {
			panic(http.ErrAbortHandler) // the connection drops: 502 upstream_error
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true,"message":""}`))
	}))
	listedID, listedCred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	const otherProject = 7
	g := MustStartGatewayOpts(t, gatewayOptions{
		Upstream: up.URL,
		Env: []string{
			"TSWGATE_RATE_OWNER=1", "TSWGATE_BURST_OWNER=1",
			"TSWGATE_METRICS_PROJECTS=" + strconv.Itoa(testProject),
			"TSWGATE_METRICS_TOKENS=" + listedID,
		},
		TokenCountEvery: 20 * time.Millisecond,
	})
	ctx := context.Background()
	// With a rate of 1/s and a burst of 1, each owner token below makes
	// one request, but for the one that is rate limited.
	g.mustCreateWithCredential(t, listedID, listedCred, testProject, auth.RoleOwner)
	owners := 1
	newOwner := func(project int64, name string) string {
		owners++
		return g.MustCreateToken(t, project, "owner", name).Token
	}
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")
	otherOwner := newOwner(otherProject, "other-project")
	unlisted := newOwner(testProject, "unlisted")

	// Allowed: owner compute.read, accounting billing.read.
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", listedCred, nil))
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Invoice?ProjectId=42", acct.Token, nil))
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=7", otherOwner, nil))
	// Refusals of several codes.
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", "", nil), auth.CodeMissingToken)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, listedID), nil), auth.CodeInvalidToken)
	MustBeRefused(t, g.MustCall(t, "POST", "/v2/Instance", acct.Token, []byte(`{}`)), auth.CodePermissionDenied)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Invoice?ProjectId=9", acct.Token, nil), auth.CodeProjectMismatch)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Nowhere", acct.Token, nil), auth.CodeUnknownRoute)
	// A 502.
	if r := g.MustCall(t, "GET", "/v2/Instance?fail=1", unlisted, nil); r.Status != http.StatusBadGateway {
		t.Fatalf("want 502, got %s", r)
	}
	// Rate limited: a fresh owner token's second request.
	limited := newOwner(testProject, "limited")
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", limited, nil))
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", limited, nil), auth.CodeRateLimited)
	// Token API writes: list, update, revoke; then the revoked token.
	if _, err := g.Admin.List(ctx, testProject); err != nil {
		t.Fatal(err)
	}
	inactive := "inactive"
	if _, err := g.Admin.Update(ctx, acct.ID, tokenapi.UpdateRequest{Status: &inactive}); err != nil {
		t.Fatal(err)
	}
	revoked := g.MustCreateToken(t, testProject, "owner", "revoked")
	if _, err := g.Admin.Revoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", revoked.Token, nil), auth.CodeTokenRevoked)

	// tswgate_tokens is recounted every 20ms: wait for the last changes.
	var s *scrape
	MustPoll(t, 5*time.Second, "tswgate_tokens to count the live tokens", func() (bool, string) {
		s = mustScrape(t, g)
		active, _ := s.sum("tswgate_tokens", map[string]string{"role": "owner", "status": "active"})
		inact, _ := s.sum("tswgate_tokens", map[string]string{"role": "accounting", "status": "inactive"})
		return active == float64(owners) && inact == 1, "owner/active " + strconv.FormatFloat(active, 'g', -1, 64)
	})

	for _, name := range contractMetrics {
		typ, ok := s.families[name]
		if !ok {
			t.Errorf("/metrics lacks the family %s", name)
			continue
		}
		want := "gauge"
		switch {
		case !strings.HasPrefix(name, "tswgate_"):
			continue
		case strings.HasSuffix(name, "_total"):
			want = "counter"
		case strings.HasSuffix(name, "_seconds"):
			want = "histogram"
		}
		if typ != want {
			t.Errorf("%s is a %s, want a %s", name, typ, want)
		}
	}
	atLeast := func(name string, labels map[string]string, min float64) {
		t.Helper()
		v, found := s.sum(name, labels)
		if !found || v < min {
			t.Errorf("%s%v = %v (found %v), want ≥ %v", name, labels, v, found, min)
		}
	}
	equal := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if v, _ := s.sum(name, labels); v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	atLeast("tswgate_requests_total", map[string]string{"role": "owner", "permission": "compute.read", "method": "GET", "status": "200"}, 1)
	atLeast("tswgate_requests_total", map[string]string{"role": "accounting", "permission": "billing.read", "method": "GET", "status": "200"}, 1)
	atLeast("tswgate_requests_total", map[string]string{"role": "none", "permission": "none", "method": "GET", "status": "401"}, 2)
	atLeast("tswgate_requests_total", map[string]string{"role": "accounting", "permission": "compute.write", "method": "POST", "status": "403"}, 1)
	atLeast("tswgate_requests_total", map[string]string{"role": "owner", "permission": "compute.read", "method": "GET", "status": "502"}, 1)
	atLeast("tswgate_requests_total", map[string]string{"role": "owner", "status": "429"}, 1)
	for _, reason := range []string{"missing_token", "invalid_token", "permission_denied", "project_mismatch",
		"unknown_route", "rate_limited", "token_revoked", "upstream_error"} {
		atLeast("tswgate_refusals_total", map[string]string{"reason": reason}, 1)
	}
	if _, ok := s.sum("tswgate_refusals_total", map[string]string{"reason": "upstream_timeout"}); !ok {
		t.Error("tswgate_refusals_total{reason=upstream_timeout} is not exposed before the first timeout")
	}
	atLeast("tswgate_request_duration_seconds_count", map[string]string{"outcome": "proxied"}, 5)
	atLeast("tswgate_request_duration_seconds_count", map[string]string{"outcome": "refused"}, 7)
	atLeast("tswgate_gateway_duration_seconds_count", map[string]string{"outcome": "proxied"}, 5)
	atLeast("tswgate_gateway_duration_seconds_count", map[string]string{"outcome": "refused"}, 7)
	atLeast("tswgate_upstream_duration_seconds_count", map[string]string{"permission": "compute.read"}, 3)
	atLeast("tswgate_upstream_duration_seconds_count", map[string]string{"permission": "billing.read"}, 1)
	atLeast("tswgate_cache_lookups_total", map[string]string{"result": "miss"}, 1)
	atLeast("tswgate_cache_lookups_total", map[string]string{"result": "hit"}, 1)
	atLeast("tswgate_cache_evictions_total", nil, 0)
	atLeast("tswgate_store_reads_total", map[string]string{"result": "ok"}, 1)
	atLeast("tswgate_store_read_duration_seconds_count", nil, 1)
	for _, op := range []string{"create", "update", "revoke", "list"} {
		atLeast("tswgate_store_writes_total", map[string]string{"op": op, "result": "ok"}, 1)
		equal("tswgate_store_writes_total", map[string]string{"op": op, "result": "error"}, 0)
	}
	atLeast("tswgate_ratelimit_decisions_total", map[string]string{"decision": "limited"}, 1)
	atLeast("tswgate_ratelimit_decisions_total", map[string]string{"decision": "allowed"}, 4)
	equal("tswgate_ratelimit_decisions_total", map[string]string{"decision": "shadow"}, 0)
	equal("tswgate_ratelimit_decisions_total", map[string]string{"decision": "fail_open"}, 0)
	atLeast("tswgate_invalidations_total", map[string]string{"kind": "changed"}, 1)
	atLeast("tswgate_invalidations_total", map[string]string{"kind": "resync"}, 1)
	atLeast("tswgate_invalidation_lag_seconds_count", nil, 0)
	equal("tswgate_pubsub_reconnects_total", nil, 0)
	equal("tswgate_tokens", map[string]string{"role": "accounting", "status": "active"}, 0)
	equal("tswgate_tokens", map[string]string{"role": "owner", "status": "inactive"}, 0)
	if got := s.labelValues("tswgate_tokens", "role"); !slices.Equal(got, []string{"accounting", "owner"}) {
		t.Errorf("tswgate_tokens roles %v", got)
	}
	if v, ok := s.sum("tswgate_build_info", nil); !ok || v != 1 {
		t.Errorf("tswgate_build_info = %v", v)
	}
	for _, l := range []string{"version", "revision", "goversion"} {
		if vs := s.labelValues("tswgate_build_info", l); len(vs) != 1 || vs[0] == "" {
			t.Errorf("tswgate_build_info{%s} = %v", l, vs)
		}
	}
	// Opt-in series: only the allow-listed project and token.
	if got := s.labelValues("tswgate_project_requests_total", "project_id"); !slices.Equal(got, []string{"42"}) {
		t.Errorf("project series for %v, want only 42", got)
	}
	atLeast("tswgate_project_requests_total", map[string]string{"project_id": "42", "outcome": "allowed"}, 3)
	atLeast("tswgate_project_requests_total", map[string]string{"project_id": "42", "outcome": "refused"}, 2)
	atLeast("tswgate_project_requests_total", map[string]string{"project_id": "42", "outcome": "rate_limited"}, 1)
	if got := s.labelValues("tswgate_token_requests_total", "token_id"); !slices.Equal(got, []string{listedID}) {
		t.Errorf("token series for %v, want only %s", got, listedID)
	}
	equal("tswgate_token_requests_total", map[string]string{"token_id": listedID, "project_id": "42", "outcome": "allowed"}, 1)
	// A forged credential of the listed id is refused before the token is
	// known: no series of its own.
	equal("tswgate_token_requests_total", map[string]string{"token_id": listedID, "outcome": "refused"}, 0)
	// Methods and statuses stay in their label sets.
	for _, m := range s.labelValues("tswgate_requests_total", "method") {
		if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"}, m) {
			t.Errorf("method label %q", m)
		}
	}
	if strings.Contains(s.text, secretOf(listedCred)) {
		t.Error("/metrics shows a secret")
	}
}

// TestE2EMetricsMethodOther: methods outside the API's set are one label.
func TestE2EMetricsMethodOther(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	tok := g.MustCreateToken(t, testProject, "owner", "owner")
	r := MustDo(t, g.HTTP, MustNewRequest(t, "PROPFIND", g.URL+"/v2/Instance", tok.Token, nil))
	if r.Status < 400 {
		t.Fatalf("PROPFIND was answered %d", r.Status)
	}
	s := mustScrape(t, g)
	if got := s.labelValues("tswgate_requests_total", "method"); !slices.Equal(got, []string{"OTHER"}) {
		t.Errorf("methods %v, want [OTHER]", got)
	}
}

// TestE2EAccessLog: one JSON line per request, with the fields, and never
// the query string or a secret.
func TestE2EAccessLog(t *testing.T) {
	up := MustStartUpstream(t, nil)
	access := newSyncBuffer()
	g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: access})
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")

	type call struct {
		method, path, cred string
		status             int
		code, role, perm   string
		tokenID            string
	}
	calls := []call{
		{"GET", "/v2/Instance?ProjectId=42&Tag=s3cr3t-query", owner.Token, 200, "ok", "owner", "compute.read", owner.ID},
		{"POST", "/v2/Instance", acct.Token, 403, "permission_denied", "accounting", "compute.write", acct.ID},
		{"GET", "/v2/Instance?x=y", MustForgeCredential(t, owner.ID), 401, "invalid_token", "none", "none", ""},
		{"GET", "/v2/Invoice", "", 401, "missing_token", "none", "none", ""},
	}
	var ids []string
	for _, c := range calls {
		var body []byte
		if c.method == "POST" {
			body = []byte(`{}`)
		}
		r := g.MustCall(t, c.method, c.path, c.cred, body)
		if r.Status != c.status {
			t.Fatalf("%s %s: %s", c.method, c.path, r)
		}
		ids = append(ids, r.Header.Get("X-Request-Id"))
	}
	// The lines are flushed within 100ms; Shutdown flushes the rest.
	if err := g.ShutdownOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := access.String()
	for _, bad := range []string{"s3cr3t-query", "ProjectId", "x=y", secretOf(owner.Token), secretOf(acct.Token), "tswsk_"} {
		if strings.Contains(out, bad) {
			t.Errorf("the access log holds %q:\n%s", bad, out)
		}
	}
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != len(calls) {
		t.Fatalf("%d access log lines for %d requests:\n%s", len(lines), len(calls), out)
	}
	for i, c := range calls {
		l := lines[i]
		path, _, _ := strings.Cut(c.path, "?")
		for k, want := range map[string]any{
			"request_id": ids[i], "method": c.method, "path": path, "status": float64(c.status),
			"token_id": c.tokenID, "role": c.role, "permission": c.perm, "code": c.code, "level": "INFO",
		} {
			if l[k] != want {
				t.Errorf("line %d: %s = %v, want %v", i+1, k, l[k], want)
			}
		}
		wantProject := 0.0
		if c.tokenID != "" {
			wantProject = testProject
		}
		if l["project_id"] != wantProject {
			t.Errorf("line %d: project_id = %v, want %v", i+1, l["project_id"], wantProject)
		}
		for _, k := range []string{"gateway_ms", "upstream_ms"} {
			if v, ok := l[k].(float64); !ok || v < 0 {
				t.Errorf("line %d: %s = %v, want milliseconds", i+1, k, l[k])
			}
		}
		if up, _ := l["upstream_ms"].(float64); (c.status == 200) != (up > 0) {
			t.Errorf("line %d: upstream_ms = %v for a %d", i+1, up, c.status)
		}
	}
}

// TestE2EAccessLogSettings: TSWGATE_ACCESS_LOG=false writes nothing; text
// format follows TSWGATE_LOG_FORMAT.
func TestE2EAccessLogSettings(t *testing.T) {
	up := MustStartUpstream(t, nil)
	t.Run("off", func(t *testing.T) {
		access := newSyncBuffer()
		g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: access, Env: []string{"TSWGATE_ACCESS_LOG=false"}})
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", "", nil), auth.CodeMissingToken)
		if err := g.ShutdownOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out := access.String(); out != "" {
			t.Errorf("access log written while off: %s", out)
		}
	})
	t.Run("text", func(t *testing.T) {
		access := newSyncBuffer()
		g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: access, Env: []string{"TSWGATE_LOG_FORMAT=text"}})
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance?q=1", "", nil), auth.CodeMissingToken)
		// Flushed within 100ms, without a shutdown.
		MustPoll(t, 5*time.Second, "the access log line", func() (bool, string) {
			return strings.Contains(access.String(), "\n"), access.String()
		})
		out := access.String()
		for _, want := range []string{"msg=request", "method=GET", "path=/v2/Instance ", "status=401", "code=missing_token", "gateway_ms="} {
			if !strings.Contains(out, want) {
				t.Errorf("text line lacks %q: %s", want, out)
			}
		}
		if strings.Contains(out, "q=1") {
			t.Errorf("the query is logged: %s", out)
		}
	})
}

// config checks TSWGATE_METRICS_TOKENS with its own copy of auth.ValidID
// (config imports nothing of tswgate): they must agree.
func TestMetricsTokensValidation(t *testing.T) {
	cases := []string{"", "tsw_", "tsw_AbCdEfGhIjKlMnOpQrS", "tsw_AbCdEfGhIjKlMnOpQrSt", "tsw_AbCdEfGhIjKlMnOpQrStu",
		"TSW_AbCdEfGhIjKlMnOpQrSt", "tsw_AbCdEfGhIjKlMnOpQr-t", "tsw_AbCdEfGhIjKlMnOpQr\x00t", "tsw_AbCdEfGhIjKlMnOpQré"}
	for range 100 {
		id, _, err := auth.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, id)
	}
	for _, id := range cases {
		if config.ValidTokenID(id) != auth.ValidID(id) {
			t.Errorf("%q: config says %v, auth says %v", id, config.ValidTokenID(id), auth.ValidID(id))
		}
	}
}

// TestE2EMetricsRedisTokens: with Redis, tswgate_tokens is counted by
// SCAN on the shared store, so every replica reports every token.
func TestE2EMetricsRedisTokens(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, Env: redisEnv(srv), TokenCountEvery: 20 * time.Millisecond})
	b := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, Env: redisEnv(srv), TokenCountEvery: 20 * time.Millisecond})
	for i := range 3 {
		a.MustCreateToken(t, testProject, "owner", "o"+strconv.Itoa(i))
	}
	acct := b.MustCreateToken(t, testProject, "accounting", "acct")
	if _, err := b.Admin.Revoke(context.Background(), acct.ID); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*testGateway{a, b} {
		MustPoll(t, 5*time.Second, "tswgate_tokens", func() (bool, string) {
			s := mustScrape(t, g)
			owners, _ := s.sum("tswgate_tokens", map[string]string{"role": "owner", "status": "active"})
			accts, _ := s.sum("tswgate_tokens", map[string]string{"role": "accounting"})
			return owners == 3 && accts == 0, "owner/active " + strconv.FormatFloat(owners, 'g', -1, 64)
		})
	}
}
