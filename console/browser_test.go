package console_test

// The page's sign-out in a real headless Chromium (Debian's
// /usr/bin/chromium, or TSWGATE_TEST_CHROMIUM), against a canned token
// API: what a signed-out page still shows. Without Chromium the tests are
// skipped, except under CI=true where they fail.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tswgate/tswgate/console"
)

// startBrowser starts a headless Chromium and returns a tab's context.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("TSWGATE_TEST_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required under CI=true: %v", err)
		}
		t.Skipf("no Chromium (%v): apt-get install chromium, or set TSWGATE_TEST_CHROMIUM", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true), chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}

// shownSecret is the credential the canned API creates.
const shownSecret = "tsw_AbCdEfGhIjKlMnOpQrSt:tswsk_ShownOnceShownOnceShownOnceShown"

// cannedAPI serves the console at /console/ and a token API with one
// token of project 42: PATCH answers 401 (the credential no longer
// works), and the webhook list waits for hooksGate.
func cannedAPI(t *testing.T, hooksAsked chan<- struct{}, hooksGate <-chan struct{}) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", console.Handler()))
	reply := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"success":true,"message":"","project_id":42,"tokens":[{"id":"tsw_AbCdEfGhIjKlMnOpQrSt",`+
			`"name":"ci-deploy","role":"owner","status":"active","created_at":"2026-12-01T10:00:00Z"}]}`)
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, `{"success":true,"message":"Token created.","token":{"id":"tsw_AbCdEfGhIjKlMnOpQrSt",`+
			`"name":"ci-deploy","role":"owner","status":"active","token":"`+shownSecret+`"}}`)
	})
	mux.HandleFunc("GET /elsewhere", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><p id="elsewhere">another page</p>`))
	})
	mux.HandleFunc("PATCH /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 401, `{"success":false,"code":"invalid_token","message":"The credential is not valid."}`)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"success":true,"message":"","policy":null}`)
	})
	mux.HandleFunc("GET /v1/projects/42/webhooks", func(w http.ResponseWriter, r *http.Request) {
		if hooksGate != nil {
			hooksAsked <- struct{}{}
			<-hooksGate
		}
		reply(w, 200, `{"success":true,"message":"","endpoints":[]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// signIn opens the console and signs in with an admin key for project 42.
func signIn(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/console/"),
		chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("credential"), "an-admin-key-of-the-gateway"),
		chromedp.SendKeys(chromedp.ID("sign-in-project"), "42"),
		chromedp.Click(chromedp.CSS(`#sign-in-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#token-rows button[data-action="access"]`)),
	); err != nil {
		t.Fatalf("signing in: %v", err)
	}
}

// A credential refused while the Edit access dialog is open signs the
// page out: the dialog, modal over the sign-in form and showing the
// token's access, closes with it.
func TestSignOutClosesTheAccessDialog(t *testing.T) {
	ctx := startBrowser(t)
	srv := cannedAPI(t, nil, nil)
	signIn(t, ctx, srv.URL)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#token-rows button[data-action="access"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#access-dialog[open] #access-submit`)),
		chromedp.Click(chromedp.ID("access-submit")),
		chromedp.WaitVisible(chromedp.ID("sign-in")),
	); err != nil {
		t.Fatalf("editing access: %v", err)
	}
	open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('access-dialog').open`))
	if err != nil {
		t.Fatal(err)
	}
	if open {
		t.Fatal("signed out, the Edit access dialog is still open over the sign-in form")
	}
}

// The webhooks of a project, read by a request that answers after the
// page signed out, are not shown on the sign-in page.
func TestSignOutDropsAnswersStillToCome(t *testing.T) {
	ctx := startBrowser(t)
	asked, gate := make(chan struct{}, 1), make(chan struct{})
	srv := cannedAPI(t, asked, gate)
	// Count the webhook answers the page has read (Response.json).
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.hooksRead = 0;
		const json = Response.prototype.json;
		Response.prototype.json = function () {
			const url = this.url;
			return json.call(this).then((v) => { if (url.includes('/webhooks')) window.hooksRead++; return v; });
		};`}); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, srv.URL)
	<-asked
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("sign-in"))); err != nil {
		t.Fatalf("signing out: %v", err)
	}
	close(gate)
	// Once the page has read the answer, and its code after that has run
	// (a task after the answer's promise callbacks):
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((resolve) => {
		const check = () => window.hooksRead > 0
			? setTimeout(() => resolve(document.getElementById('hooks').hidden), 0)
			: setTimeout(check, 10);
		check();
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !hidden {
		t.Fatal("signed out, the page shows the webhooks section of the project it was signed in to")
	}
}

// The secret is shown once: leaving the page with its dialog open, then
// going back (the page restored from the back/forward cache), does not
// show it again.
func TestSecretNotKeptInHistory(t *testing.T) {
	ctx := startBrowser(t)
	srv := cannedAPI(t, nil, nil)
	signIn(t, ctx, srv.URL)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("generate-open")),
		chromedp.SendKeys(chromedp.ID("gen-name"), "ci-deploy"),
		chromedp.Click(chromedp.ID("generate-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#secret-dialog[open] #secret`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('secret').value !== ''`),
		chromedp.Navigate(srv.URL+"/elsewhere"),
		chromedp.WaitVisible(chromedp.ID("elsewhere")),
	); err != nil {
		t.Fatalf("generating and leaving: %v", err)
	}
	// Back, as the browser's button does (no load event when the page
	// comes from the back/forward cache, so not chromedp.NavigateBack).
	hist, err := chromedp.Call(ctx, page.GetNavigationHistory, cdp.Empty{})
	if err != nil || hist.CurrentIndex < 1 {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	back := page.NavigateToHistoryEntryParams{EntryID: hist.Entries[hist.CurrentIndex-1].ID}
	if _, err := chromedp.Call(ctx, page.NavigateToHistoryEntry, back); err != nil {
		t.Fatal(err)
	}
	// The DOM queries of chromedp do not follow a restored page; an
	// evaluation runs in the tab's current document: ask until it is the
	// console's again (each answer comes from the browser, no sleep).
	for {
		where, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
		if err == nil && where == "/console/" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("coming back: %v (%v)", ctx.Err(), err)
		}
	}
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.getElementById('secret').value + ' ' + document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, shownSecret) {
		t.Fatal("back on the page, the secret is shown again")
	}
}
