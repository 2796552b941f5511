// Command tswgate is the authenticating gateway in front of the TeraSwitch
// API, and its token CLI.
//
//	tswgate serve [--config FILE]     run the gateway
//	tswgate quickstart                run it with a stand-in API and two tokens
//	tswgate token create|list|show|deactivate|activate|rotate|limit|revoke ...
//	tswgate audit --project ID
//	tswgate version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/logs"
)

const usage = `tswgate: the authenticating gateway for the TeraSwitch API.

Usage:
  tswgate serve [--config FILE] [--check]  run the gateway (settings: README, TSWGATE_* variables)
  tswgate quickstart                       run it in front of a stand-in API, with two tokens to try
  tswgate token create --project ID --role owner|accounting --name NAME [--expires-in 720h]
                    [--scopes compute.read,...] [--allow-ip CIDR]... [-o json]
  tswgate token list --project ID [--status active|inactive] [--role owner|accounting]
                    [--limit N [--cursor C]] [-o json]
                                           every page, or one page of N with --limit
  tswgate token show ID [-o json]
  tswgate token update ID [--scopes P,...] [--allow-ip CIDR]... [-o json]
                                           replace the token's scopes or address ranges
                                           ("" removes a list)
  tswgate token deactivate ID [-o json]    refuse the token (token_inactive) until activated
  tswgate token activate ID [-o json]
  tswgate token rotate ID [--grace 1h] [-o json]
                                           a new token like the old; the old one works for
                                           --grace (default 0: revoked at once)
  tswgate token limit ID --rate R [--burst B] [-o json]
                                           the token's own rate limit (requests/s); --rate 0
                                           removes it (the role's applies)
  tswgate token revoke ID [-o json]
  tswgate audit --project ID [--limit 50] [--cursor C] [-o json]
                                           the project's audit trail, newest first
  tswgate version

The token and audit commands call the admin API at TSWGATE_ADMIN_URL (default
http://127.0.0.1:8081) with TSWGATE_ADMIN_KEY (default: the key file in
TSWGATE_DATA_DIR, which the embedded store creates on first start).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], environ, stdout, stderr)
	case "quickstart":
		err = quickstart(ctx, args[1:], environ, stdout, stderr)
	case "token":
		err = tokenCommand(ctx, args[1:], environ, stdout)
	case "audit":
		err = auditCommand(ctx, args[1:], environ, stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "tswgate", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tswgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tswgate: %v\n\n%s", err, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "tswgate: %v\n", err)
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "(unknown)"
}

func serve(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "JSON config `file`; TSWGATE_* environment variables override it")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"serve takes no arguments, got " + strings.Join(fs.Args(), " ")}
	}
	cfg, err := config.Load(*path, environ)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *check {
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	stderr = &lockedWriter{w: stderr} // shared by the log and the access log
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	g, err := Start(ctx, cfg, StartOptions{Logger: logger, AccessLog: stderr})
	if err != nil {
		return err
	}
	return waitAndShutdown(ctx, g, cfg, logger)
}

// waitAndShutdown serves until ctx is done (SIGINT, SIGTERM) or a listener
// fails, then shuts down gracefully.
func waitAndShutdown(ctx context.Context, g *Gateway, cfg config.Config, logger *slog.Logger) error {
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests", slog.Duration("timeout", cfg.ShutdownTimeout))
	case serveErr = <-g.Err():
		logger.Error("listener failed; shutting down", slog.String("err", serveErr.Error()))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownDelay+cfg.ShutdownTimeout)
	defer cancel()
	err := errors.Join(serveErr, g.Shutdown(sctx))
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("TSWGATE_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logs.Redacting(h)), nil
}

// lockedWriter serializes writes to w, which the process log and the
// access log's flushes share.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
