package devtool

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/teraswitch"
)

// moduleRoot returns the directory of the go.mod of the current directory,
// where `go build ./cmd/tswgate` must run. tool names the caller in the
// errors ("run TOOL from the tswgate repository").
func moduleRoot(ctx context.Context, tool string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (is the go command on PATH?)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run %s from the tswgate repository", tool)
	}
	root := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(root, "cmd", "tswgate")); err != nil {
		return "", fmt.Errorf("%s has no cmd/tswgate: run %s from the tswgate repository", root, tool)
	}
	return root, nil
}

// goBuild runs `go build -o out pkg` in dir, bounded to 5 minutes.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s failed (%v):\n%s", pkg, err, bytes.TrimSpace(msg))
	}
	return nil
}

// environWithout returns the environment less the variables whose names
// start with prefix, so that settings in the caller's shell cannot change
// the gateways under test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls url until it answers 200, c exits, or timeout passes.
func waitReady(ctx context.Context, c *Child, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	last := "no answer yet"
	return poll(ctx, c, timeout, 50*time.Millisecond, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true, nil
		}
		last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		return false, nil
	}, func() error {
		return fmt.Errorf("%s not ready within %v: GET %s: %s; its log ends with:\n%s", c.Name, timeout, url, last, c.LogTail(20))
	})
}

// GatewaySpec says how to start a `tswgate serve`.
type GatewaySpec struct {
	Name    string   // the child's name, for its log and errors
	Argv    []string // the command, such as {bin, "serve"} (possibly behind taskset)
	DataDir string   // TSWGATE_DATA_DIR
	// Env are more TSWGATE_* settings; they come after the addresses and
	// the data directory, so they win.
	Env []string
}

// Gateway is a running `tswgate serve`, ready.
type Gateway struct {
	Proc    *Child
	Public  string // host:port of each listener
	Admin   string
	Metrics string
}

// StartGateway starts a gateway under p on three free loopback ports, with
// the caller's TSWGATE_* variables left out of its environment, and waits
// until its /readyz answers 200.
func StartGateway(ctx context.Context, p *Procs, spec GatewaySpec) (*Gateway, error) {
	ports, err := p.FreePorts(3)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Public: ports[0], Admin: ports[1], Metrics: ports[2]}
	env := append(environWithout("TSWGATE_"),
		"TSWGATE_LISTEN_ADDR="+g.Public,
		"TSWGATE_ADMIN_ADDR="+g.Admin,
		"TSWGATE_METRICS_ADDR="+g.Metrics,
		"TSWGATE_DATA_DIR="+spec.DataDir,
	)
	env = append(env, spec.Env...)
	if g.Proc, err = p.Start(spec.Name, env, spec.Argv...); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, g.Proc, "http://"+g.Metrics+"/readyz", 30*time.Second); err != nil {
		return nil, err
	}
	return g, nil
}

// AdminClient returns a client of g's token API. hc nil means
// http.DefaultClient.
func (g *Gateway) AdminClient(adminKey string, hc *http.Client) *tokenapi.Client {
	return &tokenapi.Client{BaseURL: "http://" + g.Admin, AdminKey: adminKey, HTTP: hc}
}

// CreateToken creates a token through admin and returns it, failing when
// the answer carries no id or credential.
func CreateToken(ctx context.Context, admin *tokenapi.Client, project int64, role, name string) (tokenapi.Token, error) {
	t, err := admin.Create(ctx, tokenapi.CreateRequest{ProjectID: project, Role: role, Name: name})
	if err != nil {
		return t, err
	}
	if t.ID == "" || t.Token == "" {
		return t, errors.New("the answer has no id or credential")
	}
	return t, nil
}

// StartStandin serves the stand-in TeraSwitch API on a free loopback port
// and returns its URL and a function that stops it. idle is the server's
// IdleTimeout (0: none).
func StartStandin(idle time.Duration) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: teraswitch.NewStandin(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// LoopbackClient returns an HTTP client for loopback calls that keeps up
// to conns connections alive and uses no proxy.
func LoopbackClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// Call sends GET url with the credential and returns the status and the
// X-Tsw-Error-Code header; the body is read and discarded so that the
// connection is reused.
func Call(ctx context.Context, c *http.Client, url, cred string) (status int, code string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Tsw-Error-Code"), err
}

// RandomHex returns n random bytes in hex: a fresh secret per run.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
