package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tswgate/tswgate/internal/devtool"
)

// The reference targets (-ref): nginx and haproxy, each configured as a
// minimal token gateway in front of the same upstream. Both hold a static
// map of refTokens valid credentials (the benchmark's token among them),
// answer 401 to anything else, and keep a pool of keep-alive connections
// to the upstream. haproxy also counts every token's request rate in a
// stick table and refuses above a limit no run reaches, the cheapest
// stand-in for a rate limit.
const refTokens = 1000

// refKeepalive is the upstream keep-alive pool of the reference servers,
// the same as the load's connection count by default.
const refKeepalive = 64

// findTool returns the path of the program name. When it is missing and
// install is set, it tries `apt-get update` and `apt-get install -y pkg`
// (as root only), logging to progress, and looks again.
func findTool(ctx context.Context, name, pkg string, install bool, progress io.Writer) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if !install {
		return "", fmt.Errorf("%s is not installed (Debian: apt-get install %s)", name, pkg)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s is not installed and we are not root to install it (Debian: sudo apt-get install %s)", name, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%s is not installed and there is no apt-get to install it", name)
	}
	fmt.Fprintf(progress, "tswbench: %s is missing; installing %s with apt-get (at most 5 minutes)\n", name, pkg)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "--no-install-recommends", pkg}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, devtool.Tail(string(out), 10))
		}
	}
	return exec.LookPath(name)
}

// refCredentials returns refTokens Authorization values: the benchmark's
// own token first, then random ones of the same shape.
func refCredentials(token string) []string {
	creds := []string{"Bearer " + token}
	for len(creds) < refTokens {
		creds = append(creds, "Bearer tsw_"+devtool.RandomHex(24))
	}
	return creds
}

// nginxConfig returns an nginx configuration serving on listen as a token
// gateway in front of upstream (host:port), with its scratch files under
// dir. One process (master_process off), so that its pid's CPU times are
// all of nginx's.
func nginxConfig(listen, upstream, dir string, creds []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log stderr warn;\n", dir)
	w("events { worker_connections 4096; }\n")
	w("http {\n  access_log off;\n  map_hash_bucket_size 128;\n")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("  %s_temp_path %s/%s;\n", t, dir, t)
	}
	w("  map $http_authorization $tsw_ok {\n    default 0;\n")
	for _, c := range creds {
		w("    %q 1;\n", c)
	}
	w("  }\n")
	w("  upstream teraswitch { server %s; keepalive %d; }\n", upstream, refKeepalive)
	w("  server {\n    listen %s;\n    keepalive_requests 1000000;\n", listen)
	w("    location / {\n      if ($tsw_ok = 0) { return 401; }\n")
	w("      proxy_pass http://teraswitch;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n")
	w("    }\n  }\n}\n")
	return b.String()
}

// haproxyConfig returns a haproxy configuration serving on listen as a
// token gateway in front of upstream (host:port): the valid credentials
// in the ACL file aclPath, a stick table counting each token's request
// rate, one thread.
func haproxyConfig(listen, upstream, aclPath string) string {
	return fmt.Sprintf(`global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  option http-keep-alive
frontend gateway
  bind %s
  stick-table type string len 96 size 4k expire 60s store http_req_rate(10s)
  acl tsw_ok req.hdr(authorization) -f %s
  http-request deny deny_status 401 unless tsw_ok
  http-request track-sc0 req.hdr(authorization)
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
  default_backend teraswitch
backend teraswitch
  http-reuse always
  server up %s maxconn %d
`, listen, aclPath, upstream, refKeepalive)
}

// startRefs installs (when root and missing) and starts nginx and haproxy
// on CPU 0 in front of upAddr, and returns their children and targets.
func (b *bench) startRefs(ctx context.Context, upAddr, token string) ([]*devtool.Child, []target, error) {
	nginx, err := findTool(ctx, "nginx", "nginx", true, b.log)
	if err != nil {
		return nil, nil, fmt.Errorf("-ref: %w", err)
	}
	haproxy, err := findTool(ctx, "haproxy", "haproxy", true, b.log)
	if err != nil {
		return nil, nil, fmt.Errorf("-ref: %w", err)
	}
	addrs, err := b.procs.FreePorts(2)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(b.tmp, "ref")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	creds := refCredentials(token)
	nginxConf := filepath.Join(dir, "nginx.conf")
	aclPath := filepath.Join(dir, "tokens.acl")
	haproxyConf := filepath.Join(dir, "haproxy.cfg")
	for path, text := range map[string]string{
		nginxConf:   nginxConfig(addrs[0], upAddr, dir, creds),
		aclPath:     strings.Join(creds, "\n") + "\n",
		haproxyConf: haproxyConfig(addrs[1], upAddr, aclPath),
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, nil, err
		}
	}
	ng, err := b.startServer("nginx", nginx, "-p", dir, "-c", nginxConf, "-e", "stderr")
	if err != nil {
		return nil, nil, err
	}
	hp, err := b.startServer("haproxy", haproxy, "-f", haproxyConf)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range []struct {
		child *devtool.Child
		addr  string
	}{{ng, addrs[0]}, {hp, addrs[1]}} {
		if err := waitListening(ctx, c.child, c.addr, 10*time.Second); err != nil {
			return nil, nil, err
		}
	}
	b.logf("nginx on %s, haproxy on %s (%d-token map each)", addrs[0], addrs[1], len(creds))
	return []*devtool.Child{ng, hp}, []target{
		{name: "nginx (token map, keep-alive upstream)", url: "http://" + addrs[0] + benchPath, auth: true, child: ng},
		{name: "haproxy (ACL file, stick-table limit)", url: "http://" + addrs[1] + benchPath, auth: true, child: hp},
	}, nil
}

// waitListening waits, up to timeout, until addr accepts connections,
// failing early with c's log when c exits.
func waitListening(ctx context.Context, c *devtool.Child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
		if gone, why := c.Exited(); gone {
			return errors.New(why)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v; its log ends with:\n%s", c.Name, addr, timeout, c.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
