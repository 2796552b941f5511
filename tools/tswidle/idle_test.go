package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.N != 1000000 || o.Replicas != 3 || o.Window != time.Minute {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	for _, args := range [][]string{{"-n", "-1"}, {"-replicas", "0"}, {"-window", "10ms"}, {"-timeout", "1s"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestMarkdown(t *testing.T) {
	r := &report{Command: "go run ./tools/tswidle -n 10", N: 10, Replicas: 2, Window: time.Minute,
		Phases: []phase{{Label: "this version", CommandsPS: 14, ByCommand: map[string]int64{"evalsha": 120, "hgetall": 2, "zrangebyscore": 4}, ReplicaRSS: []int64{20480, 30720}}}}
	md := r.markdown()
	for _, want := range []string{"| this version | 14.0 | 7.00 | EVALSHA 120, ZRANGEBYSCORE 4, HGETALL 2 | 20–30 MB |", "`go run ./tools/tswidle -n 10`"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestFieldInt(t *testing.T) {
	if got := fieldInt("calls=42,usec=7,usec_per_call=0.17", "calls"); got != 42 {
		t.Errorf("fieldInt = %d, want 42", got)
	}
	if got := fieldInt("usec=7", "calls"); got != 0 {
		t.Errorf("fieldInt of a missing key = %d, want 0", got)
	}
}
