package proxy

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// AccessLogger writes one access log line per answered request. It is
// called on every request: implementations must be cheap and safe for
// concurrent use, and must not keep e.
type AccessLogger interface {
	LogAccess(e *AccessEntry)
}

// AccessEntry is one request of the access log.
type AccessEntry struct {
	Time      time.Time
	RequestID string
	Method    string
	// Path is the escaped request path, never the query.
	Path      string
	Status    int
	TokenID   string // "" when no token was verified
	ProjectID int64
	Role      string // owner, accounting or none
	// Permission is the matched route's permission ("none" when none).
	Permission string
	// Code is "ok" or the refusal code.
	Code string
	// Gateway and Upstream are the gateway's own time and the upstream
	// round trip.
	Gateway, Upstream time.Duration
	// RateLimit is the rate-limit decision ("" when the token has no limit).
	RateLimit string
	// Client is the client address (invalid when not determined).
	Client netip.Addr
	// TraceID is the request's trace (zero when it is not traced).
	TraceID [16]byte
}

// JSONAccessLog writes each entry as one JSON object per line, with the
// keys log/slog's JSON handler would give it (time, level, msg "request",
// then the entry's fields), encoded by appending to a pooled buffer: no
// reflection and no allocation per line.
type JSONAccessLog struct {
	w io.Writer
}

// NewJSONAccessLog returns a JSONAccessLog writing to w (give it a
// BufferedWriter).
func NewJSONAccessLog(w io.Writer) *JSONAccessLog { return &JSONAccessLog{w: w} }

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// LogAccess implements AccessLogger.
func (l *JSONAccessLog) LogAccess(e *AccessEntry) {
	bp := lineBufs.Get().(*[]byte)
	b := appendAccessJSON((*bp)[:0], e)
	_, _ = l.w.Write(b)
	*bp = b
	lineBufs.Put(bp)
}

// appendAccessJSON appends e's line, newline included.
func appendAccessJSON(b []byte, e *AccessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, e.RequestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"token_id":`...)
	b = appendJSONString(b, e.TokenID)
	b = append(b, `,"project_id":`...)
	b = strconv.AppendInt(b, e.ProjectID, 10)
	b = append(b, `,"role":`...)
	b = appendJSONString(b, e.Role)
	b = append(b, `,"permission":`...)
	b = appendJSONString(b, e.Permission)
	b = append(b, `,"code":`...)
	b = appendJSONString(b, e.Code)
	b = append(b, `,"gateway_ms":`...)
	b = appendMillis(b, e.Gateway)
	b = append(b, `,"upstream_ms":`...)
	b = appendMillis(b, e.Upstream)
	if e.RateLimit != "" {
		b = append(b, `,"ratelimit":`...)
		b = appendJSONString(b, e.RateLimit)
	}
	if e.Client.IsValid() {
		b = append(b, `,"client":`...)
		if e.Client.Zone() == "" {
			b = append(b, '"')
			b = e.Client.AppendTo(b)
			b = append(b, '"')
		} else {
			b = appendJSONString(b, e.Client.String()) // a zone is free text
		}
	}
	if e.TraceID != ([16]byte{}) {
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, e.TraceID[:])
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendMillis appends d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, and invalid UTF-8 replaced by U+FFFD, so a
// line is valid JSON whatever a client sent.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// SlogAccessLog writes entries through a slog.Logger (for formats other
// than JSON, such as slog's text handler), with the same keys as
// JSONAccessLog.
type SlogAccessLog struct {
	L *slog.Logger
}

// LogAccess implements AccessLogger.
func (l SlogAccessLog) LogAccess(e *AccessEntry) {
	attrs := [...]slog.Attr{
		slog.String("request_id", e.RequestID),
		slog.String("method", e.Method),
		slog.String("path", e.Path),
		slog.Int("status", e.Status),
		slog.String("token_id", e.TokenID),
		slog.Int64("project_id", e.ProjectID),
		slog.String("role", e.Role),
		slog.String("permission", e.Permission),
		slog.String("code", e.Code),
		slog.Float64("gateway_ms", float64(e.Gateway.Microseconds())/1000),
		slog.Float64("upstream_ms", float64(e.Upstream.Microseconds())/1000),
		{}, {}, {},
	}
	n := len(attrs) - 3
	if e.RateLimit != "" {
		attrs[n] = slog.String("ratelimit", e.RateLimit)
		n++
	}
	if e.Client.IsValid() {
		attrs[n] = slog.String("client", e.Client.String())
		n++
	}
	if e.TraceID != ([16]byte{}) {
		attrs[n] = slog.String("trace_id", hex.EncodeToString(e.TraceID[:]))
		n++
	}
	l.L.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:n]...)
}
