package tokenapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
)

// A token made by a token joins its maker's lineage: the root's id and
// its effective limit when the first token was made from it, and the
// ancestors between (a grandchild names the child; a self-rotation's
// successor takes its predecessor's place). Tokens made by an operator,
// and an operator's rotation's successor, start their own.
func TestLineageJoinedByMadeTokens(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{roles: map[auth.Role]Limit{auth.RoleOwner: {Rate: 50, Burst: 100}}})
	ctx := context.Background()
	root := f.mint(t, CreateRequest{RateLimit: 0.001, Burst: 3})
	want := auth.Lineage{Root: root.ID, Rate: 0.001, Burst: 3}
	check := func(what, id string) {
		t.Helper()
		if got := f.stored(t, id).Lineage; got.Root != want.Root || got.Rate != want.Rate || got.Burst != want.Burst {
			t.Errorf("%s: lineage %+v, want %+v", what, got, want)
		}
	}
	if got := f.stored(t, root.ID).Lineage; !got.IsZero() {
		t.Fatalf("a token minted with the admin key: lineage %+v, want none", got)
	}
	child, err := f.self(root.Token).Create(ctx, CreateRequest{Role: "owner", Name: "child"})
	if err != nil {
		t.Fatal(err)
	}
	check("child", child.ID)
	if child.Lineage == nil || child.Lineage.Root != root.ID || child.Lineage.RateLimit != 0.001 || child.Lineage.Burst != 3 {
		t.Errorf("the child's view shows lineage %+v", child.Lineage)
	}
	grand, err := f.self(child.Token).Create(ctx, CreateRequest{Role: "owner", Name: "grandchild"})
	if err != nil {
		t.Fatal(err)
	}
	check("grandchild", grand.ID)
	if via := f.stored(t, grand.ID).Lineage.Via[0]; via.ID != child.ID {
		t.Errorf("grandchild: first ancestor below the root %+v, want the child %s", via, child.ID)
	}

	// The root's limit changes later: tokens made from then on still carry
	// the lineage's first limit (the children already do).
	if _, err := f.admin.Update(ctx, root.ID, UpdateRequest{RateLimit: ptr(5.0)}); err != nil {
		t.Fatal(err)
	}
	late, err := f.self(child.Token).Create(ctx, CreateRequest{Role: "owner", Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	check("a token made by the child after the root's limit changed", late.ID)

	// Rotations by a token, with and without grace.
	for _, grace := range []string{"", "1h"} {
		res, err := f.self(late.Token).Rotate(ctx, late.ID, RotateRequest{Grace: grace})
		if err != nil {
			t.Fatalf("self-rotation (grace %q): %v", grace, err)
		}
		check("successor (grace "+grace+")", res.Token.ID)
		late = res.Token
	}
	// A root rotating itself: its successor shares its bucket.
	solo := f.mint(t, CreateRequest{RateLimit: 2, Burst: 4})
	res, err := f.self(solo.Token).Rotate(ctx, solo.ID, RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if got, w := f.stored(t, res.Token.ID).Lineage, (auth.Lineage{Root: solo.ID, Rate: 2, Burst: 4, Successor: true}); got != w {
		t.Errorf("successor of a root rotated by itself: %+v, want %+v", got, w)
	}
	// A maker limited by its role only carries the role's limit.
	roleLimited := f.mint(t, CreateRequest{})
	kid, err := f.self(roleLimited.Token).Create(ctx, CreateRequest{Role: "accounting", Name: "books"})
	if err != nil {
		t.Fatal(err)
	}
	if got, w := f.stored(t, kid.ID).Lineage, (auth.Lineage{Root: roleLimited.ID, Rate: 50, Burst: 100}); got != w {
		t.Errorf("child of a role-limited token: %+v, want %+v", got, w)
	}

	// The operator: a new token and a rotation's successor start anew.
	byAdmin, err := f.admin.Rotate(ctx, child.ID, RotateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.stored(t, byAdmin.Token.ID).Lineage; !got.IsZero() {
		t.Errorf("successor of an operator's rotation: lineage %+v, want none", got)
	}
}

// The gate holds a root and everything made from it to the root's limit,
// with a real limiter: a token with burst 3 that makes two children gets
// three requests among the three of them, not nine.
func TestLineageCapsTheMadeTokens(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	root := f.mint(t, CreateRequest{RateLimit: 0.001, Burst: 3})
	var toks []*auth.Token
	toks = append(toks, f.stored(t, root.ID))
	for _, name := range []string{"a", "b"} {
		c, err := f.self(root.Token).Create(ctx, CreateRequest{Role: "owner", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, f.stored(t, c.ID))
	}
	l := limiter.NewLocal(limiter.Options{})
	admitted, now := 0, time.Now()
	for range 3 {
		for _, tok := range toks {
			if l.Allow(ctx, tok, now).Allowed {
				admitted++
			}
		}
	}
	if admitted != 3 {
		t.Fatalf("a root of burst 3 and its two children admitted %d, want 3", admitted)
	}
}

// The token API's calls are charged to the caller's lineage too, and a
// refusal by it says so (rate_limited, the lineage's message).
func TestLineageChargesSelfService(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{realLimiter: limiter.NewLocal(limiter.Options{})})
	root := f.mint(t, CreateRequest{RateLimit: 0.001, Burst: 2})
	a := f.call(t, "POST", "/v1/tokens", root.Token, `{"role":"owner","name":"child"}`) // 1 of the lineage's 2
	if a.status != 201 {
		t.Fatalf("create: HTTP %d\n%s", a.status, a.body)
	}
	var created TokenResponse
	if err := json.Unmarshal([]byte(a.body), &created); err != nil {
		t.Fatal(err)
	}
	child := created.Token
	if a := f.call(t, "GET", "/v1/tokens/"+child.ID, child.Token, ""); a.status != 200 { // 2 of 2
		t.Fatalf("the child's first call: HTTP %d\n%s", a.status, a.body)
	}
	a = f.call(t, "GET", "/v1/tokens/"+child.ID, child.Token, "") // its own bucket has 1 left
	mustRefuse(t, a, 429, "rate_limited")
	if !strings.Contains(a.err.Message, "lineage") {
		t.Errorf("refusal by the lineage: %q, want it named", a.err.Message)
	}
	if n := f.refusals(t, 42)["token.show rate_limited"]; n != 1 {
		t.Errorf("%d token.show rate_limited events, want 1", n)
	}
	a = f.call(t, "GET", "/v1/tokens", root.Token, "") // the root's own bucket is the lineage's
	mustRefuse(t, a, 429, "rate_limited")
	if strings.Contains(a.err.Message, "lineage") {
		t.Errorf("a root's refusal names a lineage: %q", a.err.Message)
	}
}

// A token auth.MaxLineageDepth levels below its root may not make
// tokens (lineage_too_deep), but may rotate itself.
func TestLineageTooDeep(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	maker := f.mint(t, CreateRequest{RateLimit: 0.001, Burst: 3})
	for i := range auth.MaxLineageDepth {
		kid, err := f.self(maker.Token).Create(ctx, CreateRequest{Role: "owner", Name: "level"})
		if err != nil {
			t.Fatalf("level %d: %v", i+1, err)
		}
		maker = kid
	}
	a := f.call(t, "POST", "/v1/tokens", maker.Token, `{"role":"owner","name":"too deep"}`)
	mustRefuse(t, a, 403, "lineage_too_deep")
	// Rotating itself takes its own place: no deeper, allowed.
	if _, err := f.self(maker.Token).Rotate(ctx, maker.ID, RotateRequest{}); err != nil {
		t.Fatalf("self-rotation at the deepest level: %v", err)
	}
}
