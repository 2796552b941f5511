package usage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// memSink keeps what it is given; fail makes AddUsage fail.
type memSink struct {
	mu    sync.Mutex
	fail  error
	calls int
	recs  []auth.UsageRecord
}

func (s *memSink) AddUsage(_ context.Context, recs []auth.UsageRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return s.fail
	}
	s.recs = append(s.recs, recs...)
	return nil
}

// totals sums the sink's records by token and code, and the latest use.
func (s *memSink) totals() (map[string]map[auth.Code]int64, map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]map[auth.Code]int64{}
	last := map[string]time.Time{}
	for _, r := range s.recs {
		if counts[r.TokenID] == nil {
			counts[r.TokenID] = map[auth.Code]int64{}
		}
		for c, n := range r.Counts {
			counts[r.TokenID][c] += n
		}
		if r.LastUsed.After(last[r.TokenID]) {
			last[r.TokenID] = r.LastUsed
		}
	}
	return counts, last
}

func newRecorder(t testing.TB, s Sink) *Recorder {
	t.Helper()
	r, err := New(Options{Sink: s})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUsageRecordFlush(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink)
	base := time.Date(2026, 11, 27, 10, 0, 30, 0, time.UTC)
	r.Record("tsw_a", auth.OK, base)
	r.Record("tsw_a", auth.OK, base.Add(10*time.Second))
	r.Record("tsw_a", auth.CodeRateLimited, base.Add(40*time.Second)) // the next minute
	r.Record("tsw_a", auth.CodeInvalidToken, base.Add(5*time.Second))
	r.Record("tsw_b", auth.CodeProjectMismatch, base)
	r.Record("", auth.OK, base) // no token: not counted
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 3 {
		t.Fatalf("flushed %d records, want 3 (a's two minutes, b's one): %+v", len(sink.recs), sink.recs)
	}
	for _, rec := range sink.recs {
		if rec.Minute.Second() != 0 || rec.Minute.Location() != time.UTC {
			t.Errorf("record minute %v is not the start of a UTC minute", rec.Minute)
		}
	}
	counts, last := sink.totals()
	want := map[string]map[auth.Code]int64{
		"tsw_a": {auth.OK: 2, auth.CodeRateLimited: 1, auth.CodeInvalidToken: 1},
		"tsw_b": {auth.CodeProjectMismatch: 1},
	}
	for id, w := range want {
		for c, n := range w {
			if counts[id][c] != n {
				t.Errorf("%s %s = %d, want %d", id, c, counts[id][c], n)
			}
		}
		if len(counts[id]) != len(w) {
			t.Errorf("%s counts = %v, want %v", id, counts[id], w)
		}
	}
	if !last["tsw_a"].Equal(base.Add(40 * time.Second)) {
		t.Errorf("last used of a = %v, want %v", last["tsw_a"], base.Add(40*time.Second))
	}

	// A second flush with nothing new writes nothing.
	calls := sink.calls
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.calls != calls {
		t.Errorf("an empty flush called the sink")
	}
}

func TestUsageFailedFlushKeepsCounts(t *testing.T) {
	sink := &memSink{fail: errors.New("store down")}
	r := newRecorder(t, sink)
	now := time.Now()
	r.Record("tsw_a", auth.OK, now)
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded with a failing sink")
	}
	r.Record("tsw_a", auth.OK, now)
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts, _ := sink.totals()
	if counts["tsw_a"][auth.OK] != 2 {
		t.Errorf("after a failed and a good flush: %v, want 2 allowed", counts["tsw_a"])
	}
}

func TestUsageConcurrent(t *testing.T) {
	sink := &memSink{}
	r := newRecorder(t, sink)
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	now := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r.Record([]string{"tsw_a", "tsw_b", "tsw_c"}[(g+i)%3], auth.OK, now)
				if i%100 == 0 {
					_ = r.Flush(context.Background())
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts, _ := sink.totals()
	var total int64
	for _, m := range counts {
		total += m[auth.OK]
	}
	if total != goroutines*each {
		t.Fatalf("counted %d requests, want %d", total, goroutines*each)
	}
}

func TestUsageRunFlushesOnStop(t *testing.T) {
	sink := &memSink{}
	r, err := New(Options{Sink: sink, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Record("tsw_a", auth.OK, time.Now())
	cancel()
	<-done
	if counts, _ := sink.totals(); counts["tsw_a"][auth.OK] != 1 {
		t.Fatalf("Run did not flush on stop: %v", counts)
	}
}

// BenchmarkRecord is the request path's cost: one token, the same minute.
func BenchmarkRecord(b *testing.B) {
	r := newRecorder(b, &memSink{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r.Record("tsw_0123456789abcdefghij", auth.OK, now)
	}
}

// BenchmarkRecordParallel spreads 64 tokens over every core.
func BenchmarkRecordParallel(b *testing.B) {
	r := newRecorder(b, &memSink{})
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = "tsw_" + string(rune('A'+i%26)) + "123456789abcdefghij"[:19] + string(rune('a'+i/26))
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Record(ids[i%len(ids)], auth.OK, now)
			i++
		}
	})
}

// BenchmarkRecordAfterFlush checks that buckets are reused across flushes.
func BenchmarkRecordAfterFlush(b *testing.B) {
	r := newRecorder(b, &memSink{})
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Record("tsw_0123456789abcdefghij", auth.OK, now)
		if i++; i%1000 == 0 {
			r.take()
		}
	}
}

// TestFlushBatches: every flush numbers its new records with one batch of
// this recorder; a failed flush's records keep theirs when sent again, and
// come first (so a store can apply each batch once, in order).
func TestFlushBatches(t *testing.T) {
	sink := &memSink{fail: errors.New("store down")}
	r, err := New(Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	r.Record("tsw_batch000000000000001", auth.OK, now)
	if err := r.Flush(ctx); err == nil {
		t.Fatal("Flush into a failing sink succeeded")
	}
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	r.Record("tsw_batch000000000000001", auth.OK, now)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.recs) != 2 {
		t.Fatalf("%d records, want the kept one and the new one", len(sink.recs))
	}
	kept, fresh := sink.recs[0], sink.recs[1]
	if kept.Recorder == "" || kept.Recorder != fresh.Recorder || kept.Batch != 1 || fresh.Batch != 2 {
		t.Fatalf("batches: kept %q/%d, new %q/%d; want one recorder, batches 1 then 2", kept.Recorder, kept.Batch, fresh.Recorder, fresh.Batch)
	}
}
