package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestGateBlockedAddress: a client whose address has spent its failed
// authentications goes on with a token it has been using — even once the
// cached record is past its TTL, or after a resync — while any other
// credential from it is refused auth_rate_limited with no store read.
func TestGateBlockedAddress(t *testing.T) {
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	store := &countingGetter{toks: map[string]*Token{}}
	v := newTestValidator(t, ValidatorOptions{Store: store, TTL: time.Second})
	g, err := NewGate(GateOptions{Validator: v, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	tok, used := testToken(t, h, 42, RoleOwner)
	store.set(tok)
	// A token never seen, with an id from NewCredential (no tag).
	fresh := func() string { tk, c := testToken(t, h, 42, RoleOwner); store.set(tk); return c }()
	unknown := func() string { _, c := mustCredential(t); return c }()
	forged := used[:IDLen] + unknown[IDLen:]
	ctx := context.Background()
	now := time.Now()
	req := func(cred string) *Request {
		return &Request{Method: "GET", Path: "/v2/Region", Authorization: "Bearer " + cred}
	}
	if v := g.Decide(ctx, req(used), now); v.Code != OK {
		t.Fatalf("first use: %v", v.Code)
	}
	v.Wait()

	blocked := func(cred string, at time.Time) Verdict {
		r := req(cred)
		r.FailuresBlockedFor = 3 * time.Second
		return g.Decide(ctx, r, at)
	}
	reads := store.reads.Load()
	for _, cred := range []string{unknown, forged, fresh, "not-a-token", ""} {
		v := blocked(cred, now)
		if v.Code != CodeAuthRateLimited || v.RetryAfter != 3*time.Second {
			t.Errorf("blocked %.12q: %v (retry %v), want auth_rate_limited after 3s", cred, v.Code, v.RetryAfter)
		}
	}
	if got := store.reads.Load() - reads; got != 0 {
		t.Errorf("%d store reads for refused credentials of a blocked address", got)
	}
	if v := blocked(used, now); v.Code != OK {
		t.Errorf("the token in use, blocked address: %v", v.Code)
	}
	// A token the gateway minted is worth its store read, seen or not; a
	// wrong secret for it is not, once its record is cached.
	id, minted, err := h.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	mintedTok := &Token{ID: id, ProjectID: 42, Name: "minted", Role: RoleOwner, Status: StatusActive, CreatedAt: now}
	mintedTok.SecretHash, mintedTok.PepperID = h.Hash(minted)
	store.set(mintedTok)
	if v := blocked(minted, now); v.Code != OK {
		t.Errorf("a minted token never seen, blocked address: %v", v.Code)
	}
	v.Wait()
	var sum [checksumLen]byte
	last := "x"
	if minted[CredentialLen-checksumLen-1] == 'x' {
		last = "y"
	}
	wrong := minted[:CredentialLen-checksumLen-1] + last
	encodeChecksum(&sum, checksum(wrong))
	reads = store.reads.Load()
	if v := blocked(wrong+string(sum[:]), now); v.Code != CodeAuthRateLimited {
		t.Errorf("a wrong secret for a cached minted id: %v", v.Code)
	}
	if store.reads.Load() != reads {
		t.Error("a wrong secret for a cached minted id read the store")
	}
	// Past the TTL (a store read refreshes it), and after a resync.
	if v := blocked(used, now.Add(time.Hour-time.Minute)); v.Code != OK {
		t.Errorf("the token in use, past the TTL: %v", v.Code)
	}
	g.validator.InvalidateAll()
	if v := blocked(used, now.Add(time.Hour)); v.Code != OK {
		t.Errorf("the token in use, after a resync: %v", v.Code)
	}
	// Once revoked (the change drops it), it is no longer recognized.
	store.set(&Token{ID: tok.ID, ProjectID: 42, Role: RoleOwner, Status: StatusActive, CreatedAt: tok.CreatedAt, RevokedAt: now})
	v.Invalidate(tok.ID)
	if v := blocked(used, now); v.Code != CodeAuthRateLimited {
		t.Errorf("revoked token, blocked address: %v", v.Code)
	}
}

// TestValidatorPeek: Peek shows a record read long ago without reading the
// store, never an unknown id, and nothing once a change dropped it.
func TestValidatorPeek(t *testing.T) {
	h, _ := NewHasher(testPepper)
	store := &countingGetter{toks: map[string]*Token{}}
	v := newTestValidator(t, ValidatorOptions{Store: store, TTL: time.Millisecond})
	tok, _ := testToken(t, h, 42, RoleOwner)
	store.set(tok)
	if v.Peek(tok.ID) != nil {
		t.Fatal("Peek before any read")
	}
	ctx := context.Background()
	if _, _, err := v.Lookup(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, _, err := v.Lookup(ctx, "tsw_00000000000000000000", time.Now())
	if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	v.Wait()
	reads := store.reads.Load()
	if v.Peek(tok.ID) != tok {
		t.Error("Peek lost a record read past its TTL")
	}
	if v.Peek("tsw_00000000000000000000") != nil {
		t.Error("Peek of an unknown id")
	}
	if store.reads.Load() != reads {
		t.Error("Peek read the store")
	}
	v.Invalidate(tok.ID)
	if v.Peek(tok.ID) != nil {
		t.Error("Peek after an invalidation")
	}
}
