package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/edge"
	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/teraswitch"
)

// quickstartProject is the project id of the quickstart's tokens.
const quickstartProject = 42

// quickstart runs the gateway with its defaults in front of a stand-in
// TeraSwitch API on loopback, creates an Owner and an Accounting token and
// prints curl commands to try them.
func quickstart(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tswgate quickstart", flag.ContinueOnError)
	useTLS := fs.Bool("tls", false, "serve HTTPS (and HTTP/2) with a self-signed certificate for localhost, made in TSWGATE_DATA_DIR")
	pos, err := parseFlags("quickstart", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"quickstart takes no arguments, got " + strings.Join(pos, " ")}
	}
	cfg, err := config.Load("", environ)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *useTLS && cfg.TLSCertFile == "" {
		if cfg.TLSCertFile, cfg.TLSKeyFile, err = edge.SelfSigned(cfg.DataDir); err != nil {
			return fmt.Errorf("quickstart --tls: %w", err)
		}
	}
	stderr = &lockedWriter{w: stderr} // shared by the log and the access log
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the stand-in API: %w", err)
	}
	standin := &http.Server{Handler: teraswitch.NewStandin(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = standin.Serve(ln) }()
	defer standin.Close()
	upstream := &url.URL{Scheme: "http", Host: ln.Addr().String()}

	g, err := gateway.Start(ctx, cfg, gateway.StartOptions{Logger: logger, Upstream: upstream, AccessLog: stderr})
	if err != nil {
		return err
	}
	owner, err := g.CreateToken(ctx, quickstartProject, auth.RoleOwner, "quickstart-owner", "quickstart")
	if err == nil {
		var acct string
		acct, err = g.CreateToken(ctx, quickstartProject, auth.RoleAccounting, "quickstart-accounting", "quickstart")
		if err == nil {
			printQuickstart(stdout, g, upstream, owner, acct)
		}
	}
	if err != nil {
		return errors.Join(fmt.Errorf("creating the quickstart tokens: %w", err), g.Shutdown(context.Background()))
	}
	return waitAndShutdown(ctx, g, cfg, logger)
}

func printQuickstart(w io.Writer, g *gateway.Gateway, upstream *url.URL, owner, acct string) {
	gw := "http://" + hostPort(g.Addr("public"))
	curl := "curl -s"
	if cert := g.Config().TLSCertFile; cert != "" {
		_, port, _ := net.SplitHostPort(g.Addr("public"))
		gw, curl = "https://localhost:"+port, "curl -s --cacert "+cert
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ntswgate is running in front of a stand-in TeraSwitch API (%s).\n\n  gateway     %s\n", upstream, gw)
	b.WriteString(adminLine(g) + consoleLine(g, gw) + metricsLine(g))
	fmt.Fprintf(&b, `
Two tokens for project %d (their secrets are shown only now):

  export OWNER=%s
  export ACCOUNTING=%s

Try them:

  curl -s -H "Authorization: Bearer $OWNER" "%s/v2/Instance?ProjectId=%d"        # 200: owner may do anything in its project
  curl -s -H "Authorization: Bearer $ACCOUNTING" %s/v2/Invoice                   # 200: accounting may read billing
  curl -s -H "Authorization: Bearer $ACCOUNTING" "%s/v2/Instance?ProjectId=%d"   # 403 permission_denied
  curl -s -H "Authorization: Bearer $OWNER" "%s/v2/Instance?ProjectId=7"         # 403 project_mismatch
  curl -s %s/v2/Instance                                                         # 401 missing_token
`,
		quickstartProject, owner, acct, gw, quickstartProject, gw, gw, quickstartProject, gw, gw)
	acctID, _, _ := strings.Cut(acct, ":")
	b.WriteString(manageText(g, gw, acctID))
	b.WriteString("\nPress Ctrl-C to stop.\n")
	out := strings.ReplaceAll(b.String(), "  curl -s ", "  "+curl+" ")
	out = strings.ReplaceAll(out, "  go run ./cmd/tswgate ", "  "+cliEnv(g)+"go run ./cmd/tswgate ")
	io.WriteString(w, out)
}

// adminLine names the admin API's address and key, or says that it is
// off and how to turn it on.
func adminLine(g *gateway.Gateway) string {
	if g.Addr("admin") == "" {
		return fmt.Sprintf("  admin API   off (TSWGATE_ADMIN_ADDR is empty); the token CLI and the admin console need it:\n"+
			"              restart with TSWGATE_ADMIN_ADDR=%s\n", defaultAdminAddr)
	}
	return fmt.Sprintf("  admin API   http://%s   (admin key: %s)\n", hostPort(g.Addr("admin")), adminKeySource(g))
}

// metricsLine names the metrics address, or says that it is off.
func metricsLine(g *gateway.Gateway) string {
	if g.Addr("metrics") == "" {
		return "  metrics     off (TSWGATE_METRICS_ADDR is empty)\n"
	}
	return fmt.Sprintf("  metrics     http://%s/metrics\n", hostPort(g.Addr("metrics")))
}

// manageText says how to manage the tokens: with the CLI through the
// admin API (revoking the Accounting token, acctID), and with the Owner token through self-service, each when it
// is served.
func manageText(g *gateway.Gateway, gw, acctID string) string {
	admin, self := g.Addr("admin") != "", g.Config().SelfService
	selfCurl := fmt.Sprintf("  curl -s -H \"Authorization: Bearer $OWNER\" %s%s/v1/tokens\n", gw, gateway.SelfServicePrefix)
	var b strings.Builder
	switch {
	case admin:
		fmt.Fprintf(&b, `
Manage tokens (in another shell, from this directory):

  go run ./cmd/tswgate token list --project %d
  go run ./cmd/tswgate token revoke %s   # the Accounting token: 401 token_revoked from now on
  go run ./cmd/tswgate audit --project %d
`, quickstartProject, acctID, quickstartProject)
		if self {
			b.WriteString("\nor with the Owner token itself, on the gateway (its own project only):\n\n" + selfCurl)
		}
	case self:
		b.WriteString("\nManage tokens with the Owner token itself, on the gateway (its own project only):\n\n" + selfCurl)
	default:
		b.WriteString("\nThe admin API and self-service (TSWGATE_SELF_SERVICE) are both off: no way to manage tokens is served.\n")
	}
	return b.String()
}

// cliEnv is what the printed CLI commands need in another shell to reach
// this gateway's admin API with its key, beyond the CLI's defaults: the
// admin URL when the admin listener is not on its default address, and
// the data directory holding the generated admin key when it is not the
// default one. With a configured admin key the CLI needs
// TSWGATE_ADMIN_KEY as well, which is not printed.
func cliEnv(g *gateway.Gateway) string {
	var env []string
	if admin := hostPort(g.Addr("admin")); admin != "" && admin != defaultAdminAddr {
		env = append(env, "TSWGATE_ADMIN_URL="+shellQuote("http://"+admin))
	}
	if p := g.AdminKeyPath; p != "" && filepath.Dir(p) != filepath.Clean(config.Defaults().DataDir) {
		env = append(env, "TSWGATE_DATA_DIR="+shellQuote(filepath.Dir(p)))
	}
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}

// shellQuote quotes s for a POSIX shell when it holds more than letters,
// digits and /._:-.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._:-", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// consoleLine names the web console's address, when it is served.
func consoleLine(g *gateway.Gateway, gw string) string {
	if !g.Config().Console {
		return ""
	}
	var s string
	if g.Addr("admin") != "" {
		s = fmt.Sprintf("  web console http://%s/console/   (sign in with the admin key, project %d)\n",
			hostPort(g.Addr("admin")), quickstartProject)
	}
	if g.Config().SelfService {
		s += fmt.Sprintf("  web console %s%s/   (self-service: sign in with the Owner token below)\n",
			gw, gateway.PublicConsolePrefix)
	}
	return s
}

func adminKeySource(g *gateway.Gateway) string {
	if g.AdminKeyPath != "" {
		return g.AdminKeyPath
	}
	return "TSWGATE_ADMIN_KEY"
}

// hostPort turns a wildcard listen address into one a local curl can use.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}
