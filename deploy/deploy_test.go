// Package deploy_test checks the deployment files in deploy/: that they
// parse, that they name only real settings and metrics, that the
// Kubernetes probes and grace period fit the gateway's defaults, and, end to
// end, that a real gateway exposes every metric family the dashboard and the
// alert rules use (and, with /usr/bin/prometheus, that a real Prometheus
// scrapes it).
//
// No container engine or cluster runs here: the Dockerfile, compose file and
// manifests are parsed and cross-checked, not built or applied.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/freeport"
)

// contract lists the metric families of the metrics contract, by type. The
// dashboard and the alert rules may name only these (plus up, go_* and
// process_* from the Go and process collectors).
var contract = map[string]string{
	"tswgate_requests_total":                   "counter",
	"tswgate_request_duration_seconds":         "histogram",
	"tswgate_gateway_duration_seconds":         "histogram",
	"tswgate_upstream_duration_seconds":        "histogram",
	"tswgate_refusals_total":                   "counter",
	"tswgate_cache_lookups_total":              "counter",
	"tswgate_cache_evictions_total":            "counter",
	"tswgate_store_reads_total":                "counter",
	"tswgate_store_read_duration_seconds":      "histogram",
	"tswgate_store_writes_total":               "counter",
	"tswgate_ratelimit_decisions_total":        "counter",
	"tswgate_ratelimit_budget_calls_total":     "counter",
	"tswgate_ratelimit_replicas":               "gauge",
	"tswgate_invalidations_total":              "counter",
	"tswgate_invalidation_lag_seconds":         "histogram",
	"tswgate_pubsub_reconnects_total":          "counter",
	"tswgate_tokens":                           "gauge",
	"tswgate_connections_open":                 "gauge",
	"tswgate_connection_limit_waits_total":     "counter",
	"tswgate_build_info":                       "gauge",
	"tswgate_project_requests_total":           "counter",
	"tswgate_token_requests_total":             "counter",
	"tswgate_secret_scanning_dropped_total":    "counter",
	"tswgate_webhook_deliveries_dropped_total": "counter",
}

// ---------------------------------------------------------------- helpers

// walkDeploy calls fn for every regular file under deploy/ (the test's
// working directory).
func walkDeploy(t *testing.T, fn func(path string)) {
	t.Helper()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fn(path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

func yamlDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	docs := yamlDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0]
}

// dig walks nested maps and lists: keys are map keys, ints are list indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func list(v any) []any { l, _ := v.([]any); return l }

func requireKeys(t *testing.T, what string, doc map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s: no top-level key %q", what, k)
		}
	}
}

func settingDefaults() map[string]string {
	m := map[string]string{}
	for _, s := range config.Settings() {
		m[s.Env] = s.Default
	}
	return m
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// readEnvFile reads KEY=VALUE lines (kustomize envs, .env).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not KEY=VALUE: %q", path, i+1, line)
		}
		m[k] = v
	}
	return m
}

// ------------------------------------------------------ (a) files parse

func TestYAMLFilesParse(t *testing.T) {
	n := 0
	walkDeploy(t, func(path string) {
		if ext := filepath.Ext(path); ext == ".yml" || ext == ".yaml" {
			yamlDocs(t, path)
			n++
		}
	})
	if n < 10 {
		t.Errorf("only %d YAML files under deploy/", n)
	}
	var dash map[string]any
	b, err := os.ReadFile("grafana/tswgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
}

func TestCompose(t *testing.T) {
	doc := yamlDoc(t, "compose.yaml")
	requireKeys(t, "compose.yaml", doc, "services", "volumes")
	services, _ := doc["services"].(map[string]any)
	for _, name := range []string{"redis", "tswgate-1", "tswgate-2", "prometheus", "grafana"} {
		if services[name] == nil {
			t.Errorf("compose.yaml: no service %q", name)
		}
	}
	// Both replicas: built from deploy/Dockerfile, same Redis and the same
	// shared secrets.
	env := func(svc string) map[string]any { m, _ := dig(services, svc, "environment").(map[string]any); return m }
	e1, e2 := env("tswgate-1"), env("tswgate-2")
	for _, k := range []string{"TSWGATE_REDIS_URL", "TSWGATE_PEPPER", "TSWGATE_ADMIN_KEY"} {
		if str(e1[k]) == "" || str(e1[k]) != str(e2[k]) {
			t.Errorf("compose.yaml: %s must be set and shared by both replicas: %q vs %q", k, e1[k], e2[k])
		}
	}
	for _, svc := range []string{"tswgate-1", "tswgate-2"} {
		ctx := str(dig(services, svc, "build", "context"))
		df := str(dig(services, svc, "build", "dockerfile"))
		if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
			t.Errorf("compose.yaml: %s builds %s/%s: %v", svc, ctx, df, err)
		}
		if _, err := os.Stat(filepath.Join(ctx, "go.mod")); err != nil {
			t.Errorf("compose.yaml: %s build context %s is not the repository root", svc, ctx)
		}
	}
	// Every bind mount's source exists.
	for name := range services {
		for _, v := range list(dig(services, name, "volumes")) {
			src, _, _ := strings.Cut(str(v), ":")
			if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("compose.yaml: %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	// The compose environment is a valid configuration.
	if err := loadEnv(t, composeEnv(t, e1)); err != nil {
		t.Errorf("compose.yaml: tswgate-1's environment is not a valid configuration:\n%v", err)
	}
}

// composeEnv resolves ${VAR...} interpolations with stand-in values.
func composeEnv(t *testing.T, env map[string]any) map[string]string {
	t.Helper()
	interp := regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}`)
	out := map[string]string{}
	for k, v := range env {
		out[k] = interp.ReplaceAllStringFunc(str(v), func(m string) string {
			sub := interp.FindStringSubmatch(m)
			if strings.HasPrefix(sub[2], ":-") {
				return sub[2][2:]
			}
			return strings.Repeat("x", 40) // a stand-in secret
		})
	}
	return out
}

func loadEnv(t *testing.T, env map[string]string) error {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	_, err := config.Load("", environ)
	return err
}

// kustomization checks one kustomization.yaml: its keys, and that every
// file it lists exists. It returns the document.
func kustomization(t *testing.T, dir string) map[string]any {
	t.Helper()
	path := filepath.Join(dir, "kustomization.yaml")
	doc := yamlDoc(t, path)
	requireKeys(t, path, doc, "apiVersion", "kind", "resources")
	if doc["kind"] != "Kustomization" {
		t.Errorf("%s: kind %v", path, doc["kind"])
	}
	exists := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s lists %s: %v", path, rel, err)
			return
		}
		if fi.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
				t.Errorf("%s lists directory %s without a kustomization.yaml", path, rel)
			}
		}
	}
	for _, r := range list(doc["resources"]) {
		exists(str(r))
	}
	for _, p := range list(doc["patches"]) {
		if rel := str(dig(p, "path")); rel != "" {
			exists(rel)
		}
	}
	for _, g := range list(doc["configMapGenerator"]) {
		for _, e := range list(dig(g, "envs")) {
			exists(str(e))
		}
		for _, f := range list(dig(g, "files")) {
			_, rel, ok := strings.Cut(str(f), "=")
			if !ok {
				rel = str(f)
			}
			exists(rel)
		}
	}
	return doc
}

func TestKustomizations(t *testing.T) {
	base := kustomization(t, "k8s/base")
	overlay := kustomization(t, "k8s/overlays/example")
	if overlay["namespace"] == nil {
		t.Error("overlay: no namespace")
	}
	if !slices.Contains(list(overlay["resources"]), any("../../base")) {
		t.Error("overlay: does not build on ../../base")
	}
	kinds := map[string]bool{}
	for _, r := range list(base["resources"]) {
		for _, d := range yamlDocs(t, filepath.Join("k8s/base", str(r))) {
			requireKeys(t, str(r), d, "apiVersion", "kind", "metadata")
			kinds[str(d["apiVersion"])+" "+str(d["kind"])] = true
		}
	}
	for _, k := range []string{"apps/v1 Deployment", "v1 Service", "policy/v1 PodDisruptionBudget",
		"autoscaling/v2 HorizontalPodAutoscaler", "monitoring.coreos.com/v1 ServiceMonitor"} {
		if !kinds[k] {
			t.Errorf("k8s/base: no %s", k)
		}
	}
}

// ------------------------------------------------ (b) settings are real

func TestSettingNamesAreReal(t *testing.T) {
	known := map[string]bool{"TSWGATE_ADMIN_URL": true}
	for _, s := range config.Settings() {
		known[s.Env] = true
	}
	re := regexp.MustCompile(`TSWGATE_[A-Z0-9_]*[A-Z0-9]`)
	seen := 0
	walkDeploy(t, func(path string) {
		if strings.HasSuffix(path, "_test.go") {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(b), -1) {
			seen++
			if !known[name] {
				t.Errorf("%s: %s is not a tswgate setting", path, name)
			}
		}
	})
	if seen == 0 {
		t.Error("no TSWGATE_* name found under deploy/")
	}
}

// --------------------------------------- (c) probes, ports, grace period

// k8sEnv is the ConfigMap the example overlay renders: the base's env file
// merged with the overlay's literals, plus stand-in secrets.
func k8sEnv(t *testing.T) map[string]string {
	t.Helper()
	env := readEnvFile(t, "k8s/base/tswgate.env")
	overlay := yamlDoc(t, "k8s/overlays/example/kustomization.yaml")
	for _, g := range list(overlay["configMapGenerator"]) {
		for _, l := range list(dig(g, "literals")) {
			k, v, _ := strings.Cut(str(l), "=")
			env[k] = v
		}
	}
	return env
}

func TestKubernetesDeployment(t *testing.T) {
	defaults := settingDefaults()
	env := k8sEnv(t)
	secrets := map[string]string{
		"TSWGATE_PEPPER":    strings.Repeat("p", 40),
		"TSWGATE_ADMIN_KEY": strings.Repeat("a", 40),
		"TSWGATE_REDIS_URL": "redis://:pw@redis:6379/0",
	}
	for k := range secrets {
		if _, ok := env[k]; ok {
			t.Errorf("ConfigMap holds %s: it belongs in the Secret", k)
		}
	}
	full := map[string]string{}
	for k, v := range env {
		full[k] = v
	}
	for k, v := range secrets {
		full[k] = v
	}
	environ := []string{}
	for k, v := range full {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("the overlay's ConfigMap and the Secret are not a valid configuration:\n%v", err)
	}

	dep := yamlDoc(t, "k8s/base/deployment.yaml")
	if n, _ := dig(dep, "spec", "replicas").(int); n != 2 {
		t.Errorf("base Deployment: replicas %v, want 2", dig(dep, "spec", "replicas"))
	}
	pod := dig(dep, "spec", "template", "spec")
	grace, _ := dig(pod, "terminationGracePeriodSeconds").(int)
	if need := cfg.ShutdownDelay + cfg.ShutdownTimeout; time.Duration(grace)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds %d does not exceed TSWGATE_SHUTDOWN_DELAY + TSWGATE_SHUTDOWN_TIMEOUT = %v", grace, need)
	}
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext: runAsNonRoot is not true")
	}
	c := dig(pod, "containers", 0)
	ports := map[string]int{}
	for _, p := range list(dig(c, "ports")) {
		ports[str(dig(p, "name"))], _ = dig(p, "containerPort").(int)
	}
	addr := func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return defaults[name]
	}
	if want := portOf(t, defaults["TSWGATE_LISTEN_ADDR"]); ports["http"] != want || portOf(t, addr("TSWGATE_LISTEN_ADDR")) != want {
		t.Errorf("http port %d, TSWGATE_LISTEN_ADDR %s: want both on the default port %d", ports["http"], addr("TSWGATE_LISTEN_ADDR"), want)
	}
	if want := portOf(t, defaults["TSWGATE_METRICS_ADDR"]); ports["metrics"] != want || portOf(t, addr("TSWGATE_METRICS_ADDR")) != want {
		t.Errorf("metrics port %d, TSWGATE_METRICS_ADDR %s: want both on the default port %d", ports["metrics"], addr("TSWGATE_METRICS_ADDR"), want)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(dig(c, probe, "httpGet", "path")); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		port := dig(c, probe, "httpGet", "port")
		if n, ok := port.(int); ok {
			port = n
		} else {
			port = ports[str(port)]
		}
		if port != ports["metrics"] || ports["metrics"] == 0 {
			t.Errorf("%s port %v, want the metrics port %d", probe, dig(c, probe, "httpGet", "port"), ports["metrics"])
		}
	}
	sc := dig(c, "securityContext")
	for _, check := range []struct {
		path []any
		want any
	}{
		{[]any{"runAsNonRoot"}, true},
		{[]any{"readOnlyRootFilesystem"}, true},
		{[]any{"allowPrivilegeEscalation"}, false},
		{[]any{"capabilities", "drop", 0}, "ALL"},
		{[]any{"seccompProfile", "type"}, "RuntimeDefault"},
	} {
		if got := dig(sc, check.path...); got != check.want {
			t.Errorf("container securityContext %v: %v, want %v", check.path, got, check.want)
		}
	}
	for _, r := range []string{"requests", "limits"} {
		if dig(c, "resources", r, "cpu") == nil || dig(c, "resources", r, "memory") == nil {
			t.Errorf("container resources: no %s", r)
		}
	}
	// Config from the ConfigMap, secrets from the Secret.
	var cm, sec bool
	for _, e := range list(dig(c, "envFrom")) {
		cm = cm || dig(e, "configMapRef", "name") == "tswgate"
		sec = sec || dig(e, "secretRef", "name") == "tswgate"
	}
	if !cm || !sec {
		t.Errorf("envFrom: ConfigMap tswgate %v, Secret tswgate %v; want both", cm, sec)
	}

	// ServiceMonitor scrapes the metrics port's /metrics.
	sm := yamlDoc(t, "k8s/base/servicemonitor.yaml")
	if str(dig(sm, "spec", "endpoints", 0, "port")) != "metrics" || str(dig(sm, "spec", "endpoints", 0, "path")) != "/metrics" {
		t.Errorf("ServiceMonitor endpoint: %v", dig(sm, "spec", "endpoints", 0))
	}
	// The Services target the named ports.
	for _, svc := range yamlDocs(t, "k8s/base/service.yaml") {
		for _, p := range list(dig(svc, "spec", "ports")) {
			if _, ok := ports[str(dig(p, "targetPort"))]; !ok {
				t.Errorf("Service %v: targetPort %v is not a container port", dig(svc, "metadata", "name"), dig(p, "targetPort"))
			}
		}
	}
	hpa := yamlDoc(t, "k8s/base/hpa.yaml")
	if str(dig(hpa, "spec", "metrics", 0, "resource", "name")) != "cpu" {
		t.Error("HPA does not scale on CPU")
	}
}

func TestDockerfileAndPrometheusTargets(t *testing.T) {
	defaults := settingDefaults()
	listen, metrics := portOf(t, defaults["TSWGATE_LISTEN_ADDR"]), portOf(t, defaults["TSWGATE_METRICS_ADDR"])
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"FROM golang:1.26 AS build", "CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`,
		"USER 65532", fmt.Sprintf("EXPOSE %d %d", listen, metrics),
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^FROM (gcr.io/distroless/static\S*:nonroot|scratch)\b`).MatchString(df) {
		t.Error("Dockerfile: the final stage is not distroless static nonroot or scratch")
	}
	prom := yamlDoc(t, "prometheus/prometheus.yml")
	var targets []string
	for _, sc := range list(prom["scrape_configs"]) {
		if dig(sc, "job_name") == "tswgate" {
			for _, s := range list(dig(sc, "static_configs")) {
				for _, tg := range list(dig(s, "targets")) {
					targets = append(targets, str(tg))
				}
			}
		}
	}
	if len(targets) != 2 {
		t.Fatalf("prometheus.yml: job tswgate scrapes %v, want both replicas", targets)
	}
	for _, tg := range targets {
		if portOf(t, tg) != metrics {
			t.Errorf("prometheus.yml: target %s is not on the metrics port %d", tg, metrics)
		}
	}
	for _, rf := range list(prom["rule_files"]) {
		if _, err := os.Stat(filepath.Join("prometheus", str(rf))); err != nil {
			t.Errorf("prometheus.yml: rule file %v: %v", rf, err)
		}
	}
}

// ------------------------------------------- (d) metric names are real

// promqlWords are PromQL functions, aggregations and keywords (and Grafana's
// label_values), which the tokenizer must not take for metric names.
var promqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
		by without on ignoring group_left group_right bool offset and or unless atan2 inf nan start end
		abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year
		days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
		histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate label_join
		label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc
		sort_by_label sort_by_label_desc sqrt time timestamp vector year avg_over_time min_over_time
		max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time
		last_over_time present_over_time mad_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan
		tanh deg pi rad label_values`) {
		promqlWords[w] = true
	}
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	promBrackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	promLabels   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[$]?[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers that are not functions (followed by "("), keywords, label
// lists, label matchers, ranges, strings or template variables.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promBraces.ReplaceAllString(e, "{}")
	e = promBrackets.ReplaceAllString(e, "[]")
	e = promLabels.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		w := e[loc[0]:loc[1]]
		if w[0] == '$' || promqlWords[w] {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // a duration or number such as 5m, 1e3
		}
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") {
			continue // an unknown function would be caught by promtool
		}
		out = append(out, w)
	}
	return out
}

// family maps a series name to its family: histogram series lose their
// _bucket, _sum or _count suffix.
func family(name string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && contract[base] == "histogram" {
			return base
		}
	}
	return name
}

func allowedFamily(f string) bool {
	return contract[f] != "" || f == "up" || strings.HasPrefix(f, "go_") || strings.HasPrefix(f, "process_")
}

func TestMetricNamesTokenizer(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.99, sum by (le) (rate(tswgate_invalidation_lag_seconds_bucket{job=~"$job"}[$__rate_interval])))`: "tswgate_invalidation_lag_seconds_bucket",
		`sum(rate(a_total{status=~"5.."}[5m])) / sum(rate(b_total [5m])) > 0.05 and sum(c) > 0.5`:                              "a_total b_total c",
		`up{job="tswgate"} == 0`: "up",
		`avg_over_time((sum by (project_id) (rate(x_total[5m])))[1h:5m] offset 10m) > 1e3`: "x_total",
		`max by (instance, version) (tswgate_build_info) * on(instance) group_left(v) y`:   "tswgate_build_info y",
		`label_values(tswgate_build_info{job=~"$job"}, instance)`:                          "tswgate_build_info instance",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// dashboardExprs returns every PromQL expression of the dashboard's panels
// (rows included) and the metric families its variables query.
func dashboardExprs(t *testing.T) (exprs []string, dash map[string]any) {
	t.Helper()
	b, err := os.ReadFile("grafana/tswgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			for _, tg := range list(dig(p, "targets")) {
				if e := str(dig(tg, "expr")); e != "" {
					exprs = append(exprs, e)
				}
			}
			walk(list(dig(p, "panels")))
		}
	}
	walk(list(dash["panels"]))
	for _, v := range list(dig(dash, "templating", "list")) {
		if q := str(dig(v, "query", "query")); q != "" {
			// label_values(metric{...}, label): the label is no metric.
			q = regexp.MustCompile(`,\s*\w+\s*\)\s*$`).ReplaceAllString(q, ")")
			exprs = append(exprs, q)
		}
	}
	return exprs, dash
}

func ruleExprs(t *testing.T) (exprs []string, rules []map[string]any) {
	t.Helper()
	doc := yamlDoc(t, "prometheus/alerts.yml")
	for _, g := range list(doc["groups"]) {
		for _, r := range list(dig(g, "rules")) {
			m, _ := r.(map[string]any)
			rules = append(rules, m)
			exprs = append(exprs, str(m["expr"]))
		}
	}
	return exprs, rules
}

// referencedFamilies is every metric family the dashboard and the rules
// name.
func referencedFamilies(t *testing.T) map[string][]string {
	t.Helper()
	dexprs, _ := dashboardExprs(t)
	rexprs, _ := ruleExprs(t)
	out := map[string][]string{}
	for what, exprs := range map[string][]string{"dashboard": dexprs, "alerts.yml": rexprs} {
		for _, e := range exprs {
			for _, n := range metricNames(e) {
				f := family(n)
				if !slices.Contains(out[f], what) {
					out[f] = append(out[f], what)
				}
			}
		}
	}
	return out
}

func TestDashboard(t *testing.T) {
	exprs, dash := dashboardExprs(t)
	if dash["uid"] != "tswgate" || str(dash["title"]) == "" {
		t.Errorf("dashboard: uid %v, title %v", dash["uid"], dash["title"])
	}
	var hasDS bool
	for _, v := range list(dig(dash, "templating", "list")) {
		hasDS = hasDS || (dig(v, "type") == "datasource" && dig(v, "query") == "prometheus")
	}
	if !hasDS {
		t.Error("dashboard: no datasource template variable")
	}
	if len(exprs) < 20 {
		t.Errorf("dashboard: only %d expressions", len(exprs))
	}
	// Every panel queries the templated data source, so that the dashboard
	// imports and provisions anywhere.
	for _, p := range list(dash["panels"]) {
		if dig(p, "type") != "row" && dig(p, "datasource", "uid") != "${datasource}" {
			t.Errorf("panel %q: datasource %v", dig(p, "title"), dig(p, "datasource"))
		}
	}
	// Latency percentiles come from the histograms' _bucket series.
	all := strings.Join(exprs, "\n")
	for _, h := range []string{"tswgate_gateway_duration_seconds", "tswgate_upstream_duration_seconds",
		"tswgate_invalidation_lag_seconds", "tswgate_store_read_duration_seconds"} {
		if !regexp.MustCompile(`histogram_quantile\([^,]+,[^\n]*` + h + `_bucket`).MatchString(all) {
			t.Errorf("dashboard: no histogram_quantile over %s_bucket", h)
		}
	}
	// Provisioning points at the file compose mounts.
	prov := yamlDoc(t, "grafana/provisioning/dashboards/tswgate.yaml")
	if str(dig(prov, "providers", 0, "options", "path")) != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provider path: %v", dig(prov, "providers", 0, "options", "path"))
	}
	ds := yamlDoc(t, "grafana/provisioning/datasources/prometheus.yaml")
	if str(dig(ds, "datasources", 0, "type")) != "prometheus" {
		t.Error("provisioned data source is not Prometheus")
	}
}

func TestReferencedMetricsAreInContract(t *testing.T) {
	refs := referencedFamilies(t)
	for f, where := range refs {
		if !allowedFamily(f) {
			t.Errorf("%v: %s is not a metric of the contract", where, f)
		}
	}
	// Everything in the contract is shown somewhere.
	for f := range contract {
		if refs[f] == nil {
			t.Errorf("%s is in neither the dashboard nor the alert rules", f)
		}
	}
}

func TestAlertRules(t *testing.T) {
	_, rules := ruleExprs(t)
	want := []string{
		"TswgateProjectRequestRateAnomaly", "TswgateTokenRequestRateAnomaly", "TswgateInvalidTokenBurst",
		"TswgateProjectMismatchBurst", "TswgateRateLimitSurge", "TswgateStoreErrors",
		"TswgateRevocationLagHigh", "TswgateUpstream5xx", "TswgateDown", "TswgateConnectionLimit",
		"TswgateLeakedTokenNotRevoked", "TswgateWebhookDeliveriesDropped",
	}
	var got []string
	for _, r := range rules {
		name := str(r["alert"])
		got = append(got, name)
		if str(dig(r, "labels", "severity")) == "" || str(dig(r, "annotations", "summary")) == "" ||
			str(dig(r, "annotations", "description")) == "" {
			t.Errorf("%s: needs a severity label and summary and description annotations", name)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("alerts.yml: no alert %s", w)
		}
	}
	// Each alert has a firing and a quiet case in alerts_test.yml.
	doc := yamlDoc(t, "prometheus/alerts_test.yml")
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range list(doc["tests"]) {
		for _, a := range list(dig(tc, "alert_rule_test")) {
			name := str(dig(a, "alertname"))
			if len(list(dig(a, "exp_alerts"))) > 0 {
				fires[name] = true
			} else {
				quiet[name] = true
			}
		}
	}
	for _, w := range got {
		if !fires[w] || !quiet[w] {
			t.Errorf("alerts_test.yml: %s fires in a test %v, stays quiet in a test %v; want both", w, fires[w], quiet[w])
		}
	}
}

// ------------------------------------------ (d, e) end to end, for real

type gateway struct {
	cmd       *exec.Cmd
	public    string // http://host:port
	adminURL  string
	adminKey  string
	metrics   string // host:port
	owner     string
	acct      string
	stdoutBuf *bytes.Buffer
}

var quickstartLine = regexp.MustCompile(`^\s*(gateway|admin API|metrics)\s+http://(\S+)|export (OWNER|ACCOUNTING)=(\S+)`)

// buildGateway builds cmd/tswgate once for the test.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tswgate")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/tswgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tswgate: %v\n%s", err, out)
	}
	return bin
}

// startQuickstart runs `tswgate quickstart` on loopback ports with the data
// dir and extra settings given, and reads its addresses and tokens.
func startQuickstart(t *testing.T, bin, dataDir string, extra ...string) *gateway {
	t.Helper()
	cmd := exec.Command(bin, "quickstart")
	cmd.Env = append(os.Environ(),
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_ADMIN_ADDR=127.0.0.1:0", "TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR="+dataDir, "TSWGATE_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, extra...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: cmd, stdoutBuf: &bytes.Buffer{}}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for g.owner == "" || g.acct == "" || g.metrics == "" || g.public == "" || g.adminURL == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				stop()
				t.Fatalf("quickstart ended before printing its tokens:\n%s\n%s", g.stdoutBuf, stderr.String())
			}
			g.stdoutBuf.WriteString(line + "\n")
			m := quickstartLine.FindStringSubmatch(line)
			switch {
			case m == nil:
			case m[1] == "gateway":
				g.public = "http://" + m[2]
			case m[1] == "admin API":
				g.adminURL = "http://" + m[2]
			case m[1] == "metrics":
				g.metrics = strings.TrimSuffix(m[2], "/metrics")
			case m[3] == "OWNER":
				g.owner = m[4]
			case m[3] == "ACCOUNTING":
				g.acct = m[4]
			}
			if m := regexp.MustCompile(`admin key: ([^)]+)\)`).FindStringSubmatch(line); m != nil {
				if key, err := os.ReadFile(strings.TrimSpace(m[1])); err == nil {
					g.adminKey = strings.TrimSpace(string(key))
				}
			}
		case <-deadline:
			stop()
			t.Fatalf("quickstart printed no tokens within 60s:\n%s\n%s", g.stdoutBuf, stderr.String())
		}
	}
	go func() {
		for range lines { // drain
		}
	}()
	return g
}

func call(t *testing.T, method, url, bearer string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrapeFamilies reads /metrics and returns the families in it.
func scrapeFamilies(t *testing.T, metricsAddr string) (map[string]bool, string) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fams := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			fams[strings.Fields(f)[0]] = true
		}
	}
	return fams, string(b)
}

func hasSetting(name string) bool {
	for _, s := range config.Settings() {
		if s.Env == name {
			return true
		}
	}
	return false
}

// TestEndToEnd starts the real gateway (quickstart: embedded store, stand-in
// API), makes traffic of every kind the dashboard and the rules look at, and
// checks that /metrics has every family they name; then, where
// /usr/bin/prometheus exists, that a real Prometheus scrapes it.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := buildGateway(t)
	dataDir := t.TempDir()

	// The first run only creates a token whose id the second run opts in
	// to per-token series (TSWGATE_METRICS_TOKENS); the data dir keeps it.
	first := startQuickstart(t, bin, dataDir)
	ownerID, _, _ := strings.Cut(first.owner, ":")
	_ = first.cmd.Process.Signal(syscall.SIGTERM)
	_ = first.cmd.Wait()

	extra := []string{"TSWGATE_RATE_ACCOUNTING=1", "TSWGATE_BURST_ACCOUNTING=1"}
	for k, v := range map[string]string{"TSWGATE_METRICS_PROJECTS": "42", "TSWGATE_METRICS_TOKENS": ownerID} {
		if hasSetting(k) {
			extra = append(extra, k+"="+v)
		} else {
			t.Logf("%s is not a setting yet", k)
		}
	}
	g := startQuickstart(t, bin, dataDir, extra...)

	// Traffic: allowed, refused (every kind the rules watch), rate limited.
	for i := 0; i < 3; i++ {
		call(t, "GET", g.public+"/v2/Instance?ProjectId=42", first.owner)
		call(t, "GET", g.public+"/v2/Instance?ProjectId=42", g.owner)
	}
	if code := call(t, "GET", g.public+"/v2/Instance?ProjectId=42", first.owner); code != 200 {
		t.Errorf("owner request: %d, want 200", code)
	}
	call(t, "GET", g.public+"/v2/Instance?ProjectId=7", first.owner)                   // project_mismatch
	call(t, "GET", g.public+"/v2/Instance", "")                                        // missing_token
	call(t, "GET", g.public+"/v2/Instance", ownerID+":tswsk_"+strings.Repeat("A", 43)) // invalid
	for i := 0; i < 4; i++ {
		call(t, "GET", g.public+"/v2/Invoice", g.acct) // rate limited after the first
	}
	// The token API: a list (store write op list) and a revocation
	// (invalidation, lag).
	if g.adminKey != "" {
		call(t, "GET", g.adminURL+"/v1/tokens?project_id=42", g.adminKey)
		acctID, _, _ := strings.Cut(g.acct, ":")
		call(t, "DELETE", g.adminURL+"/v1/tokens/"+acctID, g.adminKey)
	} else {
		t.Log("no admin key found in the quickstart output")
	}

	refs := referencedFamilies(t)
	var missing []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		fams, _ := scrapeFamilies(t, g.metrics)
		missing = missing[:0]
		for f := range refs {
			if f != "up" && !fams[f] {
				missing = append(missing, f)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("checked %d families named by the dashboard and the rules against /metrics", len(refs))
	if len(missing) > 0 {
		sort.Strings(missing)
		_, body := scrapeFamilies(t, g.metrics)
		t.Errorf("families named by the dashboard or the rules but not on /metrics: %v\n%s", missing, body)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		if code := call(t, "GET", "http://"+g.metrics+path, ""); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}

	t.Run("Prometheus", func(t *testing.T) { prometheusScrapes(t, g.metrics) })
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := freeport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Release() })
	return p.Addr()
}

// prometheusScrapes runs a real Prometheus (when installed) scraping the
// gateway's metrics listener every second, and waits until it sees the
// target up and a tswgate_requests_total series.
func prometheusScrapes(t *testing.T, metricsAddr string) {
	bin := "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if p, err := exec.LookPath("prometheus"); err == nil {
			bin = p
		} else if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but prometheus is not installed (apt-get install prometheus)")
		} else {
			t.Skip("prometheus is not installed")
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tswgate\n    static_configs:\n      - targets: [%q]\n", metricsAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	}()

	query := func(q string) (results int, value string, err error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value []any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, "", err
		}
		if r.Status != "success" {
			return 0, "", fmt.Errorf("status %s", r.Status)
		}
		if len(r.Data.Result) > 0 && len(r.Data.Result[0].Value) == 2 {
			value = str(r.Data.Result[0].Value[1])
		}
		return len(r.Data.Result), value, nil
	}
	deadline := time.Now().Add(60 * time.Second)
	var up string
	var series int
	var lastErr error
	for time.Now().Before(deadline) {
		var err1, err2 error
		_, up, err1 = query(`up{job="tswgate"}`)
		series, _, err2 = query(`tswgate_requests_total{job="tswgate"}`)
		lastErr = errors.Join(err1, err2)
		if up == "1" && series > 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("Prometheus at %s: up{job=\"tswgate\"} = %q, %d tswgate_requests_total series after 60s (last error: %v)", addr, up, series, lastErr)
}

// TestKustomizeBuild renders the example overlay with kubectl's built-in
// kustomize when kubectl is installed (offline; no cluster is contacted).
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", "k8s/overlays/example").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	kinds := map[string]map[string]any{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kinds[str(doc["kind"])] = doc
		if ns := str(dig(doc, "metadata", "namespace")); ns != "tswgate" {
			t.Errorf("%s %v: namespace %q", doc["kind"], dig(doc, "metadata", "name"), ns)
		}
	}
	dep, cm := kinds["Deployment"], kinds["ConfigMap"]
	if dep == nil || cm == nil {
		t.Fatalf("rendered kinds: %v", slices.Sorted(maps.Keys(kinds)))
	}
	if n, _ := dig(dep, "spec", "replicas").(int); n != 3 {
		t.Errorf("overlay replicas %v, want 3", dig(dep, "spec", "replicas"))
	}
	// The generated ConfigMap's hashed name is what the pod reads.
	ref := str(dig(dep, "spec", "template", "spec", "containers", 0, "envFrom", 0, "configMapRef", "name"))
	if ref != str(dig(cm, "metadata", "name")) {
		t.Errorf("Deployment reads ConfigMap %q, rendered %q", ref, dig(cm, "metadata", "name"))
	}
	if str(dig(cm, "data", "TSWGATE_LOG_LEVEL")) != "warn" || str(dig(cm, "data", "TSWGATE_SHUTDOWN_TIMEOUT")) == "" {
		t.Errorf("overlay ConfigMap data not merged: %v", cm["data"])
	}
}
