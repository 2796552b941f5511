package webhookapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/webhook"
)

// local lets projects' endpoints be the tests' loopback receivers.
var local = fixtureOptions{opts: Options{AllowHTTP: true, AllowPrivateProject: true, AllowPrivateOperator: true}}

func TestEndpointLifecycle(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { testEndpointLifecycle(t, b) })
	}
}

func testEndpointLifecycle(t *testing.T, b backend) {
	ctx := context.Background()
	f := newFixture(t, b, local)
	rcv := newReceiver(t)
	c := client(f.admin, adminKey, 42)

	ep, err := c.Create(ctx, CreateRequest{URL: rcv.srv.URL + "/hook", Types: []string{webhook.TypeTokenRevoked}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.Secret, webhook.SecretPrefix) || ep.ProjectID != 42 || !ep.Enabled {
		t.Fatalf("created %+v", ep)
	}
	got, err := c.Get(ctx, ep.ID)
	if err != nil || got.Secret != "" || got.URL != ep.URL {
		t.Fatalf("Get = %+v, %v (the secret must not show again)", got, err)
	}

	// A test message arrives signed with the secret, and its delivery
	// shows as delivered.
	d, err := c.Test(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := rcv.next(t)
	if err := webhook.Verify(ep.Secret, m.header, m.body, time.Now(), 0); err != nil {
		t.Fatalf("test message: %v", err)
	}
	var payload struct{ Type string }
	if json.Unmarshal(m.body, &payload); payload.Type != webhook.TypeTest {
		t.Errorf("test message type %q", payload.Type)
	}
	f.waitAttempt(t, d.ID)
	ds, err := c.Deliveries(ctx, ep.ID, 0)
	if err != nil || len(ds) != 1 || ds[0].State != webhook.StateDelivered || ds[0].LastStatus != 200 {
		t.Fatalf("Deliveries = %+v, %v", ds, err)
	}

	// After a rotation with a grace period, messages carry a signature
	// by each secret.
	rot, err := c.RotateSecret(ctx, ep.ID, RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if rot.Endpoint.Secret == ep.Secret || rot.Endpoint.PreviousSecretUntil == nil {
		t.Fatalf("rotated: %+v", rot.Endpoint)
	}
	if _, err := c.Test(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	m = rcv.next(t)
	if n := len(strings.Fields(m.header.Get(webhook.HeaderSignature))); n != 2 {
		t.Errorf("%d signatures during the grace period, want 2", n)
	}
	for _, s := range []string{ep.Secret, rot.Endpoint.Secret} {
		if err := webhook.Verify(s, m.header, m.body, time.Now(), 0); err != nil {
			t.Errorf("during the grace period: %v", err)
		}
	}

	// Updates apply; a disabled endpoint's test message is canceled.
	off := false
	up, err := c.Update(ctx, ep.ID, UpdateRequest{Enabled: &off, Types: &[]string{}})
	if err != nil || up.Enabled || len(up.Types) != 0 {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	d, _ = c.Test(ctx, ep.ID)
	if got := f.waitAttempt(t, d.ID); got.State != webhook.StateCanceled {
		t.Errorf("test message to a disabled endpoint: %s", got.State)
	}

	if _, err := c.Delete(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, ep.ID); apiCode(err) != "endpoint_not_found" {
		t.Errorf("Get after Delete: %v", err)
	}
	checkAudit(t, f, 42, "webhook.create", "webhook.test", "webhook.rotate", "webhook.update", "webhook.delete")
}

// publicClient is a self-service client of key on the public listener.
func publicClient(f *fixture, key string) *Client {
	c := client(f.public, key, 0)
	c.API.BaseURL += "/tswgate"
	return c
}

func apiCode(err error) string {
	var ae *tokenapi.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// checkAudit checks that project's trail holds an ok event of each action.
func checkAudit(t *testing.T, f *fixture, project int64, actions ...string) {
	t.Helper()
	page, err := f.store.ReadAudit(context.Background(), auth.AuditQuery{ProjectID: project, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range page.Events {
		if ev.Outcome == auth.OutcomeOK {
			seen[ev.Action] = true
		}
		if strings.Contains(ev.Detail, "whsec_") {
			t.Errorf("audit event holds a secret: %+v", ev)
		}
	}
	for _, a := range actions {
		if !seen[a] {
			t.Errorf("no %s in project %d's trail", a, project)
		}
	}
}

func TestReplayDeadDelivery(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b, local)
			rcv := newReceiver(t)
			rcv.status.Store(http.StatusInternalServerError)
			c := client(f.admin, adminKey, 0) // the operator's
			ep, err := c.Create(ctx, CreateRequest{URL: rcv.srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := c.Test(ctx, ep.ID)
			first := rcv.next(t)
			if got := f.waitAttempt(t, d.ID); got.State != webhook.StateDead {
				t.Fatalf("after a 500 with one attempt allowed: %s", got.State)
			}
			shown, err := c.Delivery(ctx, ep.ID, d.ID)
			if err != nil || shown.LastStatus != 500 || shown.LastError == "" || len(shown.Recent) != 1 {
				t.Fatalf("Delivery = %+v, %v", shown, err)
			}
			rcv.status.Store(0)
			if _, err := c.Replay(ctx, ep.ID, d.ID); err != nil {
				t.Fatal(err)
			}
			again := rcv.next(t)
			if a, b := again.header.Get(webhook.HeaderID), first.header.Get(webhook.HeaderID); a != b {
				t.Errorf("replayed webhook-id %s, first %s", a, b)
			}
			if got := f.waitAttempt(t, d.ID); got.State != webhook.StateDelivered {
				t.Errorf("replay: %s", got.State)
			}
			checkAudit(t, f, 0, "webhook.create", "webhook.replay")
		})
	}
}

func TestAccess(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFixture(t, b, fixtureOptions{opts: local.opts, noDisp: true})
	owner42, owner43, acct42 := f.token(t, 42, "owner"), f.token(t, 43, "owner"), f.token(t, 42, "accounting")

	// An Owner token manages its own project, on either listener.
	mine, err := client(f.admin, owner42, 42).Create(ctx, CreateRequest{URL: "https://hooks.example.com/a"})
	if err != nil {
		t.Fatal(err)
	}
	self, err := publicClient(f, owner42).Create(ctx, CreateRequest{URL: "https://hooks.example.com/b"})
	if err != nil || self.ProjectID != 42 {
		t.Fatalf("self-service create = %+v, %v", self, err)
	}
	if list, err := publicClient(f, owner42).List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("self-service list = %d, %v", len(list), err)
	}
	theirs, err := client(f.admin, owner43, 43).Create(ctx, CreateRequest{URL: "https://hooks.example.com/c"})
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, key, method, path string
		srv                     bool // public
		status                  int
		code                    string
	}{
		{"accounting token", acct42, "GET", "/v1/projects/42/webhooks", false, 403, "role_forbidden"},
		{"accounting token, public", acct42, "GET", "/tswgate/v1/webhooks", true, 403, "role_forbidden"},
		{"another project's path", owner42, "GET", "/v1/projects/43/webhooks", false, 403, "project_forbidden"},
		{"operator's endpoints", owner42, "GET", "/v1/webhooks", false, 403, "operator_only"},
		{"another project's id", owner42, "GET", "/v1/projects/42/webhooks/" + theirs.ID, false, 404, "endpoint_not_found"},
		{"unknown id", owner42, "GET", "/v1/projects/42/webhooks/ep_00000000000000000000", false, 404, "endpoint_not_found"},
		{"another project's id, public", owner42, "DELETE", "/tswgate/v1/webhooks/" + theirs.ID, true, 404, "endpoint_not_found"},
		{"another project's id by admin", adminKey, "GET", "/v1/projects/42/webhooks/" + theirs.ID, false, 404, "endpoint_not_found"},
		{"admin key on the public listener", adminKey, "GET", "/tswgate/v1/webhooks", true, 401, ""},
		{"no credential", "", "GET", "/v1/webhooks", false, 401, "missing_admin_key"},
		{"bad project", adminKey, "GET", "/v1/projects/x/webhooks", false, 400, "invalid_request"},
		{"off the API's paths", owner42, "GET", "/tswgate/v1/other", true, 404, "not_found"},
		{"bad delivery id", owner42, "GET", "/v1/projects/42/webhooks/" + mine.ID + "/deliveries/x", false, 404, "delivery_not_found"},
	} {
		srv := f.admin
		if c.srv {
			srv = f.public
		}
		status, code := send(t, srv, c.key, c.method, c.path, nil)
		if status != c.status || c.code != "" && code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
	}
	if _, err := client(f.admin, owner42, 42).Get(ctx, mine.ID); err != nil {
		t.Errorf("own endpoint: %v", err)
	}
	// Off the API's paths, the next handler (the token API) answers.
	if status, _ := send(t, f.admin, adminKey, "GET", "/v1/tokens?project_id=42", nil); status != 200 {
		t.Errorf("token API behind Or: %d", status)
	}
}

func TestEndpointLimit(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b, fixtureOptions{opts: local.opts, noDisp: true})
			c := client(f.admin, adminKey, 42)
			for i := range DefaultMaxEndpoints {
				if _, err := c.Create(context.Background(), CreateRequest{URL: "https://hooks.example.com/"}); err != nil {
					t.Fatalf("endpoint %d: %v", i+1, err)
				}
			}
			_, err := c.Create(context.Background(), CreateRequest{URL: "https://hooks.example.com/"})
			var ae *tokenapi.APIError
			if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "endpoint_limit" {
				t.Errorf("endpoint %d: %v, want 409 endpoint_limit", DefaultMaxEndpoints+1, err)
			}
		})
	}
}

// TestReplicasShareTheLimit creates endpoints through two replicas of
// the API on one Redis at once: the bound holds, and concurrent updates
// of one endpoint through both replicas all apply.
func TestReplicasShareTheLimit(t *testing.T) {
	b := backends(t)[1]
	f := newFixture(t, b, fixtureOptions{opts: local.opts, noDisp: true})
	other := httptest.NewServer(f.api(t, local.opts, f.tokOpts, ""))
	t.Cleanup(other.Close)
	replicas := []*Client{client(f.admin, adminKey, 42), client(other, adminKey, 42)}
	var created, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 2 * DefaultMaxEndpoints {
		wg.Go(func() {
			_, err := replicas[i%2].Create(context.Background(), CreateRequest{URL: "https://hooks.example.com/"})
			switch apiCode(err) {
			case "":
				created.Add(1)
			case "endpoint_limit":
				limited.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if created.Load() != DefaultMaxEndpoints || limited.Load() != DefaultMaxEndpoints {
		t.Errorf("created %d, limited %d; want %d each", created.Load(), limited.Load(), DefaultMaxEndpoints)
	}
	list, err := replicas[0].List(context.Background())
	if err != nil || len(list) != DefaultMaxEndpoints {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	id := list[0].ID
	off, types := false, []string{webhook.TypeTokenLeaked}
	wg.Go(func() {
		if _, err := replicas[0].Update(context.Background(), id, UpdateRequest{Enabled: &off}); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if _, err := replicas[1].Update(context.Background(), id, UpdateRequest{Types: &types}); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if got, _ := replicas[1].Get(context.Background(), id); got.Enabled || len(got.Types) != 1 {
		t.Errorf("after concurrent updates: enabled %v, types %v", got.Enabled, got.Types)
	}
}

// TestPrivateAddressRefusedAtDelivery: an endpoint whose host is private
// when the message is sent (a name that now resolves to the gateway's
// network, here a loopback receiver let through at creation) gets
// nothing; the operator's client may reach it.
func TestPrivateAddressRefusedAtDelivery(t *testing.T) {
	b := backends(t)[0]
	fo := local
	fo.publicOnly = true
	f := newFixture(t, b, fo)
	rcv := newReceiver(t)
	ctx := context.Background()
	ep, err := client(f.admin, adminKey, 42).Create(ctx, CreateRequest{URL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := client(f.admin, adminKey, 42).Test(ctx, ep.ID)
	got := f.waitAttempt(t, d.ID)
	if got.State != webhook.StateDead || !strings.Contains(got.Recent[0].Error, "not at a public address") || strings.Contains(got.Recent[0].Error, "127.0.0.1") {
		t.Errorf("delivery to a loopback address: %s %+v", got.State, got.Recent)
	}
	op, err := client(f.admin, adminKey, 0).Create(ctx, CreateRequest{URL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, _ = client(f.admin, adminKey, 0).Test(ctx, op.ID)
	rcv.next(t)
	if got := f.waitAttempt(t, d.ID); got.State != webhook.StateDelivered {
		t.Errorf("operator's delivery to a loopback address: %s", got.State)
	}
	select {
	case m := <-rcv.got:
		t.Errorf("the receiver got a second message: %s", m.body)
	default:
	}
}

// fakeResolver resolves names from a table.
type fakeResolver map[string]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestURLPolicy(t *testing.T) {
	b := backends(t)[0]
	resolver := fakeResolver{"hooks.example.net": "93.184.216.34", "intranet.example.net": "10.1.2.3"}
	f := newFixture(t, b, fixtureOptions{noDisp: true, opts: Options{Resolver: resolver}})
	for _, c := range []struct {
		url     string
		project int64
		ok      bool
	}{
		{"https://hooks.example.net/tsw", 42, true},
		{"https://unresolved.example.net/tsw", 42, true}, // checked again at delivery
		{"http://hooks.example.net/tsw", 42, false},
		{"https://127.0.0.1/tsw", 42, false},
		{"https://[::1]:8443/tsw", 42, false},
		{"https://localhost/tsw", 42, false},
		{"https://169.254.169.254/latest/meta-data", 42, false},
		{"https://intranet.example.net/tsw", 42, false},
		{"https://user:pw@hooks.example.net/", 42, false},
		{"ftp://hooks.example.net/", 42, false},
		{"http://hooks.example.net/tsw", 0, true}, // the operator's may use http
		{"https://10.0.0.1/tsw", 0, false},        // but not private addresses unless allowed
	} {
		_, err := client(f.admin, adminKey, c.project).Create(context.Background(), CreateRequest{URL: c.url})
		if (err == nil) != c.ok {
			t.Errorf("project %d, %s: %v, want ok %v", c.project, c.url, err, c.ok)
		}
		if err != nil && apiCode(err) != "invalid_request" {
			t.Errorf("%s: %v, want invalid_request", c.url, err)
		}
	}
	// Updates are held to the same policy.
	c := client(f.admin, adminKey, 42)
	ep, _ := c.Create(context.Background(), CreateRequest{URL: "https://hooks.example.net/"})
	bad := "https://127.0.0.1/"
	if _, err := c.Update(context.Background(), ep.ID, UpdateRequest{URL: &bad}); apiCode(err) != "invalid_request" {
		t.Errorf("update to a loopback URL: %v", err)
	}
	if got, _ := c.Get(context.Background(), ep.ID); got.URL != "https://hooks.example.net/" {
		t.Errorf("URL after a refused update: %s", got.URL)
	}
}

func TestTokenEventReachesEndpoint(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b, local)
			rcv := newReceiver(t)
			ep, err := publicClient(f, f.token(t, 42, "owner")).Create(ctx, CreateRequest{URL: rcv.srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := webhook.NewPublisher(webhook.PublisherOptions{Endpoints: f.reg.(webhook.Matcher), Queue: f.queue})
			if err != nil {
				t.Fatal(err)
			}
			tok := &auth.Token{ID: "tsw_AAAAAAAAAAAAAAAAAAAA", ProjectID: 42, Name: "ci", Role: auth.RoleOwner,
				CreatedAt: time.Now(), RevokedAt: time.Now()}
			ev := webhook.TokenRevoked(tok, webhook.Actor{Kind: "secret_scanning", ID: "github"}, time.Now())
			if n, err := pub.Publish(ctx, ev); err != nil || n != 1 {
				t.Fatalf("Publish = %d, %v", n, err)
			}
			m := rcv.next(t)
			if err := webhook.Verify(ep.Secret, m.header, m.body, time.Now(), 0); err != nil {
				t.Fatal(err)
			}
			if m.header.Get(webhook.HeaderID) != ev.ID || !strings.Contains(string(m.body), `"token.revoked"`) {
				t.Errorf("got %s: %s", m.header.Get(webhook.HeaderID), m.body)
			}
		})
	}
}

func TestStoreOutageIs503(t *testing.T) {
	srv := redistest.Start(t)
	b := backend{name: "redis", open: func(t *testing.T) (managedRegistry, webhook.Queue) {
		c := srv.Client(t)
		q, err := webhook.NewRedisQueue(webhook.RedisQueueOptions{Client: c, Prefix: "outage:"})
		if err != nil {
			t.Fatal(err)
		}
		return webhook.NewRedisRegistry(c, "outage:"), q
	}}
	var logs lockedBuffer
	fo := fixtureOptions{opts: local.opts, noDisp: true}
	fo.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	f := newFixture(t, b, fo)
	c := client(f.admin, adminKey, 42)
	ep, err := c.Create(context.Background(), CreateRequest{URL: "https://hooks.example.com/?key=receiver-credential"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, path := range []string{"/v1/projects/42/webhooks", "/v1/projects/42/webhooks/" + ep.ID, "/v1/projects/42/webhooks/" + ep.ID + "/deliveries"} {
		if status, code := send(t, f.admin, adminKey, "GET", path, nil); status != 503 || code != "store_unavailable" {
			t.Errorf("GET %s with Redis down: %d %s, want 503 store_unavailable", path, status, code)
		}
	}
	if status, _ := send(t, f.admin, adminKey, "POST", "/v1/projects/42/webhooks", CreateRequest{URL: "https://hooks.example.com/"}); status != 503 {
		t.Errorf("create with Redis down: %d", status)
	}
	for _, secret := range []string{ep.Secret, "whsec_", "receiver-credential"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "webhook.create") {
		t.Errorf("no log line of the change:\n%s", logs.String())
	}
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A refused endpoint URL whose host is a name does not say what the name
// resolved to: the gateway's resolver knows its own network's names
// (redis.internal → 10.96.0.12), and a project must not learn them.
func TestURLPolicyNamesNoResolvedAddress(t *testing.T) {
	b := backends(t)[0]
	resolver := fakeResolver{"redis.internal.example": "10.96.0.12"}
	f := newFixture(t, b, fixtureOptions{noDisp: true, opts: Options{Resolver: resolver}})
	c := client(f.admin, adminKey, 42)
	_, err := c.Create(context.Background(), CreateRequest{URL: "https://redis.internal.example/"})
	if apiCode(err) != "invalid_request" {
		t.Fatalf("create: %v, want invalid_request", err)

	}
	if !strings.Contains(err.Error(), "not at a public address") || strings.Contains(err.Error(), "10.96") {
		t.Errorf("the refusal names the internal address: %v", err)
	}
	ep, _ := c.Create(context.Background(), CreateRequest{URL: "https://unresolved.example.net/"})
	bad := "https://redis.internal.example/"
	if _, err := c.Update(context.Background(), ep.ID, UpdateRequest{URL: &bad}); err == nil || strings.Contains(err.Error(), "10.96") {
		t.Errorf("update: %v, want a refusal without the internal address", err)
	}
	// An address the caller wrote is named.
	if _, err := c.Create(context.Background(), CreateRequest{URL: "https://10.1.2.3/"}); err == nil || !strings.Contains(err.Error(), "10.1.2.3") {
		t.Errorf("create with an address: %v, want it named", err)
	}
}

// countingResolver counts look-ups and resolves nothing.
type countingResolver struct{ n atomic.Int32 }

func (r *countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.n.Add(1)
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// Numeric host forms other parsers read as IPv4 addresses (and trailing
// dots, zones, IPv4 in IPv6) are refused at creation and update, without
// a look-up, naming the field and the fix; the operator's endpoints too,
// even where they may be private.
func TestURLPolicyRefusesAmbiguousHosts(t *testing.T) {
	b := backends(t)[0]
	resolver := &countingResolver{}
	opts := Options{Resolver: resolver, AllowPrivateOperator: true}
	f := newFixture(t, b, fixtureOptions{noDisp: true, opts: opts})
	ctx := context.Background()
	bad := []string{"https://127.1/", "https://2130706433/", "https://0x7f.1/", "https://0177.0.0.1/",
		"https://127.0.0.1./", "https://hooks.example.com./", "https://[fe80::1%25eth0]/", "https://[::ffff:127.0.0.1]/"}
	for _, project := range []int64{42, 0} {
		c := client(f.admin, adminKey, project)
		for _, u := range bad {
			_, err := c.Create(ctx, CreateRequest{URL: u})
			if apiCode(err) != "invalid_request" || !strings.Contains(err.Error(), "url: ") ||
				!strings.Contains(err.Error(), "dotted-quad public address") {
				t.Errorf("project %d, create %s: %v, want invalid_request naming url and the fix", project, u, err)
			}
		}
	}
	ep, err := client(f.admin, adminKey, 42).Create(ctx, CreateRequest{URL: "https://8.8.8.8/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range bad {
		if _, err := client(f.admin, adminKey, 42).Update(ctx, ep.ID, UpdateRequest{URL: &u}); apiCode(err) != "invalid_request" {
			t.Errorf("update to %s: %v, want invalid_request", u, err)
		}
	}
	if n := resolver.n.Load(); n != 0 {
		t.Errorf("%d look-ups, want none", n)
	}
}

// An endpoint whose queue holds the most undelivered messages shows it,
// and a test message to it is refused (409 queue_full) rather than
// dropped silently.
func TestQueueFullShows(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b, fixtureOptions{noDisp: true, opts: local.opts})
			c := client(f.admin, adminKey, 42)
			ep, err := c.Create(ctx, CreateRequest{URL: "https://hooks.example.com/"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Get(ctx, ep.ID)
			if err != nil || got.Queue == nil || got.Queue.Pending != 0 || got.Queue.Full ||
				got.Queue.MaxPending != webhook.DefaultMaxPending {
				t.Fatalf("Get = %+v, %v; want an empty queue", got.Queue, err)
			}
			e, _ := f.reg.Get(ctx, ep.ID)
			dead := endedDelivery(t, f, e)
			ds := make([]*webhook.Delivery, webhook.DefaultMaxPending)
			for i := range ds {
				if ds[i], err = webhook.NewTestDelivery(e, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.queue.Enqueue(ctx, ds...); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Test(ctx, ep.ID); apiCode(err) != "queue_full" {
				t.Errorf("test message to a full queue: %v, want queue_full", err)
			}
			_, err = c.Replay(ctx, ep.ID, dead.ID)
			if apiCode(err) != "queue_full" || !strings.Contains(err.Error(), "1000 undelivered") {
				t.Errorf("replay to a full queue: %v, want queue_full naming 1000 undelivered", err)
			}
			list, err := c.List(ctx)
			if err != nil || len(list) != 1 || list[0].Queue == nil {
				t.Fatalf("List = %+v, %v", list, err)
			}
			q := list[0].Queue
			if q.Pending != webhook.DefaultMaxPending || !q.Full || q.Dropped != 1 || q.LastDroppedAt == nil {
				t.Errorf("queue %+v, want full, 1 dropped", q)
			}
		})
	}
}

// endedDelivery queues a test message to e and records it dead, as the
// dispatcher would after its last attempt.
func endedDelivery(t *testing.T, f *fixture, e *webhook.Endpoint) *webhook.Delivery {
	t.Helper()
	ctx := context.Background()
	d, err := webhook.NewTestDelivery(e, time.Now())
	if err == nil {
		err = f.queue.Enqueue(ctx, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	ds, err := f.queue.(webhook.Leaser).Lease(ctx, "test", 1, waitTimeout)
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID {
		t.Fatalf("Lease = %v, %v; want %s", ds, err, d.ID)
	}
	ds[0].State = webhook.StateDead
	if err := f.queue.(webhook.Leaser).Complete(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	return d
}

// On the operator's endpoint, which receives every project's events, a
// project's share is bounded: the queue shows it, and a test message or
// a replay over it is refused (409 project_queue_full).
func TestProjectShareShows(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b, fixtureOptions{noDisp: true, opts: local.opts})
			c := client(f.admin, adminKey, 0)
			ep, err := c.Create(ctx, CreateRequest{URL: "https://ops.example.com/"})
			if err != nil {
				t.Fatal(err)
			}
			e, _ := f.reg.Get(ctx, ep.ID)
			dead := endedDelivery(t, f, e)
			ds := make([]*webhook.Delivery, webhook.DefaultMaxPendingPerProject)
			for i := range ds {
				if ds[i], err = webhook.NewTestDelivery(e, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.queue.Enqueue(ctx, ds...); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Test(ctx, ep.ID); apiCode(err) != "project_queue_full" {
				t.Errorf("test message over the project's share: %v, want project_queue_full", err)
			}
			if _, err := c.Replay(ctx, ep.ID, dead.ID); apiCode(err) != "project_queue_full" {
				t.Errorf("replay over the project's share: %v, want project_queue_full", err)
			}
			got, err := c.Get(ctx, ep.ID)
			if err != nil || got.Queue == nil || got.Queue.Full || got.Queue.Dropped != 1 ||
				got.Queue.MaxPendingPerProject != webhook.DefaultMaxPendingPerProject || got.Queue.DroppedProjectQueueFull != 1 {
				t.Errorf("Get = %+v, %v; want the project's share shown, 1 dropped for it", got.Queue, err)
			}
		})
	}
}
