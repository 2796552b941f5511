package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/devtool"
)

// The request every poller sends, and the project of the tokens.
const (
	lagPath    = "/v2/Instance?ProjectId=42"
	lagProject = 42
)

// confirmCalls is how many more calls a poller makes after the first
// refusal, to check that the refusal sticks (a 200 after it is a flap).
const confirmCalls = 3

// replica is a running `tswgate serve`.
type replica struct {
	N int // 1-based
	*devtool.Gateway
	admin *tokenapi.Client
}

// token is a created token.
type token struct {
	ID, Cred string
}

// sample is the lag of one (token, replica) pair.
type sample struct {
	Token    int           // index of the token, 0-based
	Replica  int           // 1-based
	Revoker  int           // the replica whose admin API revoked the token, 1-based
	Lag      time.Duration // revoke returned → first refusal received (≥ 0)
	FromSent time.Duration // revoke sent → first refusal received
	Polls    int           // calls the poller made for this token
	Flaps    int           // 200 answers after the first refusal
}

// run sets everything up, measures, and returns the report. Every child
// is stopped before it returns.
func run(ctx context.Context, o options, logw io.Writer) (_ *report, err error) {
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "tswlag: "+format+"\n", args...) }
	began := time.Now()
	facts := devtool.MachineFacts() // before the build: its load average is the machine's own
	bed, err := devtool.NewBed(ctx, "tswlag", o.Gateway, logf)
	if err != nil {
		return nil, err
	}
	defer bed.Close()
	replicas := make([]*replica, o.Replicas)
	for i := range replicas {
		g, err := bed.StartReplica(ctx, i+1, bed.Env())
		if err != nil {
			return nil, err
		}
		r := &replica{N: i + 1, Gateway: g, admin: g.AdminClient(bed.AdminKey, devtool.LoopbackClient(4))}
		logf("replica %d: public %s, admin %s, metrics %s", r.N, r.Public, r.Admin, r.Metrics)
		replicas[i] = r
	}

	logf("creating %d tokens through replica 1's admin API", o.N)
	tokens, err := createTokens(ctx, replicas[0].admin, o.N)
	if err != nil {
		return nil, err
	}
	logf("warming every token on every replica (%d calls)", o.N*o.Replicas)
	if err := warm(ctx, replicas, tokens); err != nil {
		return nil, err
	}

	facts.Redis = bed.Redis.Version
	rep := &report{
		Command:  o.commandLine(),
		N:        o.N,
		Replicas: o.Replicas,
		Interval: o.Interval,
		Timeout:  o.Timeout,
		Facts:    facts,
	}
	pollers := make([]*poller, len(replicas))
	for i, r := range replicas {
		pollers[i] = newPoller(r.N, "http://"+r.Public+lagPath, o.Interval)
	}
	logf("revoking %d tokens one at a time through replicas 1..%d in turn", o.N, o.Replicas)
	for k, tok := range tokens {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		revoker := replicas[k%len(replicas)]
		samples, call, fails, err := measureOne(ctx, pollers, revoker, tok, k, o.Timeout)
		if err != nil {
			return nil, fmt.Errorf("token %d (%s): %w", k+1, tok.ID, err)
		}
		rep.Samples = append(rep.Samples, samples...)
		rep.RevokeCalls = append(rep.RevokeCalls, call)
		rep.Failures = append(rep.Failures, fails...)
		if (k+1)%50 == 0 || k+1 == len(tokens) {
			logf("  %d/%d revoked", k+1, len(tokens))
		}
	}
	for _, r := range replicas {
		if gone, why := r.Proc.Exited(); gone {
			return nil, errors.New(why)
		}
		rep.Announced = append(rep.Announced, scrapeAnnounced(ctx, r))
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// createTokens creates n Owner tokens for lagProject through admin, with
// a few calls in flight at a time.
func createTokens(ctx context.Context, admin *tokenapi.Client, n int) ([]token, error) {
	tokens := make([]token, n)
	err := forEach(ctx, n, 4, func(ctx context.Context, i int) error {
		t, err := devtool.CreateToken(ctx, admin, lagProject, "owner", fmt.Sprintf("lag-%d", i+1))
		if err != nil {
			return fmt.Errorf("creating token %d: %w", i+1, err)
		}
		tokens[i] = token{ID: t.ID, Cred: t.Token}
		return nil
	})
	return tokens, err
}

// warm calls every replica once with every token and wants 200 each time,
// which leaves every token in every replica's cache.
func warm(ctx context.Context, replicas []*replica, tokens []token) error {
	clients := make([]*http.Client, len(replicas))
	for i := range clients {
		clients[i] = devtool.LoopbackClient(4)
	}
	return forEach(ctx, len(tokens)*len(replicas), 4, func(ctx context.Context, i int) error {
		r, t := i%len(replicas), tokens[i/len(replicas)]
		status, code, err := devtool.Call(ctx, clients[r], "http://"+replicas[r].Public+lagPath, t.Cred)
		if err != nil {
			return fmt.Errorf("warming %s on replica %d: %w", t.ID, r+1, err)
		}
		if status != http.StatusOK {
			return fmt.Errorf("warming %s on replica %d: answered %d %s, want 200", t.ID, r+1, status, code)
		}
		return nil
	})
}

// forEach runs fn(0..n-1) on workers goroutines and returns the first
// error; the others stop at it.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// poller calls one replica with the token being revoked.
type poller struct {
	replica  int
	url      string
	interval time.Duration
	client   *http.Client
}

func newPoller(replica int, url string, interval time.Duration) *poller {
	return &poller{replica: replica, url: url, interval: interval, client: devtool.LoopbackClient(1)}
}

// pollResult is what one poller saw of one token.
type pollResult struct {
	replica   int
	refusedAt time.Time // when the first 401 token_revoked was received
	polls     int
	flaps     int
	err       error
}

// watch calls the replica with cred until it refuses it as revoked, then
// confirms the refusal sticks. It sends nil on warmed after the first 200
// (the token is cached on the replica and the revoke may go), or an error
// if it cannot get there; and its result on out, always.
func (p *poller) watch(ctx context.Context, cred string, warmed chan<- error, out chan<- pollResult) {
	res := pollResult{replica: p.replica}
	isWarm := false
	defer func() {
		if !isWarm {
			warmed <- fmt.Errorf("replica %d: %w", p.replica, res.err)
		}
		out <- res
	}()
	for {
		status, code, err := devtool.Call(ctx, p.client, p.url, cred)
		at := time.Now()
		res.polls++
		switch {
		case ctx.Err() != nil:
			res.err = fmt.Errorf("no refusal within the time allowed (%d calls, last answer %d %s)", res.polls, status, code)
			return
		case err != nil:
			res.err = err
			return
		case status == http.StatusOK:
			if !isWarm {
				isWarm = true
				warmed <- nil
			}
		case status == http.StatusUnauthorized && code == "token_revoked":
			if !isWarm {
				res.err = errors.New("refused the token before it was revoked")
				return
			}
			res.refusedAt = at
			for range confirmCalls {
				status, code, err := devtool.Call(ctx, p.client, p.url, cred)
				if err != nil {
					res.err = fmt.Errorf("after refusing: %w", err)
					return
				}
				if status == http.StatusOK {
					res.flaps++
				} else if code != "token_revoked" {
					res.err = fmt.Errorf("after refusing as token_revoked: answered %d %s", status, code)
					return
				}
			}
			return
		default:
			res.err = fmt.Errorf("answered %d %s, want 200 or 401 token_revoked", status, code)
			return
		}
		if p.interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.interval):
			}
		}
	}
}

// measureOne revokes one token through revoker while every poller watches
// its replica, and returns one sample per replica that refused it, the
// duration of the revoke call, and a description of each replica that
// did not refuse it properly. err is for failures that stop the run.
func measureOne(ctx context.Context, pollers []*poller, revoker *replica, tok token, k int, timeout time.Duration) ([]sample, time.Duration, []string, error) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	warmed := make(chan error, len(pollers))
	results := make(chan pollResult, len(pollers))
	for _, p := range pollers {
		go p.watch(jctx, tok.Cred, warmed, results)
	}
	collect := func() []pollResult {
		var rs []pollResult
		for range pollers {
			rs = append(rs, <-results)
		}
		return rs
	}
	warmTimeout := time.NewTimer(10 * time.Second)
	defer warmTimeout.Stop()
	for range pollers {
		select {
		case err := <-warmed:
			if err != nil {
				cancel()
				collect()
				return nil, 0, nil, fmt.Errorf("before the revoke: %w", err)
			}
		case <-warmTimeout.C:
			cancel()
			collect()
			return nil, 0, nil, errors.New("a replica did not answer 200 within 10s before the revoke")
		}
	}

	sent := time.Now()
	_, err := revoker.admin.Revoke(ctx, tok.ID)
	returned := time.Now()
	if err != nil {
		cancel()
		collect()
		return nil, 0, nil, fmt.Errorf("revoke through replica %d: %w", revoker.N, err)
	}
	stop := time.AfterFunc(timeout, cancel)
	defer stop.Stop()
	var samples []sample
	var fails []string
	for _, r := range collect() {
		if r.err != nil || r.refusedAt.IsZero() {
			fails = append(fails, fmt.Sprintf("token %d (%s), replica %d: %v", k+1, tok.ID, r.replica, r.err))
			continue
		}
		if r.flaps > 0 {
			fails = append(fails, fmt.Sprintf("token %d (%s), replica %d: answered 200 %d time(s) after refusing it", k+1, tok.ID, r.replica, r.flaps))
		}
		samples = append(samples, sample{
			Token:    k,
			Replica:  r.replica,
			Revoker:  revoker.N,
			Lag:      max(0, r.refusedAt.Sub(returned)),
			FromSent: r.refusedAt.Sub(sent),
			Polls:    r.polls,
			Flaps:    r.flaps,
		})
	}
	return samples, returned.Sub(sent), fails, nil
}

// announced is what a replica's metrics say of the change announcements
// it applied (creations and revocations).
type announced struct {
	Replica int
	Count   float64
	Sum     float64 // seconds
	// Buckets maps each upper bound (seconds) to its cumulative count.
	Buckets map[float64]float64
	Err     string
}

// scrapeAnnounced reads tswgate_invalidation_lag_seconds from r's metrics.
func scrapeAnnounced(ctx context.Context, r *replica) announced {
	a := announced{Replica: r.N, Buckets: map[float64]float64{}}
	text, err := devtool.FetchMetrics(ctx, "http://"+r.Metrics+"/metrics")
	if err != nil {
		a.Err = err.Error()
		return a
	}
	const name = "tswgate_invalidation_lag_seconds"
	for _, s := range devtool.ParseMetrics(text) {
		switch s.Name {
		case name + "_count":
			a.Count = s.Value
		case name + "_sum":
			a.Sum = s.Value
		case name + "_bucket":
			if le, err := strconv.ParseFloat(s.Labels["le"], 64); err == nil {
				a.Buckets[le] = s.Value
			}
		}
	}
	return a
}
