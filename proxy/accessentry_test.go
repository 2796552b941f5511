package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testEntry = AccessEntry{
	Time: time.Date(2026, 11, 27, 10, 23, 20, 996029791, time.UTC), RequestID: "92a21bfd4f84-1",
	Method: "GET", Path: "/v2/Instance", Status: 429, TokenID: "tsw_tvmdtdBempNC3LacZ3eS", ProjectID: 42,
	Role: "owner", Permission: "compute.read", Code: "rate_limited",
	Gateway: 31 * time.Microsecond, Upstream: 1500 * time.Microsecond,
	RateLimit: "limited", Client: netip.MustParseAddr("203.0.113.7"),
}

// decodeLine parses one JSON line, dropping time (the slog handler stamps
// its own).
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	delete(m, "time")
	return m
}

// TestJSONAccessLogMatchesSlog: the fast encoder writes what slog's JSON
// handler writes for the same entry, so log pipelines see one format.
func TestJSONAccessLogMatchesSlog(t *testing.T) {
	for _, e := range []AccessEntry{testEntry, {Time: testEntry.Time, RequestID: "x", Method: "GET", Path: "/", Status: 401,
		Role: "none", Permission: "none", Code: "missing_token"}} {
		var fast, ref bytes.Buffer
		NewJSONAccessLog(&fast).LogAccess(&e)
		SlogAccessLog{L: slog.New(slog.NewJSONHandler(&ref, nil))}.LogAccess(&e)
		if !bytes.HasSuffix(fast.Bytes(), []byte("}\n")) || bytes.Count(fast.Bytes(), []byte("\n")) != 1 {
			t.Fatalf("not one line: %q", fast.String())
		}
		if got, want := decodeLine(t, fast.Bytes()), decodeLine(t, ref.Bytes()); !reflect.DeepEqual(got, want) {
			t.Fatalf("fast encoder:\n%s\nslog:\n%s", fast.String(), ref.String())
		}
		if !strings.HasPrefix(fast.String(), `{"time":"2026-11-27T10:23:20.996029791Z","level":"INFO","msg":"request",`) {
			t.Errorf("line starts %q", fast.String()[:60])
		}
	}
}

func TestJSONAccessLogZone(t *testing.T) {
	e := testEntry
	e.Client = netip.MustParseAddr("fe80::1").WithZone(`x"}{"code":"ok`)
	var b bytes.Buffer
	NewJSONAccessLog(&b).LogAccess(&e)
	if m := decodeLine(t, b.Bytes()); m["client"] != `fe80::1%x"}{"code":"ok` || m["code"] != "rate_limited" {
		t.Fatalf("line %s", b.String())
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "\x00\x1f\n\r\t", "ünïcödé", "\xff\xfe", "a\u2028b", "</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not a JSON string: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if !utf8.ValidString(s) {
			// Each invalid byte becomes one U+FFFD (ToValidUTF8 merges runs).
			want = string(bytes.Runes([]byte(s)))
		}
		if got != want {
			t.Fatalf("round trip of %q: got %q, want %q", s, got, want)
		}
	})
}

func BenchmarkAccessLog(b *testing.B) {
	for _, c := range []struct {
		name string
		l    AccessLogger
	}{
		{"json-append", NewJSONAccessLog(io.Discard)},
		{"slog-json", SlogAccessLog{L: slog.New(slog.NewJSONHandler(io.Discard, nil))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := testEntry
			b.ReportAllocs()
			for b.Loop() {
				c.l.LogAccess(&e)
			}
		})
	}
}
