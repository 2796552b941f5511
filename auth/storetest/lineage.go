package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// testLineage checks Token.Lineage, the rate-limit bucket a token made by
// a token shares: stored and read back whole, the zero Lineage (a root, as
// records written before the field read) stays zero, an Update keeps it
// and cannot change it, and a tombstone keeps it.
func testLineage(t *testing.T, s auth.Store) {
	ctx := context.Background()
	root, child, unlimited, grandchild, deepest := lineageTokens(t)
	for _, tok := range []*auth.Token{root, child, unlimited, grandchild, deepest} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatalf("Create(%s): %v", tok.ID, err)
		}
		got, err := s.Get(ctx, tok.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", tok.ID, err)
		}
		AssertEqual(t, got, tok)
	}
	if got, _ := s.Get(ctx, root.ID); !got.Lineage.IsZero() {
		t.Errorf("a root reads with lineage %+v, want none", got.Lineage)
	}

	// An Update keeps the lineage (the stores write what they do not know
	// of back as read) and refuses to change it.
	want := *child
	want.Name = "renamed"
	got, err := s.Update(ctx, child.ID, func(u *auth.Token) error { u.Name = "renamed"; return nil })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	AssertEqual(t, got, &want)
	wantDeep := *deepest
	wantDeep.Name = "renamed"
	got, err = s.Update(ctx, deepest.ID, func(u *auth.Token) error { u.Name = "renamed"; return nil })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	AssertEqual(t, got, &wantDeep)
	for name, edit := range map[string]func(*auth.Token){
		"leave the lineage":  func(u *auth.Token) { u.Lineage = auth.Lineage{} },
		"widen its limit":    func(u *auth.Token) { u.Lineage.Rate = 100 },
		"move to another":    func(u *auth.Token) { u.Lineage.Root = unlimited.ID },
		"join one":           func(u *auth.Token) { u.Lineage = child.Lineage },
		"lineage of itself":  func(u *auth.Token) { u.Lineage.Root = u.ID },
		"drop an ancestor":   func(u *auth.Token) { u.Lineage.Via[0] = auth.LineageLink{} },
		"limit without root": func(u *auth.Token) { u.Lineage = auth.Lineage{Rate: 1} },
	} {
		id := child.ID
		switch name {
		case "join one":
			id = root.ID
		case "drop an ancestor":
			id = grandchild.ID
		}
		if got, err := s.Update(ctx, id, func(u *auth.Token) error { edit(u); return nil }); err == nil {
			t.Errorf("Update (%s) succeeded: %s", name, format(got))
		} else if errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrNotFound) {
			t.Errorf("Update (%s): %v, want a validation error", name, err)
		}
	}
	bad := *child
	bad.ID = unlimited.ID[:len(unlimited.ID)-1] + "x"
	bad.Lineage = auth.Lineage{Root: root.ID, Rate: -1}
	if err := s.Create(ctx, &bad); err == nil || errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Create with a negative lineage rate: %v, want a validation error", err)
	}

	// A tombstone keeps it: a revoked token still names its line.
	tomb, err := s.Revoke(ctx, child.ID, time.Now())
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if tomb.Lineage != child.Lineage {
		t.Errorf("tombstone lineage %+v, want %+v", tomb.Lineage, child.Lineage)
	}
	if got, err := s.Get(ctx, child.ID); err != nil || got.Lineage != child.Lineage {
		t.Errorf("Get of the tombstone: %v, %v; want lineage %+v", got, err, child.Lineage)
	}
}

// deepLineage returns a token (not stored) depth levels below root: its
// ancestors between are made up, each with a limit of its own.
func deepLineage(t *testing.T, root *auth.Token, depth int) *auth.Token {
	t.Helper()
	maker := root
	for i := 1; i <= depth; i++ {
		next, _ := NewToken(t, root.ProjectID, auth.RoleOwner)
		l, err := auth.DescendLineage(maker, float64(i), i+1, false, false)
		if err != nil {
			t.Fatalf("DescendLineage at depth %d: %v", i, err)
		}
		next.Lineage = l
		maker = next
	}
	if _, err := auth.DescendLineage(maker, 1, 1, false, false); !errors.Is(err, auth.ErrLineageTooDeep) {
		t.Fatalf("DescendLineage below depth %d: %v, want ErrLineageTooDeep", depth, err)
	}
	return maker
}

// lineageTokens returns (not stored) a root with a limit, a child of it,
// a child of a root without a limit, a grandchild and a token at the
// deepest level, the last two carrying the ancestors between the root
// and them, each with its limit.
func lineageTokens(t *testing.T) (root, child, unlimited, grandchild, deepest *auth.Token) {
	root, _ = NewToken(t, 61, auth.RoleOwner)
	root.RateLimit, root.RateBurst = 0.001, 4
	child, _ = NewToken(t, 61, auth.RoleOwner)
	child.RateLimit, child.RateBurst = 0.001, 4
	child.Lineage = auth.Lineage{Root: root.ID, Rate: 0.001, Burst: 4}
	unlimited, _ = NewToken(t, 61, auth.RoleOwner)
	unlimited.Lineage = auth.Lineage{Root: root.ID} // made by a token without a limit
	grandchild, _ = NewToken(t, 61, auth.RoleOwner)
	var err error
	if grandchild.Lineage, err = auth.DescendLineage(child, 0.5, 3, true, false); err != nil {
		t.Fatalf("DescendLineage: %v", err)
	}
	deepest = deepLineage(t, root, auth.MaxLineageDepth)
	// The successor of the deepest token's rotation of itself is one
	// deeper still.
	succ, _ := NewToken(t, 61, auth.RoleOwner)
	if succ.Lineage, err = auth.DescendLineage(deepest, 0.25, 2, false, true); err != nil {
		t.Fatalf("DescendLineage of a rotation at the deepest level: %v", err)
	}
	return root, child, unlimited, grandchild, succ
}
