package devtool

import (
	"testing"
)

const metricsText = `# HELP tswgate_invalidation_lag_seconds Time from a token change being published to this replica dropping its cached copy.
# TYPE tswgate_invalidation_lag_seconds histogram
tswgate_invalidation_lag_seconds_bucket{le="0.0005"} 7
tswgate_invalidation_lag_seconds_bucket{le="+Inf"} 10
tswgate_invalidation_lag_seconds_sum 0.0123
tswgate_invalidation_lag_seconds_count 10
go_goroutines 23
go_memstats_heap_alloc_bytes 5.791e+06
tswgate_requests_total{permission="compute.read",role="owner",status="200"} 1234
weird{a="x,y",b="q\"z"} 1.5e3
odd{a="x,y}",b="q\"z"} 7 1700000000000
tswgate_cache_lookups_total{result="hit"} 1.234567e+06
tswgate_cache_lookups_total{result="hit_other"} 9
tswgate_cache_lookups_total{result="miss"} 2
not a sample
`

func TestParseMetrics(t *testing.T) {
	samples := ParseMetrics(metricsText)
	if len(samples) != 12 {
		t.Fatalf("%d samples, want 12: %+v", len(samples), samples)
	}
	got := map[string]float64{}
	for _, s := range samples {
		got[s.Name+"|"+s.Labels["le"]+s.Labels["a"]+s.Labels["b"]] = s.Value
	}
	for k, want := range map[string]float64{
		"tswgate_invalidation_lag_seconds_bucket|0.0005": 7,
		"tswgate_invalidation_lag_seconds_bucket|+Inf":   10,
		"tswgate_invalidation_lag_seconds_count|":        10,
		"weird|x,yq\"z":  1500,
		"go_goroutines|": 23,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
	s := samples[6]
	if s.Name != "tswgate_requests_total" || s.Labels["role"] != "owner" || s.Labels["status"] != "200" || s.Value != 1234 {
		t.Errorf("labelled sample: %+v", s)
	}
	s = samples[8]
	if s.Name != "odd" || s.Labels["a"] != "x,y}" || s.Labels["b"] != `q"z` || s.Value != 7 {
		t.Errorf("quoted labels and a timestamp: %+v", s)
	}
}

func TestPromValue(t *testing.T) {
	if v, ok := PromValue(metricsText, `tswgate_cache_lookups_total{result="hit"}`); !ok || v != 1234567 {
		t.Errorf("hit = %v, %v", v, ok)
	}
	if v, ok := PromValue(metricsText, `tswgate_cache_lookups_total{result="miss"}`); !ok || v != 2 {
		t.Errorf("miss = %v, %v", v, ok)
	}
	if _, ok := PromValue(metricsText, `tswgate_cache_lookups_total{result="stale"}`); ok {
		t.Error("absent series found")
	}
}
