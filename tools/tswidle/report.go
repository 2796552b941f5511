package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// report is everything the Markdown output shows.
type report struct {
	Command         string
	Date            time.Time
	N, Replicas     int
	Settle, Window  time.Duration
	Load, Reconcile time.Duration
	RedisMemory     string
	Phases          []phase
	Scale           *scaleResult // the scale mode's, instead of Phases
	Facts           devtool.Facts
	Took            time.Duration
}

// topCommands is how many of the busiest commands each phase lists.
const topCommands = 5

// markdown renders r for docs/performance.md.
func (r *report) markdown() string {
	var b strings.Builder
	if r.Scale != nil {
		r.scaleMarkdown(&b)
		return b.String()
	}
	fmt.Fprintf(&b, "Idle background work, %s: %d tokens in Redis, %d idle replicas, commands over %v after %v of settling.\n\n",
		r.Date.Format("2006-01-02"), r.N, r.Replicas, r.Window, r.Settle)
	b.WriteString("| tswgate | Redis commands/s (all replicas) | per replica | busiest commands over the window | replica RSS |\n")
	b.WriteString("|---|---:|---:|---|---:|\n")
	for _, ph := range r.Phases {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", devtool.MDEscape(ph.Label),
			devtool.Sig3(ph.CommandsPS), devtool.Sig3(ph.CommandsPS/float64(r.Replicas)),
			busiest(ph.ByCommand), rss(ph.ReplicaRSS))
	}
	fmt.Fprintf(&b, "\nLoading %d records (pipelined `redisstore.Import`) took %v; the one-time index reconciliation "+
		"(`redisstore.Reconcile`) of them took %v. Redis memory after loading: %s.\n\n",
		r.N, r.Load.Round(time.Millisecond), r.Reconcile.Round(time.Millisecond), r.RedisMemory)
	r.footer(&b)
	return b.String()
}

// footer renders the command and the machine.
func (r *report) footer(b *strings.Builder) {
	fmt.Fprintf(b, "Command: `%s` (%v in all). Machine: %d CPUs, %s, %s, kernel %s, %s, load %s.\n",
		devtool.MDCode(r.Command), r.Took.Round(time.Second), r.Facts.NProc, r.Facts.CPUModel,
		r.Facts.GoVersion, r.Facts.Kernel, r.Facts.Redis, r.Facts.LoadAvg)
}

// busiest lists the commands with the most calls, most first.
func busiest(calls map[string]int64) string {
	type kv struct {
		name string
		n    int64
	}
	var all []kv
	for name, n := range calls {
		all = append(all, kv{name, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.name, b.name)) })
	var parts []string
	for i, c := range all {
		if i == topCommands {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", strings.ToUpper(c.name), c.n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// rss renders the replicas' resident memory as a range in MB.
func rss(kb []int64) string {
	if len(kb) == 0 {
		return "?"
	}
	lo, hi := slices.Min(kb)/1024, slices.Max(kb)/1024
	if lo == hi {
		return fmt.Sprintf("%d MB", lo)
	}
	return fmt.Sprintf("%d–%d MB", lo, hi)
}

// scaleMarkdown renders the scale mode's report.
func (r *report) scaleMarkdown(b *strings.Builder) {
	sc := r.Scale
	fmt.Fprintf(b, "Scale, %s: %d tokens in Redis, %d replicas, a Zipf mix of the tokens over %v after %v of warm-up.\n\n",
		r.Date.Format("2006-01-02"), r.N, r.Replicas, r.Window, r.Settle)
	b.WriteString("| requests/s | p50 | p99 | cache hit rate | store reads/s (HGETALL) | Redis commands/s | replica RSS | statuses |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---|\n")
	fmt.Fprintf(b, "| %s | %s | %s | %.1f %% | %s | %s | %s | %s |\n", devtool.Sig3(sc.RPS),
		devtool.FormatLatency(sc.P50), devtool.FormatLatency(sc.P99), 100*sc.HitRate,
		devtool.Sig3(sc.StoreReads), devtool.Sig3(sc.RedisCmds), rss(sc.ReplicaRSS), statusSummary(sc.ByStatus))
	if sc.Errors > 0 {
		fmt.Fprintf(b, "\n%d requests failed (no answer).\n", sc.Errors)
	}
	fmt.Fprintf(b, "\nLoading took %v. Redis memory after loading: %s.\n\n", r.Load.Round(time.Millisecond), r.RedisMemory)
	r.footer(b)
}
