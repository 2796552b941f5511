package devtool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// NewFlagSet returns the flag set of a tool, run as `go run ./tools/TOOL`:
// errors and usage go to stderr, and the usage starts with about.
func NewFlagSet(tool, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(tool, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./tools/%s [flags]\n\n%s\n\nFlags:\n", tool, about)
		fs.PrintDefaults()
	}
	return fs
}

// GatewayFlag defines the -tswgate flag, a prebuilt tswgate binary; empty
// means build ./cmd/tswgate (see GatewayBinary).
func GatewayFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "tswgate", "", "use this prebuilt tswgate `binary` instead of building ./cmd/tswgate")
}

// ParseFlags parses args, refuses arguments after the flags, and returns
// the names of the flags given.
func ParseFlags(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// Tool is a development tool that measures and reports in Markdown; Main
// runs it.
type Tool[O any] struct {
	Name string // as in `go run ./tools/NAME`; it prefixes the messages
	// Parse parses the command line; an error is a usage mistake.
	Parse func(args []string, stderr io.Writer) (O, error)
	// Out is the file the report also goes to, "" for none.
	Out func(O) string
	// Run measures, with its progress on stderr, and returns the Markdown
	// report and, when the run did not pass its checks, why ("" when it
	// did). An error means there is no report.
	Run func(ctx context.Context, o O, stderr io.Writer) (md, failure string, err error)
	// Interrupted is said when a signal stopped the run.
	Interrupted string
}

// Main runs t with args, stopping it on SIGINT, SIGTERM or SIGHUP, prints
// its report on stdout (and to Out), and returns the exit status: 0 when
// the run passed (or after -help), 1 when it failed or its report could
// not be written, 2 for a mistake on the command line.
func (t Tool[O]) Main(args []string, stdout, stderr io.Writer) int {
	o, err := t.Parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", t.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	md, failure, err := t.Run(ctx, o, stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "%s: %s\n", t.Name, t.Interrupted)
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", t.Name, err)
		}
		return 1
	}
	if !WriteReport(stdout, stderr, t.Name, t.Out(o), md) {
		return 1
	}
	if failure != "" {
		fmt.Fprintf(stderr, "%s: %s\n", t.Name, failure)
		return 1
	}
	return 0
}

// GatewayBinary returns the tswgate binary to run: prebuilt made absolute
// or, when it is empty, one built now (`go build ./cmd/tswgate` in the
// module root, bounded to 5 minutes) into dir, saying so through logf.
// tool names the caller in the errors.
func GatewayBinary(ctx context.Context, tool, prebuilt, dir string, logf func(format string, args ...any)) (string, error) {
	if prebuilt != "" {
		return filepath.Abs(prebuilt)
	}
	root, err := moduleRoot(ctx, tool)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tswgate")
	logf("building tswgate (go build -o %s ./cmd/tswgate)", bin)
	if err := goBuild(ctx, root, bin, "./cmd/tswgate"); err != nil {
		return "", err
	}
	return bin, nil
}
