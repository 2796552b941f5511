package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/devtool"
)

// The request the load sends, the project of the token, and the request
// that warms the token: another project's id, refused as project_mismatch
// after the token is read but before the rate limiter.
const (
	ratePath    = "/v2/Instance?ProjectId=42"
	rateProject = 42
	warmPath    = "/v2/Instance?ProjectId=43"
)

// workers is how many requests a replica's pacer may have in flight.
const workers = 16

// maxOtherSeen is how many distinct unexpected answers a replica keeps.
const maxOtherSeen = 5

// replicaLoad is what one replica answered to its share of the load.
type replicaLoad struct {
	Replica  int // 1-based
	Sent     int
	Admitted int // 200
	Limited  int // 429 rate_limited
	Other    int // anything else, errors included
	// OtherSeen describes the first distinct unexpected answers.
	OtherSeen []string
	// AdmittedLatency and LimitedLatency are the round trips of the 200
	// and 429 answers, as the client saw them.
	AdmittedLatency, LimitedLatency []time.Duration
	// First and Last are when the first and last requests were sent;
	// MaxLate is the longest a request was sent after its time.
	First, Last time.Time
	MaxLate     time.Duration
}

// counters are a replica's rate-limit counters, from its metrics.
type counters struct {
	BudgetOK, BudgetError float64 // tswgate_ratelimit_budget_calls_total
	Allowed, Limited      float64 // tswgate_ratelimit_decisions_total
	// Fallback counts the decisions taken without the shared budget
	// (fallback_allowed, fallback_limited, unavailable).
	Fallback float64
	Err      string // why the metrics could not be read
}

// run sets everything up, measures, and returns the report. Every child
// is stopped before it returns.
func run(ctx context.Context, o options, logw io.Writer) (_ *report, err error) {
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "tswrate: "+format+"\n", args...) }
	began := time.Now()
	facts := devtool.MachineFacts() // before the build: its load average is the machine's own
	bed, err := devtool.NewBed(ctx, "tswrate", o.Gateway, logf)
	if err != nil {
		return nil, err
	}
	defer bed.Close()
	srv, adminKey := bed.Redis, bed.AdminKey
	replicas, err := startReplicas(ctx, bed, o, logf)
	if err != nil {
		return nil, err
	}

	logf("creating an Owner token limited to %g/s, burst %d, through replica 1's admin API", o.Rate, o.Burst)
	cred, err := limitedToken(ctx, replicas[0].AdminClient(adminKey, devtool.LoopbackClient(1)), o.Rate, o.Burst, o.Project)
	if err != nil {
		return nil, err
	}
	if err := warm(ctx, replicas, cred); err != nil {
		return nil, err
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 1, DisableIdentity: true})
	defer rdb.Close()
	redis0, err := commandStats(ctx, rdb)
	if err != nil {
		return nil, err
	}
	redisFrom := time.Now()
	before := scrapeAll(ctx, replicas)
	if err := checkUntouched(before); err != nil {
		return nil, err
	}

	every := time.Duration(float64(time.Second) * float64(o.Replicas) / (o.Load * o.Rate))
	logf("offering %g requests/s (%g × %g/s) for %v: one request every %v to each of %d replicas",
		o.Load*o.Rate, o.Load, o.Rate, o.Duration, every, o.Replicas)
	urls := make([]string, len(replicas))
	for i, g := range replicas {
		urls[i] = "http://" + g.Public + ratePath
	}
	loads := drive(ctx, urls, cred, every, o.Duration)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	after := scrapeAll(ctx, replicas)
	redis1, err := commandStats(ctx, rdb)
	if err != nil {
		return nil, err
	}
	redisWindow := time.Since(redisFrom)
	for _, g := range replicas {
		if gone, why := g.Proc.Exited(); gone {
			return nil, errors.New(why)
		}
	}
	facts.Redis = srv.Version
	rep := &report{
		Command:     o.commandLine(),
		Opts:        o,
		Loads:       loads,
		Redis:       commandDelta(redis0, redis1),
		RedisWindow: redisWindow,
		Facts:       facts,
	}
	for i := range replicas {
		rep.Counters = append(rep.Counters, after[i].minus(before[i]))
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// startReplicas starts o.Replicas gateways on the bed's Redis, with the
// cluster scope and o's lease time.
func startReplicas(ctx context.Context, bed *devtool.Bed, o options, logf func(string, ...any)) ([]*devtool.Gateway, error) {
	env := bed.Env("TSWGATE_ACCESS_LOG=false")
	if o.Lease > 0 {
		env = append(env, "TSWGATE_RATELIMIT_LEASE="+o.Lease.String())
	}
	replicas := make([]*devtool.Gateway, o.Replicas)
	for i := range replicas {
		var err error
		replicas[i], err = bed.StartReplica(ctx, i+1, env)
		if err != nil {
			return nil, err
		}
		logf("replica %d: public %s, admin %s, metrics %s", i+1, replicas[i].Public, replicas[i].Admin, replicas[i].Metrics)
	}
	return replicas, nil
}

// checkUntouched checks that no replica has decided anything yet: the
// token's bucket is full when the load starts.
func checkUntouched(before []counters) error {
	for i, c := range before {
		if c.Err != "" {
			return fmt.Errorf("replica %d metrics: %s", i+1, c.Err)
		}
		if c.Allowed+c.Limited+c.Fallback > 0 {
			return fmt.Errorf("replica %d made rate-limit decisions before the load: the bucket is not full", i+1)
		}
	}
	return nil
}

// limitedToken creates an Owner token of rateProject through admin, gives
// it its own limit, and returns its credential.
func limitedToken(ctx context.Context, admin *tokenapi.Client, rate float64, burst int, project bool) (string, error) {
	t, err := devtool.CreateToken(ctx, admin, rateProject, "owner", "rate-accuracy")
	if err != nil {
		return "", fmt.Errorf("creating the token: %w", err)
	}
	if project {
		// Replica 1 applies it at once; the others when they hear the
		// store's announcement, at the latest within
		// tokenapi.PolicyRefresh: wait that out before the load.
		if _, err := admin.SetPolicy(ctx, rateProject, tokenapi.PolicyRequest{RateLimit: rate, Burst: burst}); err != nil {
			return "", fmt.Errorf("setting the project's limit: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(tokenapi.PolicyRefresh + time.Second):
		}
		return t.Token, nil
	}
	u, err := admin.Update(ctx, t.ID, tokenapi.UpdateRequest{RateLimit: &rate, Burst: &burst})
	if err != nil {
		return "", fmt.Errorf("setting the token's limit: %w", err)
	}
	if u.RateLimit != rate || u.Burst != burst {
		return "", fmt.Errorf("setting the token's limit: it is now %g/s, burst %d; want %g/s, burst %d", u.RateLimit, u.Burst, rate, burst)
	}
	return t.Token, nil
}

// warm calls every replica once with the token and another project's id,
// and wants 403 project_mismatch: the replica has read the token (and
// caches it) but has not reached the rate limiter, so nothing is spent.
func warm(ctx context.Context, replicas []*devtool.Gateway, cred string) error {
	c := devtool.LoopbackClient(1)
	for i, g := range replicas {
		status, code, err := devtool.Call(ctx, c, "http://"+g.Public+warmPath, cred)
		if err != nil {
			return fmt.Errorf("warming the token on replica %d: %w", i+1, err)
		}
		if status != http.StatusForbidden || code != "project_mismatch" {
			return fmt.Errorf("warming the token on replica %d: answered %d %s, want 403 project_mismatch", i+1, status, code)
		}
	}
	return nil
}

// drive offers the load: for d, a request every `every` to each url, the
// urls' schedules staggered so that together they are evenly spaced. It
// returns what each url answered, in order.
func drive(ctx context.Context, urls []string, cred string, every, d time.Duration) []*replicaLoad {
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(d)
	loads := make([]*replicaLoad, len(urls))
	var wg sync.WaitGroup
	for i, url := range urls {
		l := &replicaLoad{Replica: i + 1}
		loads[i] = l
		first := start.Add(every * time.Duration(i) / time.Duration(len(urls)))
		wg.Go(func() { l.pace(ctx, url, cred, first, end, every) })
	}
	wg.Wait()
	return loads
}

// pace sends a request to url at first, first+every, … until end, each
// through a pool of workers so that a slow answer does not delay the
// schedule, and records the answers.
func (l *replicaLoad) pace(ctx context.Context, url, cred string, first, end time.Time, every time.Duration) {
	client := devtool.LoopbackClient(workers)
	// Room for every request of the run, up to a point: past it a full
	// queue holds the pacer back, which shows as lateness.
	due := make(chan time.Time, min(int(end.Sub(first)/every)+1, 1<<14))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for at := range due {
				sent := time.Now()
				status, code, err := devtool.Call(ctx, client, url, cred)
				took := time.Since(sent)
				mu.Lock()
				l.record(at, sent, took, status, code, err)
				mu.Unlock()
			}
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
schedule:
	for at := first; at.Before(end); at = at.Add(every) {
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break schedule
			case <-timer.C:
			}
		}
		due <- at
	}
	close(due)
	wg.Wait()
}

// record counts one answer: a request due at `at`, sent at sent, answered
// after took.
func (l *replicaLoad) record(at, sent time.Time, took time.Duration, status int, code string, err error) {
	l.Sent++
	if l.First.IsZero() || sent.Before(l.First) {
		l.First = sent
	}
	if sent.After(l.Last) {
		l.Last = sent
	}
	l.MaxLate = max(l.MaxLate, sent.Sub(at))
	var other string
	switch {
	case err != nil:
		other = err.Error()
	case status == http.StatusOK:
		l.Admitted++
		l.AdmittedLatency = append(l.AdmittedLatency, took)
		return
	case status == http.StatusTooManyRequests && (code == "rate_limited" || code == "project_rate_limited"):
		l.Limited++
		l.LimitedLatency = append(l.LimitedLatency, took)
		return
	default:
		other = strings.TrimSpace(strconv.Itoa(status) + " " + code)
	}
	l.Other++
	if len(l.OtherSeen) < maxOtherSeen && !slices.Contains(l.OtherSeen, other) {
		l.OtherSeen = append(l.OtherSeen, other)
	}
}

// scrapeAll reads every replica's rate-limit counters.
func scrapeAll(ctx context.Context, replicas []*devtool.Gateway) []counters {
	cs := make([]counters, len(replicas))
	for i, g := range replicas {
		cs[i] = scrapeCounters(ctx, "http://"+g.Metrics+"/metrics")
	}
	return cs
}

// scrapeCounters reads the rate-limit counters at url (a /metrics page).
func scrapeCounters(ctx context.Context, url string) counters {
	text, err := devtool.FetchMetrics(ctx, url)
	if err != nil {
		return counters{Err: err.Error()}
	}
	return parseCounters(text)
}

// parseCounters reads the rate-limit counters of a /metrics page; Err
// names the series missing from it.
func parseCounters(text string) counters {
	var c counters
	var missing []string
	get := func(series string) float64 {
		v, ok := devtool.PromValue(text, series)
		if !ok {
			missing = append(missing, series)
		}
		return v
	}
	const budget, decisions = "tswgate_ratelimit_budget_calls_total", "tswgate_ratelimit_decisions_total"
	c.BudgetOK = get(budget + `{result="ok"}`)
	c.BudgetError = get(budget + `{result="error"}`)
	c.Allowed = get(decisions + `{decision="allowed"}`)
	c.Limited = get(decisions + `{decision="limited"}`)
	for _, d := range []string{"fallback_allowed", "fallback_limited", "unavailable"} {
		c.Fallback += get(decisions + `{decision="` + d + `"}`)
	}
	if len(missing) > 0 {
		c.Err = "no " + strings.Join(missing, ", ")
	}
	return c
}

// minus returns c less the earlier reading b.
func (c counters) minus(b counters) counters {
	err := c.Err
	if err == "" {
		err = b.Err
	}
	return counters{
		BudgetOK: c.BudgetOK - b.BudgetOK, BudgetError: c.BudgetError - b.BudgetError,
		Allowed: c.Allowed - b.Allowed, Limited: c.Limited - b.Limited, Fallback: c.Fallback - b.Fallback,
		Err: err,
	}
}

// commandStats reads INFO commandstats through rdb.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return parseCommandStats(info), nil
}

// parseCommandStats reads the commands of an INFO commandstats answer:
// for each (such as "evalsha", or "client|setinfo"), the calls Redis saw,
// executed (calls, failed ones included) or rejected before execution
// (rejected_calls).
func parseCommandStats(info string) map[string]int64 {
	stats := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		name, ok = strings.CutPrefix(name, "cmdstat_")
		if !ok {
			continue
		}
		var n int64
		for _, kv := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "calls" || k == "rejected_calls" {
				x, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					n += x
				}
			}
		}
		stats[name] = n
	}
	return stats
}

// commandDelta returns the calls of each command from before to after,
// leaving out INFO (this tool's own) and the commands not called.
func commandDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for name, n := range after {
		if name == "info" {
			continue
		}
		if n -= before[name]; n > 0 {
			d[name] = n
		}
	}
	return d
}
