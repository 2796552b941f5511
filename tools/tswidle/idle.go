package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/internal/devtool"
)

// loadChunk is how many records are made and imported at a time.
const loadChunk = 20000

// run loads the store, then measures each binary.
func run(ctx context.Context, o options, stderr io.Writer) (*report, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "tswidle: "+format+"\n", args...) }
	start := time.Now()
	bed, err := devtool.NewBed(ctx, "tswidle", o.Gateway, logf)
	if err != nil {
		return nil, err
	}
	defer bed.Close()
	rdb := redis.NewClient(&redis.Options{Addr: bed.Redis.Addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	rep := &report{Command: o.commandLine(), N: o.N, Replicas: o.Replicas, Settle: o.Settle, Window: o.Window,
		Facts: devtool.MachineFacts(), Date: time.Now().UTC()}
	rep.Facts.Redis = bed.Redis.Version

	var hasher *auth.Hasher
	if o.Scale {
		if hasher, err = auth.NewHasher([]byte(bed.Pepper)); err != nil {
			return nil, err
		}
	}
	var creds []credential
	if rep.Load, rep.Reconcile, creds, err = load(ctx, rdb, o.N, hasher, logf); err != nil {
		return nil, err
	}
	if rep.RedisMemory, err = infoField(ctx, rdb, "memory", "used_memory_human"); err != nil {
		return nil, err
	}
	if o.Scale {
		if rep.Scale, err = runScale(ctx, bed, rdb, o, creds, logf); err != nil {
			return nil, err
		}
		rep.Took = time.Since(start)
		return rep, nil
	}
	bins := []string{}
	if o.Before != "" {
		b, err := filepath.Abs(o.Before)
		if err != nil {
			return nil, err
		}
		bins = append(bins, b)
	}
	bins = append(bins, bed.Bin)
	for i, bin := range bins {
		ph, err := measure(ctx, bed, rdb, o, bin, i, logf)
		if err != nil {
			return nil, err
		}
		ph.Label = "this version"
		if i == 0 && o.Before != "" {
			ph.Label = "-before " + o.Before
		}
		rep.Phases = append(rep.Phases, ph)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// credential is a token the scale mode calls with.
type credential struct {
	cred    string
	project int64
}

// load imports n token records and reconciles the indexes, returning how
// long each took, and, with a hasher, the tokens' credentials.
func load(ctx context.Context, rdb *redis.Client, n int, h *auth.Hasher, logf func(string, ...any)) (loadTook, reconcileTook time.Duration, creds []credential, _ error) {
	st, err := redisstore.New(redisstore.Options{Client: rdb, Timeout: time.Minute})
	if err != nil {
		return 0, 0, nil, err
	}
	defer st.Close()
	start := time.Now()
	now := start.UTC().Truncate(time.Millisecond)
	for done := 0; done < n; {
		toks, cs, err := makeTokens(done, min(loadChunk, n-done), now, h)
		if err != nil {
			return 0, 0, nil, err
		}
		creds = append(creds, cs...)
		if _, err := st.Import(ctx, toks); err != nil {
			return 0, 0, nil, fmt.Errorf("loading tokens: %w", err)
		}
		done += len(toks)
		if done%200000 == 0 || done == n {
			logf("loaded %d of %d tokens", done, n)
		}
	}
	loadTook = time.Since(start)
	start = time.Now()
	walked, err := st.Reconcile(ctx)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("reconciling the indexes: %w", err)
	}
	reconcileTook = time.Since(start)
	logf("reconciled the indexes of %d records in %v", walked, reconcileTook.Round(time.Millisecond))
	return loadTook, reconcileTook, creds, nil
}

// makeTokens makes n records, numbered from first, over 1000 projects. Without a hasher: 1 in
// 10 Accounting, 1 in 20 inactive, half with an expiry spread over the
// coming year, random secret hashes (nobody calls with them). With one:
// active Owner tokens that never expire, and their credentials.
func makeTokens(first, n int, now time.Time, h *auth.Hasher) ([]*auth.Token, []credential, error) {
	toks := make([]*auth.Token, n)
	var creds []credential
	for k := range toks {
		i := first + k
		t := &auth.Token{ProjectID: int64(1 + i%1000), Name: "idle " + strconv.Itoa(i),
			Role: auth.RoleOwner, Status: auth.StatusActive, CreatedAt: now, PepperID: "bench"}
		toks[k] = t
		if h != nil {
			id, cred, err := h.NewCredential()
			if err != nil {
				return nil, nil, err
			}
			t.ID = id
			t.SecretHash, t.PepperID = h.Hash(cred)
			creds = append(creds, credential{cred: cred, project: t.ProjectID})
			continue
		}
		id, _, err := auth.NewCredential()
		if err != nil {
			return nil, nil, err
		}
		t.ID = id
		if _, err := rand.Read(t.SecretHash[:]); err != nil {
			return nil, nil, err
		}
		if i%10 == 0 {
			t.Role = auth.RoleAccounting
		}
		if i%20 == 1 {
			t.Status = auth.StatusInactive
		}
		if i%2 == 0 {
			t.ExpiresAt = now.Add(time.Duration(1+i%525600) * time.Minute)
		}
	}
	return toks, creds, nil
}

// phase is the measurement of one binary.
type phase struct {
	Label       string
	CommandsPS  float64          // total_commands_processed growth per second
	ByCommand   map[string]int64 // calls per command over the window
	ReplicaRSS  []int64          // resident memory of each replica, kB, at the end
	StartupCmds int64            // commands from the first replica's start to the window's start
}

// measure starts the replicas of bin, lets them settle, measures the
// window and stops them.
func measure(ctx context.Context, bed *devtool.Bed, rdb *redis.Client, o options, bin string, run int, logf func(string, ...any)) (phase, error) {
	var ph phase
	before, _, err := commandCounts(ctx, rdb)
	if err != nil {
		return ph, err
	}
	var gws []*devtool.Gateway
	defer func() {
		for _, g := range gws {
			bed.Procs.Kill(g.Proc)
		}
	}()
	for i := range o.Replicas {
		g, err := devtool.StartGateway(ctx, bed.Procs, devtool.GatewaySpec{
			Name: fmt.Sprintf("tswgate-%d-%d", run, i+1), Argv: []string{bin, "serve"},
			DataDir: filepath.Join(bed.Dir, fmt.Sprintf("data-%d-%d", run, i+1)), Env: bed.Env(),
		})
		if err != nil {
			return ph, err
		}
		gws = append(gws, g)
	}
	logf("%s: %d replicas ready; settling for %v", filepath.Base(bin), o.Replicas, o.Settle)
	if err := wait(ctx, o.Settle); err != nil {
		return ph, err
	}
	t0, calls0, err := commandCounts(ctx, rdb)
	if err != nil {
		return ph, err
	}
	ph.StartupCmds = t0 - before
	logf("measuring for %v", o.Window)
	began := time.Now()
	if err := wait(ctx, o.Window); err != nil {
		return ph, err
	}
	t1, calls1, err := commandCounts(ctx, rdb)
	if err != nil {
		return ph, err
	}
	took := time.Since(began)
	// The two INFO calls of the window are the tool's own.
	ph.CommandsPS = float64(t1-t0-2) / took.Seconds()
	ph.ByCommand = map[string]int64{}
	for name, n := range calls1 {
		if d := n - calls0[name]; d > 0 && name != "info" {
			ph.ByCommand[name] = d
		}
	}
	if err := checkAlive(gws); err != nil {
		return ph, err
	}
	for _, g := range gws {
		ph.ReplicaRSS = append(ph.ReplicaRSS, rssKB(g.Proc.Pid()))
	}
	return ph, nil
}

// checkAlive fails, with its log's end, for a replica that exited.
func checkAlive(gws []*devtool.Gateway) error {
	for _, g := range gws {
		if exited, how := g.Proc.Exited(); exited {
			return fmt.Errorf("a replica stopped during the run: %s", how)
		}
	}
	return nil
}

// wait waits d, or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commandCounts reads total_commands_processed and the calls of each
// command from INFO.
func commandCounts(ctx context.Context, rdb *redis.Client) (int64, map[string]int64, error) {
	info, err := rdb.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return 0, nil, fmt.Errorf("INFO: %w", err)
	}
	var total int64 = -1
	calls := map[string]int64{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			total, _ = strconv.ParseInt(v, 10, 64)
		}
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, stats, _ := strings.Cut(rest, ":")
			calls[name] = fieldInt(stats, "calls")
		}
	}
	if total < 0 {
		return 0, nil, errors.New("INFO stats has no total_commands_processed")
	}
	return total, calls, nil
}

// fieldInt returns the integer of key in "k=v,k=v".
func fieldInt(s, key string) int64 {
	for kv := range strings.SplitSeq(s, ",") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// infoField returns one field of an INFO section.
func infoField(ctx context.Context, rdb *redis.Client, section, key string) (string, error) {
	info, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return "", fmt.Errorf("INFO %s: %w", section, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, key)
}

// rssKB returns the resident memory of process pid in kB (0 if unknown).
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
