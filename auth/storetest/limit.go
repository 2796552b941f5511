package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Option adjusts Run.
type Option func(*options)

type options struct {
	peer func(t *testing.T, s auth.ActivityStore) auth.ActivityStore
}

// WithPeer gives Run a second store on the same data as s — another
// replica sharing the store — for the cases where replicas race. peer
// closes what it opens when the test ends. Without it (a store only one
// process may open), those cases use s from both sides.
func WithPeer(peer func(t *testing.T, s auth.ActivityStore) auth.ActivityStore) Option {
	return func(o *options) { o.peer = peer }
}

// runLimit runs the CreateWithin contract:
//   - a create within a limit stores the token only while the project has
//     fewer live tokens than the limit, and refuses with an error matching
//     auth.ErrTokenLimit (an *auth.TokenLimitError) otherwise, storing
//     nothing;
//   - revoked tokens and other projects' do not count; a limit of 0
//     bounds nothing; a taken id is auth.ErrExists and takes no place;
//   - concurrent creates, from two replicas at once, never pass the limit
//     together.
func runLimit(t *testing.T, fresh func(t *testing.T) auth.ActivityStore, o options) {
	peer := o.peer
	if peer == nil {
		peer = func(_ *testing.T, s auth.ActivityStore) auth.ActivityStore { return s }
	}
	t.Run("CreateWithin", func(t *testing.T) { testCreateWithin(t, fresh(t)) })
	t.Run("CreateWithinConcurrent", func(t *testing.T) {
		s := fresh(t)
		testCreateWithinConcurrent(t, s, peer(t, s))
	})
}

func testCreateWithin(t *testing.T, s auth.ActivityStore) {
	ctx := context.Background()
	const project, limit = 81, 2
	var made []*auth.Token
	for range limit {
		tok, _ := NewToken(t, project, auth.RoleOwner)
		if err := s.CreateWithin(ctx, tok, limit); err != nil {
			t.Fatalf("CreateWithin below the limit: %v", err)
		}
		made = append(made, tok)
	}
	over, _ := NewToken(t, project, auth.RoleOwner)
	err := s.CreateWithin(ctx, over, limit)
	var le *auth.TokenLimitError
	if !errors.Is(err, auth.ErrTokenLimit) || !errors.As(err, &le) || le.ProjectID != project || le.Live != limit || le.Limit != limit {
		t.Fatalf("CreateWithin at the limit: %v (%+v), want an *auth.TokenLimitError of project %d, %d live, limit %d", err, le, project, limit, limit)
	}
	if _, err := s.Get(ctx, over.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("a refused CreateWithin stored the token: Get = %v", err)
	}
	// A taken id is refused as such and takes no place.
	if err := s.CreateWithin(ctx, made[0], limit+1); !errors.Is(err, auth.ErrExists) {
		t.Errorf("CreateWithin of a taken id: %v, want ErrExists", err)
	}
	if n := countProject(t, s, project); n != limit {
		t.Errorf("after refusals the project counts %d, want %d", n, limit)
	}
	// Other projects, and no limit, are not bounded.
	other, _ := NewToken(t, project+1, auth.RoleOwner)
	if err := s.CreateWithin(ctx, other, limit); err != nil {
		t.Errorf("another project: %v", err)
	}
	unbounded, _ := NewToken(t, project, auth.RoleOwner)
	if err := s.CreateWithin(ctx, unbounded, 0); err != nil {
		t.Errorf("CreateWithin with limit 0: %v", err)
	}
	// Revoking makes room.
	for _, tok := range append(made, unbounded) {
		if _, err := s.Revoke(ctx, tok.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateWithin(ctx, over, limit); err != nil {
		t.Errorf("CreateWithin after revokes: %v", err)
	}
	if got := list(t, s, project); len(got) != 1 || got[0].ID != over.ID {
		t.Errorf("List = %d tokens, want only %s", len(got), over.ID)
	}
}

// testCreateWithinConcurrent: creates racing from two replicas, the
// project a few tokens short of its limit, store exactly as many as fit.
func testCreateWithinConcurrent(t *testing.T, a, b auth.ActivityStore) {
	ctx := context.Background()
	const project, limit, each = 83, 5, 12
	first, _ := NewToken(t, project, auth.RoleOwner)
	if err := a.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, refused := 0, 0
	var unexpected []error
	for i := range 2 * each {
		s := a
		if i%2 == 1 {
			s = b
		}
		tok, _ := NewToken(t, project, auth.RoleOwner)
		wg.Go(func() {
			<-start
			err := s.CreateWithin(ctx, tok, limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.Is(err, auth.ErrTokenLimit):
				refused++
			default:
				unexpected = append(unexpected, fmt.Errorf("CreateWithin(%s): %w", tok.ID, err))
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	if stored != limit-1 || refused != 2*each-(limit-1) {
		t.Errorf("%d creates stored and %d refused, want %d stored", stored, refused, limit-1)
	}
	for _, s := range []auth.ActivityStore{a, b} {
		if n := countProject(t, s, project); n != limit {
			t.Errorf("CountProject = %d, want the limit %d", n, limit)
		}
		if got := list(t, s, project); len(got) != limit {
			t.Errorf("List has %d tokens, want the limit %d", len(got), limit)
		}
	}
}

func countProject(t *testing.T, s auth.ActivityStore, project int64) int {
	t.Helper()
	n, err := s.CountProject(context.Background(), project)
	if err != nil {
		t.Fatalf("CountProject(%d): %v", project, err)
	}
	return n
}
