package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets over nanoseconds, 1<<histSubBits
// buckets per power of two, so any recorded value is reported within
// 1/64 (1.6%) of its true value. Values from 2^histMaxExp ns (about 18
// minutes) up land in the last bucket.
const (
	histSubBits  = 6
	histSub      = 1 << histSubBits
	histMaxExp   = 40
	histNBuckets = (histMaxExp - histSubBits + 1) * histSub
)

// histogram counts latencies in fixed buckets; recording never allocates.
type histogram struct {
	counts [histNBuckets]uint64
	n      uint64
}

// bucketOf returns the bucket index for a latency of ns nanoseconds.
func bucketOf(ns int64) int {
	if ns < histSub {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	v := uint64(ns)
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1))
	if e >= histMaxExp {
		return histNBuckets - 1
	}
	shift := e - histSubBits
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// bucketBounds returns the range [lo, hi) of latencies in bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	shift := i/histSub - 1
	m := int64(i % histSub)
	return (histSub + m) << shift, (histSub + m + 1) << shift
}

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the recorded
// latencies lie (the midpoint of the bucket holding that rank), or 0 when
// nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	return 0 // not reached
}

// loadResult is what one load run measured. The "load" subcommand prints
// it as JSON; wrk's output is parsed into it too.
type loadResult struct {
	Requests int64         `json:"requests"` // responses received
	Seconds  float64       `json:"seconds"`  // wall time of the run
	RPS      float64       `json:"rps"`      // Requests / Seconds
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Non2xx   int64         `json:"non_2xx"` // responses whose status is not 2xx
	Errors   int64         `json:"errors"`  // connect, read, write and timeout errors
	// FirstError describes one error or non-2xx response, for the report.
	FirstError string `json:"first_error,omitempty"`
	// CPUPerReq is the target server's CPU time (user + system) per
	// response in microseconds; tswbench fills it in, not the generator.
	CPUPerReq float64 `json:"-"`
}

// loadOptions configure runLoad.
type loadOptions struct {
	URL      string
	Conns    int
	Duration time.Duration
	Header   string // "Name: value", or empty
	Timeout  time.Duration
	// Rate, when positive, paces the run at that many requests per second
	// in all (open loop): request i is due at start + i/Rate, and its
	// latency counts from when it was due, so a stall is not hidden by the
	// requests it held back.
	Rate float64
}

// runLoadCommand is the hidden subcommand
// "load -url URL -c N -d DUR [-H 'Name: value']": the built-in closed-loop
// load generator. It prints a loadResult as JSON on stdout.
func runLoadCommand(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var o loadOptions
	fs.StringVar(&o.URL, "url", "", "loopback http:// `URL` to request")
	fs.IntVar(&o.Conns, "c", 64, "`connections`, one closed-loop worker each")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "`duration` of the run")
	fs.StringVar(&o.Header, "H", "", "request `header` \"Name: value\"")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Second, "per-request `timeout`, as wrk's default")
	fs.Float64Var(&o.Rate, "rate", 0, "pace at `rate` requests per second in all (0: as fast as the workers go)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := runLoad(context.Background(), o)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// runLoad runs o.Conns closed-loop workers against o.URL for o.Duration.
// Each worker sends one GET at a time on its own keep-alive connection,
// reads and discards the body, checks the status and records the latency.
func runLoad(ctx context.Context, o loadOptions) (loadResult, error) {
	if _, err := loopbackURL(o.URL); err != nil {
		return loadResult{}, fmt.Errorf("-url: %w", err)
	}
	if o.Conns < 1 || o.Duration <= 0 || o.Timeout <= 0 {
		return loadResult{}, errors.New("-c, -d and -timeout must be positive")
	}
	var hname, hvalue string
	if o.Header != "" {
		name, value, ok := strings.Cut(o.Header, ":")
		if !ok {
			return loadResult{}, fmt.Errorf("-H %q: want \"Name: value\"", o.Header)
		}
		hname, hvalue = strings.TrimSpace(name), strings.TrimSpace(value)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     o.Conns,
		MaxIdleConns:        o.Conns,
		MaxIdleConnsPerHost: o.Conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// The per-request timeout; a context per request would allocate.
		ResponseHeaderTimeout: o.Timeout,
	}
	defer tr.CloseIdleConnections()

	// Hard bound: no request outlives the run by more than one timeout. The
	// one request per worker is reused: RoundTrip does not modify it.
	ctx, cancel := context.WithTimeout(ctx, o.Duration+o.Timeout+time.Second)
	defer cancel()

	workers := make([]loadWorker, o.Conns)
	start := time.Now()
	end := start.Add(o.Duration)
	var pace *pacer
	if o.Rate > 0 {
		pace = &pacer{start: start, interval: time.Duration(float64(time.Second) / o.Rate)}
	}
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
		if err != nil {
			return loadResult{}, err
		}
		if hname != "" {
			req.Header.Set(hname, hvalue)
		}
		wg.Go(func() { w.run(ctx, tr, req, end, pace) })
	}
	wg.Wait()
	return mergeWorkers(workers, time.Since(start)), nil
}

// loadWorker is what one worker of runLoad counted.
type loadWorker struct {
	h        histogram
	non2xx   int64
	errs     int64
	firstErr string
}

// pacer hands out the due times of a paced run's requests.
type pacer struct {
	start    time.Time
	interval time.Duration
	next     atomic.Int64
}

// due returns when the next request is due.
func (p *pacer) due() time.Time {
	return p.start.Add(time.Duration(p.next.Add(1)-1) * p.interval)
}

// run sends req, one at a time, until end; with a pacer, each when due.
func (w *loadWorker) run(ctx context.Context, tr http.RoundTripper, req *http.Request, end time.Time, pace *pacer) {
	for {
		t0 := time.Now()
		if pace != nil {
			t0 = pace.due()
			if d := time.Until(t0); d > 0 && t0.Before(end) {
				time.Sleep(d) // a load generator's pacing, not a wait for a signal
			}
		}
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			w.errs++
			if w.firstErr == "" {
				w.firstErr = err.Error()
			}
			time.Sleep(time.Millisecond) // no hot loop against a dead server
			continue
		}
		w.h.record(time.Since(t0))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			w.non2xx++
			if w.firstErr == "" {
				w.firstErr = "status " + resp.Status
			}
		}
	}
}

// mergeWorkers adds up the workers' counts over a run of elapsed.
func mergeWorkers(workers []loadWorker, elapsed time.Duration) loadResult {
	var h histogram
	var res loadResult
	for i := range workers {
		w := &workers[i]
		h.merge(&w.h)
		res.Non2xx += w.non2xx
		res.Errors += w.errs
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	res.Requests = int64(h.n)
	res.Seconds = elapsed.Seconds()
	res.RPS = float64(h.n) / elapsed.Seconds()
	res.P50 = h.quantile(0.50)
	res.P99 = h.quantile(0.99)
	return res
}
