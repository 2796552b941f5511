package main

// The web console in a real headless Chromium (Debian's /usr/bin/chromium),
// driven with chromedp against a real gateway: sign in, generate a token,
// read its secret off the page, call the gateway with it, deactivate,
// activate and revoke it through the page's confirmation dialogs, and see
// each change refused or allowed by the public listener; on the admin
// listener (embedded store, and two replicas on Redis) with the admin key,
// and on the public listener (/tswgate/console/) with an Owner token, with
// real usage counts and paging.
//
// Without Chromium the test is skipped, except under CI=true where it
// fails. TSWGATE_TEST_CHROMIUM names another browser binary;
// TSWGATE_TEST_SCREENSHOTS=dir writes the README's screenshots there.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/webhook/webhookapi"
)

// browserTimeZone is the time zone the browser is told it is in: the page
// must show times in it, not in UTC nor in the gateway's.
const browserTimeZone = "America/New_York"

// MustStartBrowser starts a headless Chromium for the test and returns its
// context; tabs are made from it with newTab.
func MustStartBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("TSWGATE_TEST_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required under CI=true: %v (apt-get install chromium)", err)
		}
		t.Skipf("no Chromium (%v): apt-get install chromium, or set TSWGATE_TEST_CHROMIUM", err)
	}
	// Without the networking flags Chromium keeps dialling Google's hosts,
	// which this closed network refuses.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 760),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no deadline of its own
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Logf("Chromium started in %s", time.Since(start).Round(time.Millisecond))
	return bctx
}

// browserTab is one tab, with a deadline, and the console messages the
// page wrote (errors there, such as a CSP violation, fail the test).
type browserTab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
	// expected400 lets failed requests with 400 through note, for a
	// test that sends a bad value on purpose.
	expected400 bool
}

func newTab(t *testing.T, browser context.Context, timeout time.Duration) *browserTab {
	t.Helper()
	tctx, cancelTab := chromedp.NewContext(browser)
	if err := chromedp.Do(tctx); err != nil { // opens the tab
		cancelTab()
		t.Fatalf("opening a tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tctx, timeout)
	tab := &browserTab{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tab.note(m)
		}
	}()
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: browserTimeZone}); err != nil {
		t.Fatalf("setting the browser's time zone: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelTab()
		<-done
		tab.mu.Lock()
		defer tab.mu.Unlock()
		for _, p := range tab.problems {
			t.Errorf("browser console: %s", p)
		}
	})
	return tab
}

// note records a console message that shows a fault of the page. A failed
// request with 401 or 403 is expected where the test signs in with a wrong
// key or an Accounting token.
func (b *browserTab) note(m chromedp.ConsoleMessage) {
	b.mu.Lock()
	expected400 := b.expected400
	b.mu.Unlock()
	if m.Source == "network" && (strings.Contains(m.Text, "status of 401") || strings.Contains(m.Text, "status of 403") ||
		expected400 && strings.Contains(m.Text, "status of 400")) {
		return
	}
	if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.Source == "security" ||
		m.Source == "" { // the page itself never writes to the console
		b.mu.Lock()
		b.problems = append(b.problems, fmt.Sprintf("%s %s: %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line+1))
		b.mu.Unlock()
	}
}

func (b *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage text:\n%s%s", what, err, b.pageText(), b.failureShot())
	}
}

// pageText is the visible text of the page, for failure messages.
func (b *browserTab) pageText() string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	return s
}

// failureShot saves a screenshot of the page for a failure message.
func (b *browserTab) failureShot() string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 2*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return ""
	}
	f, err := os.CreateTemp("", "tswgate-console-failure-*.png")
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Write(png); err != nil {
		return ""
	}
	return "\nscreenshot: " + f.Name()
}

func mustRun[T any](b *browserTab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v\npage text:\n%s%s", what, err, b.pageText(), b.failureShot())
	}
	return v
}

// waitFor waits until a JavaScript expression is true in the page.
func (b *browserTab) waitFor(what, expr string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
}

// screenshot writes the page to dir/name when dir is set.
func (b *browserTab) screenshot(dir, name string) {
	b.t.Helper()
	if dir == "" {
		return
	}
	png := mustRun(b, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s (%d KB)", filepath.Join(dir, name), len(png)/1024)
}

// generate fills the open Generate New Token form with name (role Owner),
// submits it and returns the credential the page shows once (remembered
// for the suite's secret check) and its token id.
func (b *browserTab) generate(t *testing.T, name string) (cred, id string) {
	t.Helper()
	b.do("filling the form",
		chromedp.SendKeys(chromedp.ID("gen-name"), name),
		chromedp.SetValue(chromedp.ID("gen-role"), "owner"),
		chromedp.Click(chromedp.ID("generate-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#secret-dialog[open] #secret`)),
	)
	b.waitFor("the secret", `document.getElementById('secret').value !== ''`)
	cred = mustRun(b, "reading the secret", chromedp.Value(chromedp.ID("secret")))
	if !auth.ValidCredential(cred) {
		t.Fatalf("the page shows %q, not a credential", cred)
	}
	rememberSecret(cred)
	id, _, _ = strings.Cut(cred, ":")
	return cred, id
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// actionButton selects a token's action button in the table.
func actionButton(id, action string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`#token-rows button[data-id=%q][data-action=%q]`, id, action))
}

// confirmAction clicks a token's action button, checks the confirmation
// dialog (focus on Cancel, a confirm button named after the token) and
// confirms.
func (b *browserTab) confirmAction(id, name, action, verb string) {
	b.t.Helper()
	b.do("opening the "+action+" confirmation",
		chromedp.Click(actionButton(id, action)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open] #confirm-ok`)),
	)
	b.waitFor("focus on Cancel", `document.activeElement && document.activeElement.id === 'confirm-cancel'`)
	label := mustRun(b, "confirm label", chromedp.Evaluate[string](`document.getElementById('confirm-ok').getAttribute('aria-label')`))
	if label != verb+" "+name {
		b.t.Errorf("confirm button's accessible name = %q, want %q", label, verb+" "+name)
	}
	b.do("confirming "+action,
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotPresent(chromedp.CSS(`#confirm-dialog[open]`)),
	)
}

// consoleGateway is what a console test drives: the gateway whose admin
// listener serves the console, and every gateway that must see its changes.
type consoleGateway struct {
	admin   *testGateway
	callers []*testGateway
}

func TestConsoleBrowser(t *testing.T) {
	browser := MustStartBrowser(t)
	shots := os.Getenv("TSWGATE_TEST_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("embedded", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL)
		// More tokens to list, in the states the table shows.
		exp, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{
			ProjectID: testProject, Role: "accounting", Name: "billing-export", ExpiresIn: "2160h",
		})
		if err != nil {
			t.Fatal(err)
		}
		rememberSecret(exp.Token)
		old := g.MustCreateToken(t, testProject, "owner", "old-laptop")
		inactive := "inactive"
		if _, err := g.Admin.Update(context.Background(), old.ID, tokenapi.UpdateRequest{Status: &inactive}); err != nil {
			t.Fatal(err)
		}
		g.MustCreateToken(t, testProject+1, "owner", "another-project")
		testConsoleFlow(t, browser, consoleGateway{admin: g, callers: []*testGateway{g}}, shots)
	})

	t.Run("redis", func(t *testing.T) {
		// Two replicas on one Redis: a change made in the console of one
		// is enforced by the other.
		srv := redistest.Start(t)
		up := MustStartUpstream(t, nil)
		a := MustStartGateway(t, up.URL, redisEnv(srv)...)
		b := MustStartGateway(t, up.URL, redisEnv(srv)...)
		testConsoleFlow(t, browser, consoleGateway{admin: a, callers: []*testGateway{a, b}}, "")
	})

	t.Run("scopes and address ranges", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		testConsoleAccess(t, browser, MustStartGateway(t, up.URL))
	})

	t.Run("webhooks", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		testConsoleWebhooks(t, browser, MustStartGateway(t, up.URL))
	})

	t.Run("owner token, public listener", func(t *testing.T) {
		// No periodic usage flush: the test flushes.
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL, "TSWGATE_USAGE_FLUSH_INTERVAL=5m")
		testConsoleOwnerToken(t, browser, g)
	})
}

func testConsoleFlow(t *testing.T, browser context.Context, cg consoleGateway, shots string) {
	g := cg.admin
	ci := g.MustCreateToken(t, testProject, "owner", "ci-deploy")
	tab := newTab(t, browser, 40*time.Second)
	callAll := func(cred string, check func(testing.TB, *response)) {
		t.Helper()
		for _, c := range cg.callers {
			check(t, c.MustCall(t, http.MethodGet, fmt.Sprintf("/v2/Instance?ProjectId=%d", testProject), cred, nil))
		}
	}

	// The mount point without its slash is redirected to the page.
	tab.do("opening the console",
		chromedp.EmulateViewport(1200, 760),
		chromedp.Navigate(g.AdminURL+"/console"),
		chromedp.WaitVisible(chromedp.ID("credential")),
	)
	loc := mustRun(tab, "location", chromedp.Evaluate[string](`location.pathname`))
	api := mustRun(tab, "api base", chromedp.Evaluate[string](`document.documentElement.dataset.api`))
	if loc != "/console/" || api != "/v1/tokens" {
		t.Fatalf("page at %q calls %q, want /console/ and /v1/tokens", loc, api)
	}

	if shots != "" {
		tab.screenshot(shots, "console-sign-in.png")
	}

	// A wrong key: the API's message, and still the sign-in form.
	tab.do("signing in with a wrong key",
		chromedp.SendKeys(chromedp.ID("credential"), strings.Repeat("x", 40)),
		chromedp.SendKeys(chromedp.ID("sign-in-project"), fmt.Sprint(testProject)),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
	)
	tab.waitFor("the 401 reason", `document.getElementById('alert').textContent.includes('The admin key is not valid')`)
	tab.do("the sign-in form again", chromedp.WaitVisible(chromedp.ID("credential")))

	// Sign in with the admin key and the project.
	// The project entered before is still there; Enter submits.
	tab.do("signing in",
		chromedp.SendKeys(chromedp.ID("credential"), g.AdminKey()+"\n"),
		chromedp.WaitVisible(chromedp.ID("token-rows")),
	)
	tab.waitFor("the list", `document.getElementById('project-label').textContent.includes('42')`)
	if shots != "" {
		tab.screenshot(shots, "console-tokens.png")
	}
	listed := mustRun(tab, "rows", chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#token-rows tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))`))
	for _, row := range listed {
		if len(row) != 8 {
			t.Fatalf("row %q has %d cells, want 8", row, len(row))
		}
		if strings.HasPrefix(row[1], "another-project") {
			t.Errorf("project %d's list shows a token of another project: %q", testProject, row)
		}
		if !regexp.MustCompile(`^tsw_[0-9A-Za-z]{4}…$`).MatchString(row[0]) {
			t.Errorf("Token Id %q is not the partial id", row[0])
		}
		if !regexp.MustCompile(`\b(EST|EDT|GMT-[45])\b`).MatchString(row[4]) {
			t.Errorf("Created %q is not in the browser's time zone (%s)", row[4], browserTimeZone)
		}
		if row[5] != "Never" {
			t.Errorf("Last Used of an unused token = %q, want Never", row[5])
		}
	}
	tz := mustRun(tab, "tz note", chromedp.Text(chromedp.ID("tz-note")))
	if !strings.Contains(tz, browserTimeZone) {
		t.Errorf("time zone note %q does not name %s", tz, browserTimeZone)
	}

	// Generate a token: Display Name, Role, then the secret, once.
	tab.do("generating a token",
		chromedp.Click(chromedp.ID("generate-open")),
		chromedp.WaitVisible(chromedp.CSS(`#generate-dialog[open] #gen-name`)),
	)
	tab.waitFor("focus on Display Name", `document.activeElement && document.activeElement.id === 'gen-name'`)
	tab.do("generating without a name", chromedp.Click(chromedp.ID("generate-submit")))
	tab.waitFor("the name required", `document.getElementById('gen-error').textContent.includes('Enter a Display Name') && `+
		`document.getElementById('gen-name').getAttribute('aria-invalid') === 'true' && document.getElementById('generate-dialog').open`)
	cred, id := tab.generate(t, "browser-test")
	warning := mustRun(tab, "warning", chromedp.Text(chromedp.ID("secret-warning")))
	if !strings.Contains(warning, "cannot be retrieved later") {
		t.Errorf("secret panel warning = %q", warning)
	}
	if shots != "" {
		tab.screenshot(shots, "console-secret.png")
	}
	// Copy puts the whole token on the clipboard (read back with the
	// permission granted to this origin only).
	if _, err := chromedp.CallBrowser(tab.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "clipboard-read"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: g.AdminURL,
	}); err != nil {
		t.Fatalf("granting clipboard-read: %v", err)
	}
	tab.do("copying", chromedp.Click(chromedp.ID("secret-copy")))
	tab.waitFor("the copy status", `document.getElementById('secret-copied').textContent !== ''`)
	if got := mustRun(tab, "copy status", chromedp.Text(chromedp.ID("secret-copied"))); got != "Copied to the clipboard." {
		t.Errorf("after Copy: %q", got)
	}
	clip := mustRun(tab, "reading the clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if clip != cred {
		t.Errorf("the clipboard holds %d characters, not the token", len(clip))
	}
	tab.do("dismissing the secret",
		chromedp.Click(chromedp.ID("secret-done")),
		chromedp.WaitNotPresent(chromedp.CSS(`#secret-dialog[open]`)),
	)
	secret := jsString(secretOf(cred))
	secretGone := `document.getElementById('secret').value === '' && !document.documentElement.outerHTML.includes(` + secret + `) && ` +
		`!document.body.innerText.includes(` + secret + `) && !location.href.includes(` + secret + `) && ` +
		`!location.href.includes(` + jsString(g.AdminKey()) + `) && !Object.values(sessionStorage).some(v => v.includes(` + secret + `))`
	if ok := mustRun(tab, "secret gone", chromedp.Evaluate[bool](secretGone)); !ok {
		t.Error("the secret is still in the page, the URL or session storage after its panel was dismissed")
	}
	tab.do("the new row", chromedp.WaitVisible(actionButton(id, "revoke")))
	callAll(cred, MustBeProxied)

	// Deactivate, then activate, through the page.
	tab.confirmAction(id, "browser-test", "deactivate", "Deactivate")
	tab.do("the token inactive", chromedp.WaitVisible(actionButton(id, "activate")))
	tab.waitFor("focus on Activate", `document.activeElement && document.activeElement.dataset.action === 'activate'`)
	callAll(cred, func(t testing.TB, r *response) { MustBeRefused(t, r, auth.CodeTokenInactive) })
	tab.confirmAction(id, "browser-test", "activate", "Activate")
	tab.do("the token active", chromedp.WaitVisible(actionButton(id, "deactivate")))
	callAll(cred, MustBeProxied)

	// Escape cancels a confirmation, and focus goes back to the button.
	tab.do("opening the revoke confirmation",
		chromedp.Click(actionButton(id, "revoke")),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open]`)),
	)
	if shots != "" {
		tab.screenshot(shots, "console-confirm.png")
	}
	tab.do("pressing Escape", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(chromedp.CSS(`#confirm-dialog[open]`)))
	tab.waitFor("focus back on Revoke", `document.activeElement && document.activeElement.dataset.action === 'revoke'`)
	callAll(cred, MustBeProxied)

	// Revoke it through the dialog, with the keyboard alone: Enter on the
	// focused Revoke, Tab from Cancel to the dialog's Revoke, Enter.
	tab.do("Enter on Revoke", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open] #confirm-ok`)))
	tab.waitFor("focus on Cancel", `document.activeElement && document.activeElement.id === 'confirm-cancel'`)
	tab.do("Tab", chromedp.KeyEvent(kb.Tab))
	tab.waitFor("focus on the dialog's Revoke", `document.activeElement && document.activeElement.id === 'confirm-ok'`)
	tab.do("Enter", chromedp.KeyEvent(kb.Enter), chromedp.WaitNotPresent(chromedp.CSS(`#confirm-dialog[open]`)))
	tab.do("the token revoked", chromedp.WaitNotPresent(actionButton(id, "revoke")))
	tab.waitFor("the API's message", `document.getElementById('status').textContent.includes('revoked')`)
	callAll(cred, func(t testing.TB, r *response) { MustBeRefused(t, r, auth.CodeTokenRevoked) })

	// Rotate another token with a grace period: the new secret is shown
	// once; both work until the old one's grace period ends.
	tab.do("opening the rotate confirmation",
		chromedp.Click(actionButton(ci.ID, "rotate")),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open] #confirm-grace`)),
		chromedp.SetValue(chromedp.ID("confirm-grace"), "1h"),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`#secret-dialog[open] #secret`)),
	)
	tab.waitFor("the rotated secret", `document.getElementById('secret').value !== ''`)
	rotated := mustRun(tab, "reading the rotated secret", chromedp.Value(chromedp.ID("secret")))
	if !auth.ValidCredential(rotated) || rotated == ci.Token {
		t.Fatalf("after rotating, the page shows %q", rotated)
	}
	rememberSecret(rotated)
	if h := mustRun(tab, "heading", chromedp.Text(chromedp.ID("secret-heading"))); h != "Token rotated" {
		t.Errorf("rotation panel heading = %q", h)
	}
	tab.do("dismissing the rotated secret with Escape",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotPresent(chromedp.CSS(`#secret-dialog[open]`)),
	)
	if v := mustRun(tab, "secret field", chromedp.Value(chromedp.ID("secret"))); v != "" {
		t.Error("the rotated secret is still in the page after Escape")
	}
	rotatedID, _, _ := strings.Cut(rotated, ":")
	tab.do("the rotated token's row", chromedp.WaitVisible(actionButton(rotatedID, "revoke")))
	callAll(rotated, MustBeProxied)
	callAll(ci.Token, MustBeProxied) // within its grace period

	// A narrow screen: the table becomes cards that carry their labels.
	tab.do("a narrow screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1)))
	tab.waitFor("stacked cells", `getComputedStyle(document.querySelector('#token-rows td')).display === 'grid'`)
	label := mustRun(tab, "cell label", chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#token-rows td'), '::before').content`))
	if label != `"Token Id"` {
		t.Errorf("a narrow card's first label = %s, want \"Token Id\"", label)
	}
	overflow := mustRun(tab, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if overflow {
		t.Error("the narrow layout scrolls sideways")
	}
	if shots != "" {
		tab.screenshot(shots, "console-narrow.png")
	}

	// Sign out: the credential leaves session storage.
	tab.do("signing out", chromedp.EmulateViewport(1200, 760), chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("credential")))
	if n := mustRun(tab, "storage", chromedp.Evaluate[int](`sessionStorage.length`)); n != 0 {
		t.Errorf("%d items left in session storage after signing out", n)
	}
}

// testConsoleOwnerToken drives the console on the public listener
// (/tswgate/console/, calling the self-service API at /tswgate/v1/tokens)
// signed in with an Owner token of project 42: the admin key is refused
// there; the list shows the token's project only, with its real usage and
// paging; a token generated in the page works until it is revoked there.
func testConsoleOwnerToken(t *testing.T, browser context.Context, g *testGateway) {
	ctx := context.Background()
	owner := g.MustCreateToken(t, testProject, "owner", "self-service")
	acct := g.MustCreateToken(t, testProject, "accounting", "billing-export")
	other := g.MustCreateToken(t, testProject+1, "owner", "another-project")

	tab := newTab(t, browser, 30*time.Second)
	tab.do("opening the console under /tswgate/",
		chromedp.Navigate(g.URL+gateway.PublicConsolePrefix),
		chromedp.WaitVisible(chromedp.ID("credential")),
	)
	loc := mustRun(tab, "location", chromedp.Evaluate[string](`location.pathname`))
	api := mustRun(tab, "api base", chromedp.Evaluate[string](`document.documentElement.dataset.api`))
	if loc != "/tswgate/console/" || api != "/tswgate/v1/tokens" {
		t.Fatalf("page at %q calls %q, want /tswgate/console/ and /tswgate/v1/tokens", loc, api)
	}

	// The admin key: the public listener's 401, and the sign-in form again.
	tab.do("signing in with the admin key",
		chromedp.SendKeys(chromedp.ID("credential"), g.AdminKey()),
		chromedp.SendKeys(chromedp.ID("sign-in-project"), fmt.Sprint(testProject)),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
	)
	tab.waitFor("the 401 reason", `document.getElementById('alert').textContent.includes('admin keys work on the admin listener')`)
	tab.do("the sign-in form again", chromedp.WaitVisible(chromedp.ID("credential")))
	if n := mustRun(tab, "storage", chromedp.Evaluate[int](`sessionStorage.length`)); n != 0 {
		t.Errorf("%d items left in session storage after a refused sign-in", n)
	}

	// An Accounting token may not manage tokens: the API's 403, signed out.
	tab.do("signing in with an Accounting token",
		chromedp.SendKeys(chromedp.ID("credential"), acct.Token),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
	)
	tab.waitFor("the 403 reason, and the sign-in form again", `document.getElementById('alert').textContent.includes('Accounting tokens may not manage tokens') && `+
		`!document.getElementById('sign-in').hidden && document.getElementById('tokens').hidden && sessionStorage.length === 0`)

	// An Owner token whose scopes lack tokens.read may not list tokens:
	// the API's 403 naming the permission, signed out.
	narrow := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "ci-read", Scopes: []string{"compute.read"}})
	tab.do("signing in with a compute.read token",
		chromedp.SendKeys(chromedp.ID("credential"), narrow.Token),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
	)
	tab.waitFor("the 403 naming tokens.read, and the sign-in form again", `document.getElementById('alert').textContent.includes('lacks the tokens.read permission') && `+
		`!document.getElementById('sign-in').hidden && document.getElementById('tokens').hidden && sessionStorage.length === 0`)
	if _, err := g.Admin.Revoke(ctx, narrow.ID); err != nil { // out of the list below
		t.Fatal(err)
	}
	mustRun(tab, "forgetting the requests so far", chromedp.Evaluate[bool](`performance.clearResourceTimings(), true`))

	// The Owner token: no Project ID field, the project from the API.
	tab.do("typing the Owner token", chromedp.SendKeys(chromedp.ID("credential"), owner.Token))
	tab.waitFor("no project field for an Owner token", `document.getElementById('sign-in-project-field').hidden`)
	tab.do("signing in with the Owner token",
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("token-rows")),
	)
	tab.waitFor("the list", `document.getElementById('project-label').textContent.includes('42') && `+
		`document.querySelectorAll('#token-rows tr').length > 0`)
	if hidden := mustRun(tab, "project form", chromedp.Evaluate[bool](`document.getElementById('project-form').hidden`)); !hidden {
		t.Error("the project switcher shows for an Owner token")
	}
	rowIDs := func() []string {
		t.Helper()
		return mustRun(tab, "row ids", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#token-rows tr')].map(tr => tr.dataset.id)`))
	}
	if got, want := strings.Join(slices.Sorted(slices.Values(rowIDs())), " "), strings.Join(slices.Sorted(slices.Values([]string{owner.ID, acct.ID})), " "); got != want {
		t.Errorf("rows %q, want project %d's tokens %q (not %s of project %d)", got, testProject, want, other.ID, testProject+1)
	}
	if hidden := mustRun(tab, "more", chromedp.Evaluate[bool](`document.getElementById('more').hidden`)); !hidden {
		t.Error("More shows for a list of one page")
	}

	// Generate a token in the page and read its secret.
	tab.do("opening Generate New Token",
		chromedp.Click(chromedp.ID("generate-open")),
		chromedp.WaitVisible(chromedp.CSS(`#generate-dialog[open] #gen-name`)),
	)
	cred, id := tab.generate(t, "browser-owner")
	tab.do("dismissing the secret",
		chromedp.Click(chromedp.ID("secret-done")),
		chromedp.WaitNotPresent(chromedp.CSS(`#secret-dialog[open]`)),
		chromedp.WaitVisible(actionButton(id, "revoke")),
	)
	if got, err := g.Admin.Get(ctx, id); err != nil || got.ProjectID != testProject || got.Role != "owner" || got.Name != "browser-owner" {
		t.Fatalf("the token generated in the page: %+v, %v; want an Owner token of project %d", got, err, testProject)
	}
	usedCell := `document.querySelector('#token-rows tr[data-id=` + jsString(id) + `] td.col-used')`
	if used := mustRun(tab, "last used", chromedp.Evaluate[string](usedCell+`.innerText`)); used != "Never" {
		t.Errorf("Last Used of a new token = %q, want Never", used)
	}

	// Use it: two requests allowed, one refused (another project's).
	before := time.Now().Add(-time.Second)
	MustBeProxied(t, g.MustCall(t, http.MethodGet, fmt.Sprintf("/v2/Instance?ProjectId=%d", testProject), cred, nil))
	MustBeProxied(t, g.MustCall(t, http.MethodGet, "/v2/Instance", cred, nil))
	MustBeRefused(t, g.MustCall(t, http.MethodGet, fmt.Sprintf("/v2/Instance?ProjectId=%d", testProject+1), cred, nil), auth.CodeProjectMismatch)
	after := time.Now().Add(time.Second)
	flushUsage(t, g)
	tab.do("refreshing", chromedp.Click(chromedp.ID("refresh")))
	tab.waitFor("the usage", usedCell+` && `+usedCell+`.innerText.includes('Last 24 h: 2 allowed, 1 refused')`)
	used := mustRun(tab, "last used", chromedp.Evaluate[[]string](`[`+usedCell+`.innerText, `+usedCell+`.querySelector('time').dateTime, `+
		usedCell+`.querySelector('.usage').title]`))
	if strings.Contains(used[0], "Never") {
		t.Errorf("Last Used after a flush = %q", used[0])
	}
	if at, err := time.Parse(time.RFC3339Nano, used[1]); err != nil || at.Before(before) || at.After(after) {
		t.Errorf("Last Used time %q (%v) is not between %v and %v", used[1], err, before, after)
	}
	if used[2] != "project_mismatch: 1" {
		t.Errorf("usage detail = %q, want project_mismatch: 1", used[2])
	}

	// Revoke it through the confirmation dialog: refused from now on.
	tab.confirmAction(id, "browser-owner", "revoke", "Revoke")
	tab.do("the token revoked", chromedp.WaitNotPresent(actionButton(id, "revoke")))
	tab.waitFor("the API's message", `document.getElementById('status').textContent.includes('revoked')`)
	MustBeRefused(t, g.MustCall(t, http.MethodGet, "/v2/Instance", cred, nil), auth.CodeTokenRevoked)

	// Paging: past the API's default page (the page asks for no limit),
	// More loads the rest with the API's next_cursor.
	start := time.Now()
	want := map[string]bool{owner.ID: true, acct.ID: true}
	for i := len(want); i <= tokenapi.DefaultPageSize; i++ {
		tok, err := g.Admin.Create(ctx, tokenapi.CreateRequest{ProjectID: testProject, Role: "accounting", Name: fmt.Sprintf("filler-%03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		rememberSecret(tok.Token)
		want[tok.ID] = true
	}
	t.Logf("created %d tokens in %s", len(want)-2, time.Since(start).Round(time.Millisecond))
	tab.do("refreshing", chromedp.Click(chromedp.ID("refresh")))
	tab.waitFor("a full first page", fmt.Sprintf(`document.querySelectorAll('#token-rows tr').length === %d && !document.getElementById('more').hidden`, tokenapi.DefaultPageSize))
	tab.do("the next page",
		chromedp.Click(chromedp.ID("more")),
		chromedp.WaitNotVisible(chromedp.ID("more")),
	)
	ids := rowIDs()
	seen := map[string]bool{}
	for _, id := range ids {
		if !want[id] || seen[id] {
			t.Errorf("after More the list shows %s: not one of project %d's live tokens, or twice", id, testProject)
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Errorf("after More the list shows %d tokens, want all %d", len(seen), len(want))
	}

	// A token generated now is the last, past the first page: the list
	// reloads as far as it, keeping what More loaded, and focuses it; a
	// change to it keeps it in view too.
	tab.do("generating a token past the first page",
		chromedp.Click(chromedp.ID("generate-open")),
		chromedp.WaitVisible(chromedp.CSS(`#generate-dialog[open] #gen-name`)),
		chromedp.SendKeys(chromedp.ID("gen-name"), "late-token"),
		chromedp.Click(chromedp.ID("generate-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#secret-dialog[open] #secret`)),
	)
	tab.waitFor("the secret", `document.getElementById('secret').value !== ''`)
	late := mustRun(tab, "reading the secret", chromedp.Value(chromedp.ID("secret")))
	if !auth.ValidCredential(late) {
		t.Fatalf("the page shows %q, not a credential", late)
	}
	rememberSecret(late)
	lateID, _, _ := strings.Cut(late, ":")
	want[lateID] = true
	tab.do("dismissing the secret",
		chromedp.Click(chromedp.ID("secret-done")),
		chromedp.WaitNotPresent(chromedp.CSS(`#secret-dialog[open]`)),
	)
	tab.waitFor("the new token focused, every token listed", fmt.Sprintf(`document.activeElement && document.activeElement.dataset.id === %s && `+
		`document.activeElement.dataset.action === 'deactivate' && document.querySelectorAll('#token-rows tr').length === %d && document.getElementById('more').hidden`,
		jsString(lateID), len(want)))
	tab.confirmAction(lateID, "late-token", "deactivate", "Deactivate")
	tab.waitFor("the token inactive, in view", fmt.Sprintf(`document.activeElement && document.activeElement.dataset.id === %s && `+
		`document.activeElement.dataset.action === 'activate' && document.querySelectorAll('#token-rows tr').length === %d`, jsString(lateID), len(want)))
	MustBeRefused(t, g.MustCall(t, http.MethodGet, "/v2/Instance", late, nil), auth.CodeTokenInactive)

	// The page named no project (the token's is implied) and paged with
	// the API's cursor.
	urls := mustRun(tab, "requests", chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => e.name).filter(u => u.includes('/v1/tokens'))`))
	paged := false
	for _, u := range urls {
		if strings.Contains(u, "project_id") {
			t.Errorf("the page asked for %s", u)
		}
		paged = paged || strings.Contains(u, "cursor=")
	}
	if !paged {
		t.Errorf("no request with a cursor among %q", urls)
	}
}

// testConsoleAccess generates a token with scopes and address ranges in
// the console, sees them in its row, and edits them there; the public
// listener enforces each state.
// signInAdmin opens g's console on the admin listener and signs in with
// the admin key, on project testProject.
func (b *browserTab) signInAdmin(g *testGateway) {
	b.t.Helper()
	b.do("signing in",
		chromedp.Navigate(g.AdminURL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("sign-in-project"), fmt.Sprint(testProject)),
		chromedp.SendKeys(chromedp.ID("credential"), g.AdminKey()+"\n"),
		chromedp.WaitVisible(chromedp.ID("token-rows")),
	)
}

func testConsoleAccess(t *testing.T, browser context.Context, g *testGateway) {
	tab := newTab(t, browser, 30*time.Second)
	tab.signInAdmin(g)
	tab.mu.Lock()
	tab.expected400 = true // a bad permission is sent below
	tab.mu.Unlock()
	hint := mustRun(tab, "scopes hint", chromedp.Evaluate[string](`document.querySelector('#gen-scopes-hint .perm-list').textContent`))
	for _, p := range auth.Permissions() {
		if !slices.Contains(strings.Split(hint, ", "), p.String()) {
			t.Errorf("the Scopes hint does not list %s: %q", p, hint)
		}
	}
	tab.do("generating a restricted token",
		chromedp.Click(chromedp.ID("generate-open")),
		chromedp.WaitVisible(chromedp.CSS(`#generate-dialog[open] #gen-name`)),
		chromedp.SendKeys(chromedp.ID("gen-scopes"), "compute.read"),
		chromedp.SendKeys(chromedp.ID("gen-ips"), "127.0.0.0/8"),
	)
	cred, id := tab.generate(t, "ci-read")
	tab.do("dismissing the secret", chromedp.Click(chromedp.ID("secret-done")), chromedp.WaitNotPresent(chromedp.CSS(`#secret-dialog[open]`)))
	row := `document.querySelector('#token-rows tr[data-id=` + jsString(id) + `] .access')`
	tab.waitFor("the row's access", row+` && `+row+`.textContent === 'Scopes: compute.read · IPs: 127.0.0.0/8'`)
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", cred, nil))
	mustLackScope(t, g.MustCall(t, "GET", "/v2/Invoice", cred, nil), "billing.read")

	// Edit access: a bad value is named and the dialog stays open.
	tab.do("opening Edit access",
		chromedp.Click(actionButton(id, "access")),
		chromedp.WaitVisible(chromedp.CSS(`#access-dialog[open] #access-scopes`)),
	)
	if v := mustRun(tab, "scopes field", chromedp.Value(chromedp.ID("access-scopes"))); v != "compute.read" {
		t.Errorf("Edit access shows scopes %q, want compute.read", v)
	}
	tab.do("a bad permission",
		chromedp.SetValue(chromedp.ID("access-scopes"), "compute.read, compute.admin"),
		chromedp.Click(chromedp.ID("access-submit")),
	)
	tab.waitFor("the error naming it", `document.getElementById('access-error').textContent.includes('compute.admin') && document.getElementById('access-dialog').open`)
	tab.do("saving new access",
		chromedp.SetValue(chromedp.ID("access-scopes"), "compute.read, billing.read"),
		chromedp.SetValue(chromedp.ID("access-ips"), "10.0.0.0/8"),
		chromedp.Click(chromedp.ID("access-submit")),
		chromedp.WaitNotPresent(chromedp.CSS(`#access-dialog[open]`)),
	)
	tab.waitFor("the row's new access", row+` && `+row+`.textContent === 'Scopes: billing.read, compute.read · IPs: 10.0.0.0/8'`)
	tab.waitFor("focus back on Edit access", `document.activeElement && document.activeElement.dataset.action === 'access'`)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Invoice", cred, nil), auth.CodeIPNotAllowed)
	shown, err := g.Admin.Get(context.Background(), id)
	if err != nil || !slices.Equal(shown.Scopes, []string{"billing.read", "compute.read"}) || !slices.Equal(shown.AllowedIPs, []string{"10.0.0.0/8"}) {
		t.Errorf("the API shows %+v, %v", shown, err)
	}
}

// testConsoleWebhooks: an Owner token's console on the public listener
// shows its project's webhook endpoint and the delivery of a token event,
// and no endpoint secret.
func testConsoleWebhooks(t *testing.T, browser context.Context, g *testGateway) {
	hooks := &webhookapi.Client{API: g.Admin, ProjectID: testProject}
	// A public address that cannot be reached here: the delivery stays
	// retrying, which is what the table should show.
	ep, err := hooks.Create(context.Background(), webhookapi.CreateRequest{URL: "https://8.8.8.8/tswgate-hook"})
	if err != nil {
		t.Fatal(err)
	}
	owner := g.MustCreateToken(t, testProject, "owner", "hooked") // token.created, queued for ep
	tab := newTab(t, browser, 40*time.Second)
	tab.do("signing in with the Owner token on the public listener",
		chromedp.Navigate(g.URL+gateway.PublicConsolePrefix),
		chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("credential"), owner.Token),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)),
	)
	endpoint := `document.querySelector('#hooks:not([hidden]) [data-endpoint=` + jsString(ep.ID) + `]')`
	tab.waitFor("the endpoint and its token.created delivery", endpoint+` && `+
		endpoint+`.textContent.includes('https://8.8.8.8/tswgate-hook') && `+
		endpoint+`.querySelector('tr[data-delivery]') && `+endpoint+`.textContent.includes('token.created')`)
	if n := mustRun(tab, "secrets on the page", chromedp.Evaluate[int](`document.body.innerHTML.split('whsec_').length - 1`)); n != 0 {
		t.Errorf("the page shows %d endpoint secrets", n)
	}
}
