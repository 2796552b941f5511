package logs

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
)

func TestRedacting(t *testing.T) {
	_, cred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(cred, ":")
	var buf bytes.Buffer
	l := slog.New(Redacting(slog.NewJSONHandler(&buf, nil)))
	u, _ := url.Parse("http://x/tswgate/v1/tokens/" + cred)
	l.With(slog.String("header", "Bearer "+cred)).WithGroup("g").Error("refused "+cred,
		slog.String("path", "/v2/"+cred),
		slog.Any("err", errors.New("bad token "+cred)),
		slog.Any("url", u),
		slog.Any("bytes", []byte(cred)),
		slog.Any("list", []string{cred}),
		slog.Group("nested", slog.String("cred", cred)),
	)
	// net/http's own lines go through a *log.Logger on the handler.
	slog.NewLogLogger(Redacting(slog.NewTextHandler(&buf, nil)), slog.LevelError).Print("http: panic serving: " + cred)
	out := buf.String()
	if strings.Contains(out, secret[6:]) {
		t.Fatalf("a secret reached the log:\n%s", out)
	}
	if got := strings.Count(out, auth.Redacted); got != 9 {
		t.Errorf("%d redactions, want 9:\n%s", got, out)
	}
}
