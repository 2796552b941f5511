package tokenapi

import (
	"context"
	"errors"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// WriteObserver hears of each store call the API makes to change or list
// tokens, for metrics. op is create (Create and CreateWithin), update,
// revoke or list (List and ListPage); failed is set when the store failed
// (an answer such as "not found", "exists", "revoked", the project's token
// limit, or a change refused by the API's own edit, is a store that
// worked).
type WriteObserver interface {
	StoreWrite(op string, failed bool)
}

// ObservedStore returns s with each Create, CreateWithin, Update, Revoke
// and List reported to o. Get is not reported: the gateway's cache
// observer counts reads.
func ObservedStore(s auth.ActivityStore, o WriteObserver) auth.ActivityStore {
	if o == nil {
		return s
	}
	return &observedStore{ActivityStore: s, o: o}
}

type observedStore struct {
	auth.ActivityStore
	o WriteObserver
}

// failed reports whether err is the store's failure rather than an answer.
func failed(err error) bool {
	return err != nil && !errors.Is(err, auth.ErrNotFound) && !errors.Is(err, auth.ErrExists) && !errors.Is(err, auth.ErrRevoked) &&
		!errors.Is(err, auth.ErrTokenLimit)
}

func (s *observedStore) Create(ctx context.Context, t *auth.Token) error {
	err := s.ActivityStore.Create(ctx, t)
	s.o.StoreWrite("create", failed(err))
	return err
}

func (s *observedStore) CreateWithin(ctx context.Context, t *auth.Token, limit int) error {
	err := s.ActivityStore.CreateWithin(ctx, t, limit)
	s.o.StoreWrite("create", failed(err))
	return err
}

func (s *observedStore) List(ctx context.Context, projectID int64) ([]*auth.Token, error) {
	toks, err := s.ActivityStore.List(ctx, projectID)
	s.o.StoreWrite("list", failed(err))
	return toks, err
}

func (s *observedStore) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	tok, err := s.ActivityStore.Revoke(ctx, id, at)
	s.o.StoreWrite("revoke", failed(err))
	return tok, err
}

func (s *observedStore) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	var fnErr error
	tok, err := s.ActivityStore.Update(ctx, id, func(t *auth.Token) error {
		fnErr = fn(t)
		return fnErr
	})
	s.o.StoreWrite("update", failed(err) && (fnErr == nil || !errors.Is(err, fnErr)))
	return tok, err
}

func (s *observedStore) ListPage(ctx context.Context, q auth.ListQuery) (auth.ListPage, error) {
	page, err := s.ActivityStore.ListPage(ctx, q)
	s.o.StoreWrite("list", failed(err))
	return page, err
}
