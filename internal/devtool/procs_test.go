package devtool

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestTailAndScanPrefix(t *testing.T) {
	if got := Tail("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail("a", 5); got != "a" {
		t.Errorf("Tail of a short text = %q", got)
	}
	if got := scanPrefix(strings.NewReader("some log\nlistening on 127.0.0.1:4321\n"), "listening on "); got != "127.0.0.1:4321" {
		t.Errorf("scanPrefix = %q", got)
	}
	if got := scanPrefix(strings.NewReader("nothing\n"), "listening on "); got != "" {
		t.Errorf("scanPrefix without the line = %q", got)
	}
}

func TestFreePorts(t *testing.T) {
	p := NewProcs(t.TempDir())
	defer p.StopAll(time.Second)
	addrs, err := p.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" || seen[a] {
			t.Errorf("FreePorts = %v", addrs)
		}
		seen[a] = true
	}
}

func TestProcs(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p := NewProcs(t.TempDir())
	defer p.StopAll(time.Second)
	ctx := context.Background()

	c, err := p.Start("talker", nil, sh, "-c", "echo listening on here; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.WaitLogLine(ctx, "listening on ", 10*time.Second); err != nil || got != "here" {
		t.Errorf("WaitLogLine = %q, %v", got, err)
	}
	if gone, _ := c.Exited(); gone {
		t.Error("a sleeping child has exited")
	}
	p.StopAll(time.Second)
	if gone, why := c.Exited(); !gone || !strings.Contains(why, "talker exited") {
		t.Errorf("after StopAll: exited %v: %s", gone, why)
	}

	q, err := p.Start("quitter", nil, sh, "-c", "echo bye; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitReady(ctx, q, "http://127.0.0.1:1/readyz", 10*time.Second); err == nil || !strings.Contains(err.Error(), "bye") {
		t.Errorf("waitReady on a child that exits = %v, want its exit and log", err)
	}

	out, err := p.Run(ctx, "echo", 10*time.Second, sh, "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\n" {
		t.Errorf("Run = %q, %v", out, err)
	}
	if _, err := p.Run(ctx, "failer", 10*time.Second, sh, "-c", "echo why >&2; exit 1"); err == nil || !strings.Contains(err.Error(), "why") {
		t.Errorf("Run of a failing child = %v, want its stderr", err)
	}
	if _, err := p.Run(ctx, "sleeper", 200*time.Millisecond, sh, "-c", "exec sleep 60"); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("Run past its timeout = %v", err)
	}
}
