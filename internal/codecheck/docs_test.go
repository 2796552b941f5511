package codecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the module's root, seen from this package's directory.
var repoRoot = filepath.Join("..", "..")

// maxReadmeBytes bounds README.md: what tswgate is, how to start and test
// it, and where the reference is; the reference itself lives in docs/.
const maxReadmeBytes = 12000

// docPages returns README.md and every page of docs/, as paths relative to
// the repository's root with forward slashes.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, p := range pages {
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

func readDoc(t *testing.T, page string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(page)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	fencedBlock = regexp.MustCompile("(?ms)^ *```.*?^ *```[^\n]*$")
	codeSpan    = regexp.MustCompile("`[^`\n]*`")
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading     = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*$`)
	htmlAnchor  = regexp.MustCompile(`<a (?:name|id)="([^"]+)"`)
	linkText    = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// prose is a page without its fenced code blocks, where neither headings
// nor links are read.
func prose(page string) string { return fencedBlock.ReplaceAllString(page, "") }

// slug is the anchor GitHub gives a heading: lower case, letters, digits,
// '-' and '_' kept, spaces turned into '-', the rest dropped.
func slug(h string) string {
	h = linkText.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// anchors returns the anchors a page defines: its headings' slugs (a
// repeated one numbered as GitHub does) and HTML anchors.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(prose(text), -1) {
		a := slug(m[1])
		if n, ok := seen[a]; ok {
			seen[a] = n + 1
			a = fmt.Sprintf("%s-%d", a, n+1)
		} else {
			seen[a] = 0
		}
		out[a] = true
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// TestDocLinks: every relative link of README.md and docs/ names a file
// or directory of the repository, and every #anchor into a Markdown page
// names one of its headings.
func TestDocLinks(t *testing.T) {
	pages := docPages(t)
	defined := map[string]map[string]bool{}
	for _, p := range pages {
		defined[p] = anchors(readDoc(t, p))
	}
	links := 0
	for _, p := range pages {
		text := codeSpan.ReplaceAllString(prose(readDoc(t, p)), "``")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			links++
			if err := checkLink(p, link, defined); err != nil {
				t.Errorf("%s: link %s: %v", p, link, err)
			}
		}
	}
	if links < 50 {
		t.Errorf("found only %d relative links: is the link pattern broken?", links)
	}
}

func checkLink(page, link string, defined map[string]map[string]bool) error {
	file, frag, _ := strings.Cut(link, "#")
	target := page
	if file != "" {
		target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(page), file)))
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(target))); err != nil {
			return fmt.Errorf("no such file %s", target)
		}
	}
	if frag == "" || !strings.HasSuffix(target, ".md") {
		return nil
	}
	anchors, ok := defined[target]
	if !ok {
		return nil // a Markdown file outside README.md and docs/
	}
	if !anchors[frag] {
		return fmt.Errorf("%s has no heading with anchor #%s", target, frag)
	}
	return nil
}

// TestDocsFindable: README.md links every page of docs/, and each page
// opens with its title and a paragraph saying what it is for.
func TestDocsFindable(t *testing.T) {
	readme := readDoc(t, "README.md")
	for _, p := range docPages(t)[1:] {
		if !strings.Contains(readme, "]("+p+")") && !strings.Contains(readme, "]("+p+"#") {
			t.Errorf("README.md does not link %s", p)
		}
		lines := strings.Split(readDoc(t, p), "\n")
		for len(lines) > 0 && (strings.HasPrefix(lines[0], "<!--") || lines[0] == "") {
			lines = lines[1:]
		}
		if len(lines) < 3 || !strings.HasPrefix(lines[0], "# ") || lines[1] != "" || !startsParagraph(lines[2]) {
			t.Errorf("%s does not start with a title (# …) and a paragraph on what it is for", p)
		}
	}
}

func startsParagraph(line string) bool {
	return line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "-") &&
		!strings.HasPrefix(line, "|") && !strings.HasPrefix(line, "```")
}

// TestReadmeSize: README.md stays short; reference goes to docs/.
func TestReadmeSize(t *testing.T) {
	if n := len(readDoc(t, "README.md")); n > maxReadmeBytes {
		t.Errorf("README.md is %d bytes, over %d: move reference to docs/", n, maxReadmeBytes)
	}
}

// tableNames returns the names in backquotes that match name in the
// first cell of a page's table rows (lines starting with "| `").
func tableNames(text string, name *regexp.Regexp) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range codeSpan.FindAllString(first, -1) {
			if n := strings.Trim(m, "`"); name.MatchString(n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sameSets reports the names of want missing from got as "undocumented"
// and those of got missing from want as "stale".
func sameSets(t *testing.T, where string, want, got []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s does not document %s", where, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s documents %s, which the code does not have", where, g)
		}
	}
}
