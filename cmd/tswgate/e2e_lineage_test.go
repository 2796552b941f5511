package main

// A token cannot widen its own rate limit by making tokens: everything
// made from a token (children, grandchildren, rotation successors) shares
// its bucket, on every replica.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

func TestE2ELineageSharesTheMakersLimit(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	gws := []*testGateway{
		MustStartGateway(t, up.URL, redisEnv(srv)...),
		MustStartGateway(t, up.URL, redisEnv(srv)...),
	}
	const burst = 8
	parent := gws[0].mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "parent", RateLimit: tinyRate, Burst: burst})

	// The parent makes two children (each limited like it, burst 8), one
	// child makes a grandchild, and the other rotates itself with a grace
	// period (it lives on beside its successor). Each of these four calls
	// is charged to the lineage's one bucket: 4 of its 8 are spent.
	a := gws[0].mustSelfCreate(t, parent.Token, tokenapi.CreateRequest{Role: "owner", Name: "child-a"})
	b := gws[1].mustSelfCreate(t, parent.Token, tokenapi.CreateRequest{Role: "owner", Name: "child-b"})
	grand := gws[0].mustSelfCreate(t, a.Token, tokenapi.CreateRequest{Role: "owner", Name: "grandchild"})
	rot, err := gws[1].selfService(b.Token).Rotate(t.Context(), b.ID, tokenapi.RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatalf("self-rotation with grace: %v", err)
	}
	rememberSecret(rot.Token.Token)
	for _, tok := range []tokenapi.Token{a, grand, rot.Token} {
		if tok.RateLimit != tinyRate || tok.Burst != burst || tok.Lineage == nil || tok.Lineage.Root != parent.ID {
			t.Fatalf("token made from the parent: %+v, want its limit and its lineage", tok)
		}
	}

	// 10 requests of each of the 5 tokens, round robin over the replicas:
	// without a shared bucket each would get 8 (or 7); together they get
	// what is left of the parent's 8.
	creds := []string{parent.Token, a.Token, b.Token, grand.Token, rot.Token.Token}
	admitted, refused := 0, 0
	var lineageRefusal *response
	for i := range 10 * len(creds) {
		tok := creds[i%len(creds)]
		r := gws[i%len(gws)].MustCall(t, "GET", "/v2/Instance", tok, nil)
		switch r.Status {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			refused++
			MustBeRefused(t, r, auth.CodeRateLimited)
			if tok != parent.Token && lineageRefusal == nil {
				lineageRefusal = r // its own bucket is full: the lineage refused it
			}
		default:
			t.Fatalf("request %d: %s", i, r)
		}
	}
	if admitted != burst-4 || refused != 10*len(creds)-(burst-4) {
		t.Fatalf("a token and the 4 made from it admitted %d and refused %d of %d requests, want %d admitted: "+
			"the parent's burst of %d less the 4 token API calls", admitted, refused, 10*len(creds), burst-4, burst)
	}
	// A made token's refusal says it is its lineage's limit, in the
	// message and the headers.
	var env struct{ Message string }
	if err := json.Unmarshal(lineageRefusal.Body, &env); err != nil || env.Message != auth.LineageLimitedMessage {
		t.Errorf("lineage refusal message %q, want %q", env.Message, auth.LineageLimitedMessage)
	}
	if got := lineageRefusal.Header.Get("RateLimit-Policy"); !strings.Contains(got, `"lineage";q=8;w=8000`) {
		t.Errorf("lineage refusal RateLimit-Policy = %q, want the lineage's item", got)
	}
	if got := lineageRefusal.Header.Get("RateLimit-Remaining"); got != "0" {
		t.Errorf("lineage refusal RateLimit-Remaining = %q, want 0", got)
	}

	// A token made by the operator starts its own lineage: untouched.
	fresh := gws[0].mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "fresh", RateLimit: tinyRate, Burst: burst})
	MustBeProxied(t, gws[1].MustCall(t, "GET", "/v2/Instance", fresh.Token, nil))
}

// TestE2ELineageNarrowedBranch: an operator narrows B, a token made by
// root A; the tokens B made before are held to B's new limit across two
// replicas sharing Redis, not to A's.
func TestE2ELineageNarrowedBranch(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	gws := []*testGateway{MustStartGateway(t, up.URL, redisEnv(srv)...), MustStartGateway(t, up.URL, redisEnv(srv)...)}
	a := gws[0].mustMint(t, tokenapi.CreateRequest{Role: "owner", RateLimit: tinyRate, Burst: 20})
	b := gws[0].mustSelfCreate(t, a.Token, tokenapi.CreateRequest{Role: "owner", Name: "branch"})
	kids := []tokenapi.Token{
		gws[0].mustSelfCreate(t, b.Token, tokenapi.CreateRequest{Role: "owner", Name: "leaf one"}),
		gws[0].mustSelfCreate(t, b.Token, tokenapi.CreateRequest{Role: "owner", Name: "leaf two"}),
	}
	mustLimit(t, gws[0], b.ID, tinyRate, 3, nil)
	admitted := 0
	var refused *response
	for i := range 12 {
		r := gws[i%2].MustCall(t, "GET", "/v2/Instance", kids[(i/2)%2].Token, nil)
		switch r.Status {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			MustBeRefused(t, r, auth.CodeRateLimited)
			refused = r
		default:
			t.Fatalf("request %d: %s", i, r)
		}
	}
	if admitted != 3 {
		t.Fatalf("2 tokens made by a branch narrowed to burst 3 admitted %d of 12 on 2 replicas, want 3", admitted)
	}
	if !strings.Contains(string(refused.Body), "lineage") {
		t.Errorf("refusal by the branch: %s, want the lineage named", refused.Body)
	}
}
