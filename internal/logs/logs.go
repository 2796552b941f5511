// Package logs holds tswgate's slog plumbing: a handler that keeps token
// secrets out of every log line.
package logs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tswgate/tswgate/auth"
)

// Redacting returns a handler that passes every record to h with token
// secrets redacted (auth.RedactSecrets) from its message and from every
// string, error and fmt.Stringer value among its attributes, groups
// included, so that a credential a client put in a path, a header or a body
// never reaches a log line, whoever logs it (net/http's panic and error
// lines included, through the servers' ErrorLog).
func Redacting(h slog.Handler) slog.Handler {
	if r, ok := h.(redacting); ok {
		return r
	}
	return redacting{h}
}

type redacting struct{ next slog.Handler }

func (r redacting) Enabled(ctx context.Context, l slog.Level) bool { return r.next.Enabled(ctx, l) }

func (r redacting) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, auth.RedactSecrets(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.next.Handle(ctx, out)
}

func (r redacting) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redacting{r.next.WithAttrs(red)}
}

func (r redacting) WithGroup(name string) slog.Handler { return redacting{r.next.WithGroup(name)} }

// redactAttr returns a with its value's secrets redacted.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, auth.RedactSecrets(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, auth.RedactSecrets(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, auth.RedactSecrets(x.String()))
		case []byte:
			return slog.String(a.Key, auth.RedactSecrets(string(x)))
		case []string:
			red := make([]string, len(x))
			for i, s := range x {
				red[i] = auth.RedactSecrets(s)
			}
			return slog.Any(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
