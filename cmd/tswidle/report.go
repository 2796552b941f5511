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
	Facts           devtool.Facts
	Took            time.Duration
}

// topCommands is how many of the busiest commands each phase lists.
const topCommands = 5

// markdown renders r for docs/performance.md.
func (r *report) markdown() string {
	var b strings.Builder
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
	fmt.Fprintf(&b, "Command: `%s` (%v in all). Machine: %d CPUs, %s, %s, kernel %s, %s, load %s.\n",
		devtool.MDCode(r.Command), r.Took.Round(time.Second), r.Facts.NProc, r.Facts.CPUModel,
		r.Facts.GoVersion, r.Facts.Kernel, r.Facts.Redis, r.Facts.LoadAvg)
	return b.String()
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
