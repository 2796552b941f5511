package webhookapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/webhook"
)

const adminKey = "webhookapi-test-admin-key-0123456789abcdef"

// waitTimeout bounds every wait for a signal; it only decides how long a
// broken test hangs.
const waitTimeout = 30 * time.Second

// backend is a registry and a queue of one kind.
type backend struct {
	name  string
	open  func(t *testing.T) (managedRegistry, webhook.Queue)
	redis bool
}

type managedRegistry interface {
	Registry
	webhook.EndpointSource
}

var prefixes atomic.Int64

func backends(parent *testing.T) []backend {
	var srv *redistest.Server
	return []backend{
		{name: "file", open: func(t *testing.T) (managedRegistry, webhook.Queue) {
			dir := t.TempDir()
			reg, err := webhook.OpenFileRegistry(filepath.Join(dir, "endpoints.json"))
			if err != nil {
				t.Fatal(err)
			}
			q, err := webhook.OpenFileQueue(webhook.FileQueueOptions{Path: filepath.Join(dir, "webhooks.queue")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = q.Close() })
			return reg, q
		}},
		{name: "redis", redis: true, open: func(t *testing.T) (managedRegistry, webhook.Queue) {
			if srv == nil {
				srv = redistest.Start(parent)
			}
			c := srv.Client(t)
			prefix := fmt.Sprintf("whapi%d:", prefixes.Add(1))
			q, err := webhook.NewRedisQueue(webhook.RedisQueueOptions{Client: c, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return webhook.NewRedisRegistry(c, prefix), q
		}},
	}
}

// fixture is the webhook API on the admin and public listeners, in front
// of the token API, with a dispatcher delivering its queue.
type fixture struct {
	store  *filestore.Store
	reg    managedRegistry
	queue  webhook.Queue
	admin  *httptest.Server
	public *httptest.Server
	tokens *tokenapi.Client
	// tokOpts configure the admin listener's authorizer.
	tokOpts tokenapi.Options
	// attempts receives every delivery attempt the dispatcher made,
	// after it was recorded.
	attempts chan *webhook.Delivery
}

type fixtureOptions struct {
	opts   Options // URL policy and limits
	noDisp bool
	// maxAttempts of the dispatcher (default 1: a failure is dead at once).
	maxAttempts int
	// publicOnly gives the dispatcher the production client for projects'
	// endpoints, which dials public addresses only.
	publicOnly bool
}

func newFixture(t *testing.T, b backend, fo fixtureOptions) *fixture {
	t.Helper()
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	valid, err := auth.NewValidator(auth.ValidatorOptions{Store: st, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(valid.Close)
	hasher := storetest.NewHasher(t)
	authn := &auth.Authenticator{Validator: valid, Hasher: hasher}
	f := &fixture{store: st, attempts: make(chan *webhook.Delivery, 1000)}
	f.reg, f.queue = b.open(t)

	tokOpts := tokenapi.Options{Store: st, Hasher: hasher, Tokens: authn, AdminKeys: []string{adminKey}, Invalidate: valid.Invalidate}
	tokAPI, err := tokenapi.New(tokOpts)
	if err != nil {
		t.Fatal(err)
	}
	f.tokOpts = tokOpts
	f.admin = httptest.NewServer(f.api(t, fo.opts, tokOpts, "").Or(tokAPI))
	t.Cleanup(f.admin.Close)
	pubOpts := tokOpts
	pubOpts.AdminKeys = nil
	f.public = httptest.NewServer(f.api(t, fo.opts, pubOpts, "/tswgate"))
	t.Cleanup(f.public.Close)
	f.tokens = &tokenapi.Client{BaseURL: f.admin.URL, AdminKey: adminKey, HTTP: f.admin.Client()}
	if !fo.noDisp {
		f.dispatch(t, fo)
	}
	return f
}

func (f *fixture) api(t *testing.T, o Options, tokOpts tokenapi.Options, prefix string) *Handler {
	t.Helper()
	z, err := tokenapi.NewAuthorizer(tokOpts)
	if err != nil {
		t.Fatal(err)
	}
	o.Endpoints, o.Queue, o.Auth, o.Audit, o.Prefix = f.reg, f.queue, z, f.store, prefix
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type observer chan *webhook.Delivery

func (observer) Published(string, int) {}
func (observer) Dropped(string, int)   {}
func (o observer) Attempted(d *webhook.Delivery, _ webhook.Attempt) {
	c := *d
	o <- &c
}

func (f *fixture) dispatch(t *testing.T, fo fixtureOptions) {
	t.Helper()
	d, err := webhook.NewDispatcher(webhook.DispatcherOptions{
		Queue: f.queue.(webhook.Leaser), Endpoints: f.reg,
		Client:         webhook.NewClient(webhook.ClientOptions{AllowPrivate: !fo.publicOnly, Timeout: 5 * time.Second}),
		OperatorClient: webhook.NewClient(webhook.ClientOptions{AllowPrivate: true, Timeout: 5 * time.Second}),
		Poll:           50 * time.Millisecond,
		MaxAttempts:    max(fo.maxAttempts, 1),
		Observer:       observer(f.attempts),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitAttempt waits for the next attempt of delivery id.
func (f *fixture) waitAttempt(t *testing.T, id string) *webhook.Delivery {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case d := <-f.attempts:
			if d.ID == id {
				return d
			}
		case <-timeout:
			t.Fatalf("no attempt of %s", id)
		}
	}
}

// token creates a token of project with role and returns its credential.
func (f *fixture) token(t *testing.T, project int64, role string) string {
	t.Helper()
	tok, err := f.tokens.Create(context.Background(), tokenapi.CreateRequest{ProjectID: project, Role: role, Name: "hooks"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// client is a webhook API client with key on srv for project.
func client(srv *httptest.Server, key string, project int64) *Client {
	return &Client{API: &tokenapi.Client{BaseURL: srv.URL, AdminKey: key, HTTP: srv.Client()}, ProjectID: project}
}

// send sends a raw request and returns the status and error code.
func send(t *testing.T, srv *httptest.Server, key, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e tokenapi.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code
}

// message is one request a receiver got.
type message struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP endpoint that hands every message to the test
// and answers status (200 when 0).
type receiver struct {
	srv    *httptest.Server
	got    chan message
	status atomic.Int64
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan message, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.got <- message{req.Header.Clone(), body}
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("the receiver got no message")
		return message{}
	}
}
