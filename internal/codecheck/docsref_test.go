package codecheck

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/proxy"
)

// sourceFiles returns the module's non-test Go files under dir (relative
// to the root), outside testdata and tools/ (dev tools, whose metric
// names are not the gateway's).
func sourceFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(repoRoot, filepath.FromSlash(dir))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (n == "testdata" || n == "tools" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(path)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no Go files under %s", dir)
	}
	return out
}

// allMatches returns the first submatch of re in every text, sorted and
// without repeats.
func allMatches(texts map[string]string, re *regexp.Regexp) []string {
	var out []string
	for _, text := range texts {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var (
	metricName     = regexp.MustCompile(`\bName:\s*"(tswgate_[a-z0-9_]+)"`)
	documentedName = regexp.MustCompile(`^tswgate_[a-z0-9_]+$`)
	alertRule      = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)
	alertName      = regexp.MustCompile(`^Tswgate[A-Za-z0-9]+$`)
)

// TestMetricsDocumented: the metrics table of docs/observability.md
// names every metric family the gateway registers, and no other.
func TestMetricsDocumented(t *testing.T) {
	code := allMatches(sourceFiles(t, "."), metricName)
	if len(code) < 20 {
		t.Fatalf("found only %d metric names in the code: is the pattern broken?", len(code))
	}
	doc := tableNames(prose(readDoc(t, "docs/observability.md")), documentedName)
	sameSets(t, "docs/observability.md's metrics table", code, doc)
}

// TestAlertsDocumented: the alerts table of docs/observability.md names
// every rule of deploy/prometheus/alerts.yml, and no other.
func TestAlertsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := allMatches(map[string]string{"alerts.yml": string(b)}, alertRule)
	if len(rules) == 0 {
		t.Fatal("no alert rules found in deploy/prometheus/alerts.yml")
	}
	doc := tableNames(prose(readDoc(t, "docs/observability.md")), alertName)
	sameSets(t, "docs/observability.md's alerts table", rules, doc)
}

// TestRefusalCodesDocumented: README.md's table of refusal codes has a
// row for every code of the decision, with the status the proxy answers
// it with, and no row for a code that does not exist.
func TestRefusalCodesDocumented(t *testing.T) {
	readme := readDoc(t, "README.md")
	var names []string
	for _, c := range auth.Codes() {
		names = append(names, c.String())
		row := fmt.Sprintf("| `%s` | %d |", c, proxy.Status(c))
		if !strings.Contains(readme, row) {
			t.Errorf("README.md's refusal table lacks the row %q", row)
		}
	}
	slices.Sort(names)
	got := tableNames(readme, regexp.MustCompile(`^[a-z]+(_[a-z]+)+$`))
	for _, g := range got {
		if !slices.Contains(names, g) {
			t.Errorf("README.md's refusal table has %s, which is not a refusal code", g)
		}
	}
}

// apiCodes finds the error codes the token API answers with: string
// literals given to writeError or set as a refusal's code, and the
// decision's codes it names (auth.CodeX).
var (
	apiCodeLiteral = regexp.MustCompile(`(?:writeError\(w,\s*[^,]+,\s*|\bcode\w*\s*(?:=|:)\s*)"([a-z]+(?:_[a-z]+)+)"`)
	apiAuthCode    = regexp.MustCompile(`\bauth\.(Code[A-Za-z]+)\b`)
)

// authCodeNames maps auth's Go names of the refusal codes (CodeTokenRevoked)
// to their wire names (token_revoked), from auth/code.go's table.
func authCodeNames(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "auth", "code.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(Code[A-Za-z]+):\s*"([a-z_]+)",`).FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	if len(out) != len(auth.Codes()) {
		t.Fatalf("read %d code names from auth/code.go, want %d", len(out), len(auth.Codes()))
	}
	return out
}

// publicAPICodes are the codes the public listener answers the
// self-service token API with before it is reached (proxy.GuardAPI,
// proxy.RefuseFaultyFraming).
var publicAPICodes = []string{auth.CodeAuthRateLimited.String(), auth.CodeInvalidFraming.String()}

// TestTokenAPICodesDocumented: docs/token-api.md names every error code
// the token API answers with.
func TestTokenAPICodesDocumented(t *testing.T) {
	src := sourceFiles(t, "auth/tokenapi")
	codes := allMatches(src, apiCodeLiteral)
	names := authCodeNames(t)
	for _, id := range allMatches(src, apiAuthCode) {
		n, ok := names[id]
		if !ok {
			t.Errorf("auth/tokenapi names auth.%s, which is not a refusal code", id)
		}
		codes = append(codes, n)
	}
	codes = append(codes, publicAPICodes...)
	if len(codes) < 20 {
		t.Fatalf("found only %d codes in auth/tokenapi: is the pattern broken?", len(codes))
	}
	doc := readDoc(t, "docs/token-api.md")
	for _, c := range codes {
		if c == auth.CodeClientClosed.String() {
			continue // recorded, never sent: the client is gone
		}
		if !strings.Contains(doc, "`"+c+"`") && !regexp.MustCompile("`[0-9]{3} "+c+"`").MatchString(doc) {
			t.Errorf("docs/token-api.md does not document the token API's code %s", c)
		}
	}
	// And the table of its codes names no other.
	_, table, ok := strings.Cut(doc, "\n| code | status | meaning |\n")
	if !ok {
		t.Fatal("docs/token-api.md has no table of codes (| code | status | meaning |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	for _, n := range tableNames(table, regexp.MustCompile(`^[a-z]+(_[a-z]+)+$`)) {
		if !slices.Contains(codes, n) {
			t.Errorf("docs/token-api.md's table of codes has %s, which the token API does not answer", n)
		}
	}
}

// misspeltOnPurpose are TSWGATE_ names the docs show as mistakes.
var misspeltOnPurpose = map[string]string{
	"TSWGATE_LISTEN_ADR": "docs/configuration.md's example of an unknown setting",
}

// TestDocsSettingNames: every TSWGATE_ variable README.md and docs/ name
// is one the configuration knows (a setting, or a variable it leaves to
// the CLI or to tests), so that no page tells users to set a name that
// start-up refuses.
func TestDocsSettingNames(t *testing.T) {
	name := regexp.MustCompile(`TSWGATE_[A-Z0-9_]+`)
	for _, p := range docPages(t) {
		for _, n := range name.FindAllString(readDoc(t, p), -1) {
			if strings.HasSuffix(n, "_") || misspeltOnPurpose[n] != "" {
				continue // a prefix, such as TSWGATE_TEST_
			}
			if _, err := config.Load("", []string{n + "=x"}); err != nil && strings.Contains(err.Error(), n+": unknown setting") {
				t.Errorf("%s names %s, which is not a setting", p, n)
			}
		}
	}
}
