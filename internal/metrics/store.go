package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// StoreWrites counts the token API's store calls (tokenapi.ObservedStore).
type StoreWrites struct {
	byOp map[string]*[2]prometheus.Counter // ok, error
}

var _ tokenapi.WriteObserver = (*StoreWrites)(nil)

// storeWriteOps are the op labels of tswgate_store_writes_total.
var storeWriteOps = []string{"create", "update", "revoke", "list"}

// NewStoreWrites registers tswgate_store_writes_total with reg.
func NewStoreWrites(reg prometheus.Registerer) (*StoreWrites, error) {
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_store_writes_total",
		Help: "Token store calls of the token API, by operation (create, update, revoke, list) and result (ok, error: the store failed).",
	}, []string{"op", "result"})
	w := &StoreWrites{byOp: make(map[string]*[2]prometheus.Counter, len(storeWriteOps))}
	for _, op := range storeWriteOps {
		w.byOp[op] = &[2]prometheus.Counter{writes.WithLabelValues(op, "ok"), writes.WithLabelValues(op, "error")}
	}
	if err := register(reg, writes); err != nil {
		return nil, err
	}
	return w, nil
}

// StoreWrite records a token API store call: op is create, update, revoke
// or list; failed says whether the store failed (an answer such as "not
// found" or "exists" is a store that worked).
func (w *StoreWrites) StoreWrite(op string, failed bool) {
	if w == nil {
		return
	}
	if cs := w.byOp[op]; cs != nil {
		if failed {
			cs[1].Inc()
		} else {
			cs[0].Inc()
		}
	}
}
