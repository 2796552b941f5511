package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// The README's goals: admitted/ideal within [goalLow, goalHigh], at most
// goalOps limiter calls to Redis per request, and at most goalOther of the
// requests answered otherwise than 200 or 429 rate_limited.
const (
	goalLow, goalHigh = 0.95, 1.10
	goalOps           = 0.2
	goalOther         = 0.001
)

// defaultLease is the gateways' TSWGATE_RATELIMIT_LEASE.
const defaultLease = 100 * time.Millisecond

// report is everything the Markdown output shows.
type report struct {
	Command  string
	Opts     options
	Loads    []*replicaLoad // per replica, in order
	Counters []counters     // per replica, over the load (after − before)
	// Redis is the calls of each command Redis saw from before the load to
	// after it (RedisWindow), INFO left out.
	Redis       map[string]int64
	RedisWindow time.Duration
	Facts       devtool.Facts
	Took        time.Duration
}

// ideal is what one token bucket of rate and burst, full at the start,
// admits over elapsed when offered more: rate × elapsed + burst.
func ideal(rate float64, burst int, elapsed time.Duration) float64 {
	return rate*elapsed.Seconds() + float64(burst)
}

// leaseSize is how many requests a replica leases at a time: rate × lease
// (the gateways' default when 0), rounded up, at least 1, at most the
// burst and 1000, as limiter.Cluster does.
func leaseSize(rate float64, burst int, lease time.Duration) int {
	if lease <= 0 {
		lease = defaultLease
	}
	n := math.Ceil(rate * lease.Seconds())
	return int(max(1, min(n, float64(burst), 1000)))
}

// total sums f over the replicas' loads.
func (r *report) total(f func(*replicaLoad) int) int {
	n := 0
	for _, l := range r.Loads {
		n += f(l)
	}
	return n
}

func (r *report) sent() int     { return r.total(func(l *replicaLoad) int { return l.Sent }) }
func (r *report) admitted() int { return r.total(func(l *replicaLoad) int { return l.Admitted }) }
func (r *report) limited() int  { return r.total(func(l *replicaLoad) int { return l.Limited }) }
func (r *report) other() int    { return r.total(func(l *replicaLoad) int { return l.Other }) }

// elapsed is the time from the first request sent to the last, over all
// replicas.
func (r *report) elapsed() time.Duration {
	var first, last time.Time
	for _, l := range r.Loads {
		if l.Sent == 0 {
			continue
		}
		if first.IsZero() || l.First.Before(first) {
			first = l.First
		}
		if l.Last.After(last) {
			last = l.Last
		}
	}
	return last.Sub(first)
}

// ideal is the run's ideal admitted count.
func (r *report) ideal() float64 { return ideal(r.Opts.Rate, r.Opts.Burst, r.elapsed()) }

// ratio is admitted/ideal.
func (r *report) ratio() float64 { return float64(r.admitted()) / r.ideal() }

// sum sums f over the replicas' counters.
func (r *report) sum(f func(counters) float64) float64 {
	v := 0.0
	for _, c := range r.Counters {
		v += f(c)
	}
	return v
}

// budgetCalls is the limiter's calls to Redis (leases), over all replicas.
func (r *report) budgetCalls() float64 {
	return r.sum(func(c counters) float64 { return c.BudgetOK + c.BudgetError })
}

// opsPerRequest is the limiter's calls to Redis per request sent.
func (r *report) opsPerRequest() float64 {
	if r.sent() == 0 {
		return math.Inf(1)
	}
	return r.budgetCalls() / float64(r.sent())
}

// scriptCalls is the script calls Redis saw (EVALSHA and EVAL): the
// limiter's leases and the replicas' heartbeats.
func (r *report) scriptCalls() int64 { return r.Redis["evalsha"] + r.Redis["eval"] }

// failures says how the run missed the goals; none means it passed.
func (r *report) failures() []string {
	var why []string
	sent := r.sent()
	if sent == 0 {
		return []string{"no request was sent"}
	}
	if ratio := r.ratio(); ratio < goalLow || ratio > goalHigh {
		why = append(why, fmt.Sprintf("admitted/ideal %s is outside %s–%s", pct(ratio), pct(goalLow), pct(goalHigh)))
	}
	if ops := r.opsPerRequest(); ops > goalOps {
		why = append(why, fmt.Sprintf("%.3f limiter calls to Redis per request, more than %g", ops, goalOps))
	}
	if other := r.other(); float64(other) > goalOther*float64(sent) {
		why = append(why, fmt.Sprintf("%d of %d requests answered otherwise than 200 or 429 rate_limited (more than %s)", other, sent, pct(goalOther)))
	}
	for i, c := range r.Counters {
		if c.Err != "" {
			why = append(why, fmt.Sprintf("replica %d's metrics: %s", i+1, c.Err))
		}
	}
	return why
}

// pct renders a fraction as a percentage with one decimal.
func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// met renders whether a goal was met.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// p50p99 renders the median and 99th percentile of ds.
func p50p99(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return devtool.FormatLatency(devtool.Percentile(s, 50)) + " / " + devtool.FormatLatency(devtool.Percentile(s, 99))
}

// markdown renders r for the README.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := r.Opts
	sent, admitted, elapsed := r.sent(), r.admitted(), r.elapsed()
	lease := o.Lease
	if lease <= 0 {
		lease = defaultLease
	}
	offered := o.Load * o.Rate

	w("### Cluster rate-limit accuracy\n\n")
	if why := r.failures(); len(why) > 0 {
		w("> **FAILED:** %s.\n\n", strings.Join(why, "; "))
	}
	w("| measure | value |\n")
	w("| --- | ---: |\n")
	limit := "the token's limit"
	if o.Project {
		limit = "the project's limit (its policy)"
	}
	w("| %s | %g/s, burst %d |\n", limit, o.Rate, o.Burst)
	w("| offered (%g × the limit, over %d replicas) | %g requests/s for %v |\n", o.Load, o.Replicas, offered, o.Duration)
	w("| requests sent | %d over %.2f s (first to last) |\n", sent, elapsed.Seconds())
	w("| admitted (200) | %d |\n", admitted)
	w("| ideal (%g/s × %.2f s + %d) | %.1f |\n", o.Rate, elapsed.Seconds(), o.Burst, r.ideal())
	ratio := r.ratio()
	w("| **admitted / ideal** | **%s** (goal %s–%s: %s) |\n", pct(ratio), pct(goalLow), pct(goalHigh), met(ratio >= goalLow && ratio <= goalHigh))
	w("| refused (429 rate_limited) | %d |\n", r.limited())
	w("| other answers and errors | %d |\n", r.other())
	budgetErr := r.sum(func(c counters) float64 { return c.BudgetError })
	w("| limiter calls to Redis (leases) | %.0f (%.0f failed) |\n", r.budgetCalls(), budgetErr)
	ops := r.opsPerRequest()
	w("| **limiter calls to Redis per request** | **%.3f** (goal ≤ %g: %s) |\n", ops, goalOps, met(ops <= goalOps))
	if sent > 0 {
		w("| Redis script calls per request (leases, heartbeats, others) | %.3f (%d calls) |\n", float64(r.scriptCalls())/float64(sent), r.scriptCalls())
	}
	w("\n")

	r.writeReplicas(w)
	r.writeMethod(w, lease, offered)
	return b.String()
}

// mdWriter appends formatted Markdown to a report.
type mdWriter func(format string, args ...any)

// writeReplicas writes the table of each replica's load and answers.
func (r *report) writeReplicas(w mdWriter) {
	w("| replica | sent | admitted | 429 | other | leases | 200 p50 / p99 | 429 p50 / p99 | latest send |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, l := range r.Loads {
		leases := "?"
		if i < len(r.Counters) && r.Counters[i].Err == "" {
			leases = fmt.Sprintf("%.0f", r.Counters[i].BudgetOK+r.Counters[i].BudgetError)
		}
		w("| %d | %d | %d | %d | %d | %s | %s | %s | %s |\n", l.Replica, l.Sent, l.Admitted, l.Limited, l.Other, leases,
			p50p99(l.AdmittedLatency), p50p99(l.LimitedLatency), devtool.FormatLatency(l.MaxLate))
	}
	w("\n")
}

// writeMethod writes how the run was made: the setup, what Redis and the
// replicas counted, the command, the machine, and any unexpected answers.
func (r *report) writeMethod(w mdWriter, lease time.Duration, offered float64) {
	o := r.Opts
	w("%d `tswgate serve` replicas share one Redis (%s, loopback) in front of the stand-in API, ", o.Replicas, r.Facts.Redis)
	w("with the cluster rate-limit scope: one token bucket per token in Redis, which each replica leases from %d requests at a time ", leaseSize(o.Rate, o.Burst, o.Lease))
	w("(rate × `TSWGATE_RATELIMIT_LEASE` %v) with one script call; when the bucket is empty a lease is a reservation whose requests mature as it refills, ", lease)
	w("and the replica refuses on its own until the next one matures. ")
	w("One Owner token gets its own limit through replica 1's admin API and is read by every replica (one call naming another project, refused before the limiter), so its bucket is full when the load starts. ")
	w("The load is open loop: each replica gets a request every %v on a fixed schedule, staggered between replicas, sent by up to %d workers (`GET %s`); ", time.Duration(float64(time.Second)*float64(o.Replicas)/offered).Round(time.Microsecond), workers, ratePath)
	w("\"latest send\" is the most a request left after its time. ")
	w("The ideal is what a single bucket admits from the first request sent to the last: rate × elapsed + burst. ")
	w("A replica's matured but unspent lease at the end (at most %d requests each) is the expected shortfall.\n\n", leaseSize(o.Rate, o.Burst, o.Lease))

	w("- Redis, `INFO commandstats` from before the load to after it (%.1f s; the tool's INFO left out): %s.\n", r.RedisWindow.Seconds(), r.redisLine())
	allowed := r.sum(func(c counters) float64 { return c.Allowed })
	limited := r.sum(func(c counters) float64 { return c.Limited })
	fallback := r.sum(func(c counters) float64 { return c.Fallback })
	w("- The replicas' own count (`tswgate_ratelimit_decisions_total`): %.0f allowed, %.0f limited, %.0f decided without the shared budget", allowed, limited, fallback)
	if fallback > 0 {
		w(" (**Redis was unreachable at times: those decisions used each replica's share**)")
	}
	w(".\n")
	w("- Command: `%s` (%s in all, build included)\n", r.Command, r.Took.Round(100*time.Millisecond))
	w("- Machine: nproc %d, %s, %s, Linux %s", r.Facts.NProc, r.Facts.CPUModel, r.Facts.GoVersion, r.Facts.Kernel)
	if r.Facts.LoadAvg != "" {
		w("; load average %s when the run began (other work on the machine disturbs the numbers)", r.Facts.LoadAvg)
	}
	w("\n")
	var seen []string
	for _, l := range r.Loads {
		for _, s := range l.OtherSeen {
			seen = append(seen, fmt.Sprintf("replica %d: %s", l.Replica, s))
		}
	}
	if len(seen) > 0 {
		w("\nUnexpected answers (the first of each kind):\n\n")
		for _, s := range seen {
			w("- `%s`\n", devtool.MDCode(s))
		}
	}
}

// The commands the limiter's scripts run inside Redis (limiter/redis.go):
// Redis counts them in INFO commandstats like any other. Each of the two
// scripts calls TIME once and ZCARD is the heartbeat's; no other code of
// tswgate calls either, so they count the runs of each script.
var (
	leaseInside     = []string{"time", "hmget", "hset", "pexpire"}
	heartbeatInside = []string{"time", "zadd", "zremrangebyscore", "pexpire", "zcard"}
)

// redisSplit is what Redis saw, told apart.
type redisSplit struct {
	Leases, Heartbeats int64 // runs of the limiter's lease and heartbeat scripts
	// OtherScripts is the script calls besides: other scripts (such as
	// the usage recorder's) and EVALSHA answered NOSCRIPT.
	OtherScripts int64
	// Inside is the commands the limiter's scripts ran; Other the rest
	// but the script calls: sent on their own, or run inside the other
	// scripts (INFO commandstats does not tell those apart).
	Inside, Other map[string]int64
}

// splitRedis tells apart the commands Redis saw (calls by command).
func splitRedis(calls map[string]int64) redisSplit {
	s := redisSplit{Inside: map[string]int64{}, Other: map[string]int64{}}
	runs := calls["time"]
	s.Heartbeats = min(calls["zcard"], runs)
	s.Leases = runs - s.Heartbeats
	s.OtherScripts = max(0, calls["evalsha"]+calls["eval"]-runs)
	for _, name := range leaseInside {
		s.Inside[name] += s.Leases
	}
	for _, name := range heartbeatInside {
		s.Inside[name] += s.Heartbeats
	}
	for name, n := range s.Inside {
		if n = min(n, calls[name]); n > 0 {
			s.Inside[name] = n
		} else {
			delete(s.Inside, name)
		}
	}
	for name, n := range calls {
		if rest := n - s.Inside[name]; rest > 0 && name != "evalsha" && name != "eval" {
			s.Other[name] = rest
		}
	}
	return s
}

// redisLine describes the commands Redis saw: the script calls (leases,
// heartbeats, others), the other commands, and those the limiter's
// scripts ran.
func (r *report) redisLine() string {
	sp := splitRedis(r.Redis)
	s := fmt.Sprintf("%d script calls (EVALSHA %d, EVAL %d): the limiter's leases %d (the replicas counted %.0f in `tswgate_ratelimit_budget_calls_total`), "+
		"heartbeats %d (one a second per replica), others %d (other scripts, such as the usage recorder's, and EVALSHA answered NOSCRIPT)",
		r.scriptCalls(), r.Redis["evalsha"], r.Redis["eval"], sp.Leases, r.budgetCalls(), sp.Heartbeats, sp.OtherScripts)
	if len(sp.Other) == 0 {
		s += "; no other command"
	} else {
		s += "; other commands, sent on their own or run inside those other scripts: " + byCalls(sp.Other)
	}
	if len(sp.Inside) > 0 {
		s += "; run inside the limiter's scripts: " + byCalls(sp.Inside)
	}
	return s
}

// byCalls lists commands with their calls, the most called first.
func byCalls(calls map[string]int64) string {
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(calls[b], calls[a]), strings.Compare(a, b))
	})
	for i, name := range names {
		names[i] = fmt.Sprintf("%s %d", strings.ToUpper(name), calls[name])
	}
	return strings.Join(names, ", ")
}
