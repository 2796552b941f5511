package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// TestConsoleBrowserPolicy: the console shows the project's policy above
// the list and flags the tokens that break it (made before it was set)
// with a badge saying why, and only those.
func TestConsoleBrowserPolicy(t *testing.T) {
	browser := MustStartBrowser(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	ctx := context.Background()
	forever := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "forever"})
	long := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "long", ExpiresIn: "8760h"})
	fine := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "fine", ExpiresIn: "720h"})
	if _, err := g.Admin.SetPolicy(ctx, testProject, tokenapi.PolicyRequest{MaxLifetime: "90d", RequireExpiry: true, RateLimit: 50}); err != nil {
		t.Fatal(err)
	}

	tab := newTab(t, browser, 30*time.Second)
	tab.signInAdmin(g)
	tab.waitFor("the policy line", `!document.getElementById('policy').hidden && document.getElementById('policy').textContent === `+
		jsString("Project policy: tokens live at most 90d; tokens must expire; the project shares 50 requests/s (burst 50)."))
	badge := func(id string) string {
		return `document.querySelector('#token-rows tr[data-id=` + jsString(id) + `] .badge.violation')`
	}
	tab.waitFor("the badge of the token without expiry", badge(forever.ID)+` && `+badge(forever.ID)+`.textContent.includes('No expiry, and the project requires one.')`)
	tab.waitFor("the badge of the long-lived token", badge(long.ID)+` && `+badge(long.ID)+`.textContent.includes("maximum of 90d")`)
	if flagged := mustRun(tab, "the compliant token's row", chromedp.Evaluate[bool](badge(fine.ID)+` !== null`)); flagged {
		t.Error("a token within the policy is flagged")
	}
}
