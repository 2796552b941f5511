package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/internal/devtool"
)

// scaleResult is the scale mode's measurement: a Zipf mix of many tokens
// through replicas whose caches hold only some of them.
type scaleResult struct {
	Requests   int
	ByStatus   map[int]int
	Errors     int
	P50, P99   time.Duration
	RPS        float64
	HitRate    float64 // cache hits / lookups, over every replica
	StoreReads float64 // HGETALL per second on Redis (record lookups)
	RedisCmds  float64 // every Redis command per second
	ReplicaRSS []int64 // kB
}

// cacheSeries are the cache lookup counters the hit rate is made of.
var cacheSeries = []string{"hit", "negative_hit", "miss", "stale"}

// runScale starts the replicas and drives the Zipf load through them.
func runScale(ctx context.Context, bed *devtool.Bed, rdb *redis.Client, o options, creds []credential, logf func(string, ...any)) (*scaleResult, error) {
	var gws []*devtool.Gateway
	defer func() {
		for _, g := range gws {
			bed.Procs.Kill(g.Proc)
		}
	}()
	env := bed.Env("TSWGATE_CACHE_MAX_ENTRIES=" + strconv.Itoa(o.Cache))
	for i := range o.Replicas {
		g, err := bed.StartReplica(ctx, i+1, env)
		if err != nil {
			return nil, err
		}
		gws = append(gws, g)
	}
	logf("scale: %d replicas ready (cache %d entries); warming for %v", o.Replicas, o.Cache, o.Settle)
	if _, err := drive(ctx, gws, o, creds, o.Settle); err != nil {
		return nil, err
	}
	total0, calls0, err := commandCounts(ctx, rdb)
	if err != nil {
		return nil, err
	}
	look0, err := cacheLookups(ctx, gws)
	if err != nil {
		return nil, err
	}
	logf("scale: measuring for %v", o.Window)
	res, err := drive(ctx, gws, o, creds, o.Window)
	if err != nil {
		return nil, err
	}
	total1, calls1, err := commandCounts(ctx, rdb)
	if err != nil {
		return nil, err
	}
	look1, err := cacheLookups(ctx, gws)
	if err != nil {
		return nil, err
	}
	secs := o.Window.Seconds()
	res.StoreReads = float64(calls1["hgetall"]-calls0["hgetall"]) / secs
	res.RedisCmds = float64(total1-total0) / secs
	if lookups := look1["all"] - look0["all"]; lookups > 0 {
		res.HitRate = (look1["hit"] - look0["hit"]) / lookups
	}
	if err := checkAlive(gws); err != nil {
		return nil, err
	}
	for _, g := range gws {
		res.ReplicaRSS = append(res.ReplicaRSS, rssKB(g.Proc.Pid()))
	}
	return res, nil
}

// cacheLookups sums the replicas' cache lookups by result, and in "all".
func cacheLookups(ctx context.Context, gws []*devtool.Gateway) (map[string]float64, error) {
	out := map[string]float64{}
	for _, g := range gws {
		text, err := devtool.FetchMetrics(ctx, "http://"+g.Metrics+"/metrics")
		if err != nil {
			return nil, err
		}
		for _, r := range cacheSeries {
			v, _ := devtool.PromValue(text, `tswgate_cache_lookups_total{result="`+r+`"}`)
			out[r] += v
			out["all"] += v
		}
	}
	return out, nil
}

// drive runs o.Conns closed-loop workers for d, each picking tokens by a
// Zipf law over creds (rank 0 the most used) and replicas in turn.
func drive(ctx context.Context, gws []*devtool.Gateway, o options, creds []credential, d time.Duration) (*scaleResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := devtool.LoopbackClient(o.Conns)
	defer client.CloseIdleConnections()
	type worker struct {
		lat      []time.Duration
		byStatus map[int]int
		errs     int
	}
	ws := make([]*worker, o.Conns)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{byStatus: map[int]int{}}
		ws[i] = w
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			zipf := rand.NewZipf(rng, o.ZipfS, 1, uint64(len(creds)-1))
			for n := i; ctx.Err() == nil; n++ {
				c := creds[zipf.Uint64()]
				url := "http://" + gws[n%len(gws)].Public + "/v2/Instance?ProjectId=" + strconv.FormatInt(c.project, 10)
				start := time.Now()
				status, _, err := devtool.Call(ctx, client, url, c.cred)
				if ctx.Err() != nil {
					return // cut by the end of the run, not counted
				}
				w.lat = append(w.lat, time.Since(start))
				if err != nil {
					w.errs++
					continue
				}
				w.byStatus[status]++
			}
		})
	}
	wg.Wait()
	res := &scaleResult{ByStatus: map[int]int{}}
	var all []time.Duration
	for _, w := range ws {
		all = append(all, w.lat...)
		res.Errors += w.errs
		for s, n := range w.byStatus {
			res.ByStatus[s] += n
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / d.Seconds()
	if len(all) > 0 {
		res.P50, res.P99 = devtool.Percentile(all, 50), devtool.Percentile(all, 99)
	}
	return res, nil
}

// statusSummary renders the counts of each status, such as "200: 9990, 429: 10".
func statusSummary(by map[int]int) string {
	codes := make([]int, 0, len(by))
	for c := range by {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	s := ""
	for i, c := range codes {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d: %d", c, by[c])
	}
	if s == "" {
		return "none"
	}
	return s
}
