package main

import (
	"context"
	"fmt"
	"time"
)

// measured runs load against t like load does and adds t's server CPU
// time per response, from /proc/PID/stat before and after.
func (b *bench) measured(ctx context.Context, t target, d time.Duration, header string, rate float64) (loadResult, error) {
	before, err := cpuTime(t.child.Pid())
	if err != nil {
		return loadResult{}, fmt.Errorf("CPU time of %s: %w", t.name, err)
	}
	res, err := b.load(ctx, t, d, header, rate)
	if err != nil {
		return res, err
	}
	after, err := cpuTime(t.child.Pid())
	if err != nil {
		return res, fmt.Errorf("CPU time of %s: %w", t.name, err)
	}
	if res.Requests > 0 {
		res.CPUPerReq = float64(after-before) / float64(time.Microsecond) / float64(res.Requests)
	}
	return res, nil
}

// measureRef runs the phases -ref adds after the valid-token rounds
// (whose results it is given): the invalid-token flood, then the p99 at
// half capacity.
func (b *bench) measureRef(ctx context.Context, st *stand, results [][]loadResult) (flood, half []summary, err error) {
	if flood, err = b.measureFlood(ctx, st); err != nil {
		return nil, nil, err
	}
	if half, err = b.measureHalf(ctx, st, results); err != nil {
		return nil, nil, err
	}
	return flood, half, nil
}

// measureFlood loads the token-checking targets with a well-formed
// credential none of them knows, interleaved like measure, and returns
// their summaries. Every response is expected to be a refusal.
func (b *bench) measureFlood(ctx context.Context, st *stand) ([]summary, error) {
	var targets []target
	for _, t := range st.targets {
		if t.auth {
			targets = append(targets, t)
		}
	}
	if st.floor != nil {
		targets = append(targets, *st.floor)
	}
	b.logf("invalid-token flood")
	results, err := b.measure(ctx, st, targets, st.badHeader)
	if err != nil {
		return nil, fmt.Errorf("invalid-token flood: %w", err)
	}
	out := make([]summary, len(targets))
	for i, t := range targets {
		out[i] = summarize(t.name, results[i])
		out[i].Refusals = true
	}
	return out, nil
}

// measureHalf runs every proxy (all targets but the direct upstream)
// paced at half its measured capacity, each followed by the direct
// upstream at the same rate, and returns one summary per proxy whose
// BaseP99 is the upstream's p99: the difference is what the proxy adds.
func (b *bench) measureHalf(ctx context.Context, st *stand, results [][]loadResult) ([]summary, error) {
	var out []summary
	direct := st.targets[0]
	for i := 1; i < len(st.targets); i++ {
		t := st.targets[i]
		rate := summarize(t.name, results[i]).RPS / 2
		if rate < 1 {
			return nil, fmt.Errorf("%s: no capacity measured to pace at half of", t.name)
		}
		b.logf("p99 at half capacity: %s and the direct upstream at %s req/s for %v each", t.name, formatRPS(rate), b.opts.Duration)
		res, err := b.measured(ctx, t, b.opts.Duration, st.header, rate)
		if err != nil {
			return nil, fmt.Errorf("%s at %.0f req/s: %w", t.name, rate, err)
		}
		base, err := b.load(ctx, direct, b.opts.Duration, st.header, rate)
		if err != nil {
			return nil, fmt.Errorf("direct upstream at %.0f req/s: %w", rate, err)
		}
		s := summarize(t.name, []loadResult{res})
		s.BaseP99 = base.P99
		s.Errors += base.Errors
		s.Non2xx += base.Non2xx
		if s.FirstError == "" {
			s.FirstError = base.FirstError
		}
		out = append(out, s)
	}
	return out, nil
}
