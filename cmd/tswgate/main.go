// Command tswgate is the authenticating gateway in front of the TeraSwitch
// API, and its token CLI: "tswgate serve" runs the gateway, "tswgate
// quickstart" tries it, and "tswgate help" lists every command (the
// commands table in commands.go).
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
	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/internal/logs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch {
	case args[0] == "help" && len(args) > 1: // help COMMAND: COMMAND -h
		return run(ctx, append(args[1:len(args):len(args)], "-h"), environ, stdout, stderr)
	case args[0] == "help", args[0] == "-h", args[0] == "--help":
		fmt.Fprint(stdout, usage())
		return 0
	}
	if len(args) == 2 && args[0] == "token" && isHelpArg(args[1]) {
		fmt.Fprint(stdout, "Usage:\n"+tokenUsage())
		return 0
	}
	cmd, rest, err := lookup(args)
	if err == nil && cmd == nil {
		fmt.Fprintf(stderr, "tswgate: unknown command %q%s\n\n%s", args[0], didYouMean(args[0], commandNames()), usage())
		return 2
	}
	if err == nil {
		err = cmd.run(ctx, rest, environ, stdout, stderr)
	}
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tswgate: %v\n\n%s", err, usage())
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errCommandHelp) {
		fmt.Fprint(stdout, "Usage:\n"+commandUsage(*cmd))
		return 0
	}
	fmt.Fprintf(stderr, "tswgate: %v\n", adminKeyHint(err, environ))
	return 1
}

// errCommandHelp is returned by a command asked for its help (tswgate
// policy -h) to have run print its lines of the usage.
var errCommandHelp = errors.New("help asked for")

// isHelpArg reports whether a subcommand's place holds a request for help.
func isHelpArg(s string) bool {
	return s == "-h" || s == "-help" || s == "--help" || s == "help"
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
	fs := flag.NewFlagSet("tswgate serve", flag.ContinueOnError)
	path := fs.String("config", "", "JSON config `file`; TSWGATE_* environment variables override it")
	check := fs.Bool("check", false, "validate the configuration and exit")
	pos, err := parseFlags("serve", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"serve takes no arguments, got " + strings.Join(pos, " ")}
	}
	cfg, err := config.Load(*path, environ)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *check {
		if err := gateway.CheckFiles(cfg); err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	stderr = &lockedWriter{w: stderr} // shared by the log and the access log
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	g, err := gateway.Start(ctx, cfg, gateway.StartOptions{Logger: logger, AccessLog: stderr})
	if err != nil {
		return err
	}
	return waitAndShutdown(ctx, g, cfg, logger)
}

// waitAndShutdown serves until ctx is done (SIGINT, SIGTERM) or a listener
// fails, then shuts down gracefully.
func waitAndShutdown(ctx context.Context, g *gateway.Gateway, cfg config.Config, logger *slog.Logger) error {
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
