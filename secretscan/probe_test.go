package secretscan

import (
	"context"
	"sync/atomic"

	"github.com/tswgate/tswgate/auth"
)

// concurrencyProbe is a Lookup that records how many Gets run at once.
type concurrencyProbe struct {
	store    store
	now, max atomic.Int64
}

func (p *concurrencyProbe) Get(ctx context.Context, id string) (*auth.Token, error) {
	n := p.now.Add(1)
	defer p.now.Add(-1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			break
		}
	}
	return p.store.Get(ctx, id)
}
