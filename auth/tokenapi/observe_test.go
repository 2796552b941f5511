package tokenapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

type writeLog []string

func (w *writeLog) StoreWrite(op string, failed bool) {
	*w = append(*w, fmt.Sprintf("%s:%v", op, failed))
}

// fakeStore answers the calls ObservedStore observes with err; the others
// are not called.
type fakeStore struct {
	auth.ActivityStore
	err error
}

func (f fakeStore) Get(context.Context, string) (*auth.Token, error) { return nil, f.err }
func (f fakeStore) Create(context.Context, *auth.Token) error        { return f.err }
func (f fakeStore) List(context.Context, int64) ([]*auth.Token, error) {
	return nil, f.err
}
func (f fakeStore) Revoke(context.Context, string, time.Time) (*auth.Token, error) { return nil, f.err }
func (f fakeStore) Update(_ context.Context, _ string, fn func(*auth.Token) error) (*auth.Token, error) {
	if err := fn(&auth.Token{}); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	return nil, f.err
}
func (f fakeStore) ListPage(context.Context, auth.ListQuery) (auth.ListPage, error) {
	return auth.ListPage{}, f.err
}

func TestObservedStore(t *testing.T) {
	ctx := context.Background()
	var log writeLog
	noop := func(*auth.Token) error { return nil }
	for _, err := range []error{nil, fmt.Errorf("x: %w", auth.ErrNotFound), fmt.Errorf("x: %w", auth.ErrUnavailable)} {
		s := ObservedStore(fakeStore{err: err}, &log)
		s.Create(ctx, &auth.Token{})
		s.List(ctx, 1)
		s.ListPage(ctx, auth.ListQuery{})
		s.Revoke(ctx, "id", time.Now())
		s.Update(ctx, "id", noop)
		s.Get(ctx, "id")
	}
	ObservedStore(fakeStore{}, &log).Update(ctx, "id", func(*auth.Token) error { return errors.New("refused edit") })
	want := []string{
		"create:false", "list:false", "list:false", "revoke:false", "update:false",
		"create:false", "list:false", "list:false", "revoke:false", "update:false",
		"create:true", "list:true", "list:true", "revoke:true", "update:true",
		"update:false",
	}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", log, want)
	}
}
