package gateway

// Phase 3b: events — webhook endpoints and their durable queue, the
// publication of every token change as an event, delivery, and the
// secret-scanning and revoke-by-value endpoints that revoke leaked tokens.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
	"github.com/tswgate/tswgate/proxy"
	"github.com/tswgate/tswgate/secretscan"
	"github.com/tswgate/tswgate/webhook"
	"github.com/tswgate/tswgate/webhook/webhookapi"
)

// Where the public listener serves leak reports (outside the token API's
// authentication: each has its own verification).
const (
	SecretScanningPath = SelfServicePrefix + "/v1/secret-scanning/github"
	PublicRevokePath   = SelfServicePrefix + "/v1/credentials/revoke"
)

// hookStore is what the webhook parts need of an endpoint registry and a
// delivery queue, which both stores have a kind of.
type (
	hookRegistry interface {
		webhookapi.Registry
		webhook.Matcher
		webhook.EndpointSource
	}
	hookQueue interface {
		webhookapi.Queue
		webhook.Enqueuer
		webhook.Leaser
	}
)

// events is the gateway's event machinery. With TSWGATE_WEBHOOKS off it
// publishes nothing: audit is the store itself, record only counts usage,
// and leaks are revoked and recorded without events.
type events struct {
	registry hookRegistry // nil when webhooks are off
	queue    hookQueue
	audit    auth.ActivityStore // the store, its AppendAudit publishing events
	record   proxy.UsageRecorder
	onLeak   func(context.Context, secretscan.Leak)
	run      []func(context.Context)
	closers  []io.Closer
}

// newEvents builds the event machinery for the gateway's store.
func (g *Gateway) newEvents() error {
	g.events = events{audit: g.store, record: g.usage, onLeak: func(context.Context, secretscan.Leak) {}}
	if !g.cfg.Webhooks {
		return nil
	}
	ev := &g.events
	if err := g.openWebhookStore(ev); err != nil {
		return err
	}
	logger := g.log.With(slog.String("component", "webhook"))
	var once webhook.Once = &webhook.MemoryOnce{}
	if g.rdb != nil {
		once = webhook.NewRedisOnce(g.rdb, g.cfg.RedisPrefix)
	}
	pub, err := webhook.NewPublisher(webhook.PublisherOptions{Endpoints: ev.registry, Queue: ev.queue, Once: once,
		Observer: g.metrics.hooks, Logger: logger})
	if err != nil {
		return err
	}
	ev.audit = tappedStore{ActivityStore: g.store, tap: &webhook.AuditTap{Next: g.store, Tokens: g.store, Publisher: pub, Logger: logger}}
	ev.onLeak = func(ctx context.Context, l secretscan.Leak) {
		leak := webhook.Leak{Reporter: orReporter(l), URL: l.URL, Source: l.Source, Revoked: l.Revoked}
		if _, err := pub.Publish(ctx, webhook.TokenLeaked(l.Token, leak, time.Now())); err != nil {
			logger.Warn("token.leaked not published", "token_id", l.Token.ID, "err", err)
		}
	}
	watch, err := webhook.NewRateLimitWatch(webhook.RateLimitWatchOptions{Tokens: g.store, Publisher: pub,
		Threshold: g.cfg.WebhookRateLimitedThreshold, Logger: logger})
	if err != nil {
		return err
	}
	ev.record = usageTee{g.usage, watch}
	disp, err := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: ev.queue, Endpoints: ev.registry,
		OperatorClient: webhook.NewClient(webhook.ClientOptions{AllowPrivate: g.cfg.WebhookPrivateOperator}),
		Observer:       g.metrics.hooks, Logger: logger})
	if err != nil {
		return err
	}
	ev.run = append(ev.run, watch.Run, func(ctx context.Context) { _ = disp.Run(ctx) },
		func(ctx context.Context) { g.publishExpiring(ctx, pub) })
	return nil
}

// publishExpiring publishes token.expiring for the tokens coming within
// the store's warning window, every TSWGATE_EXPIRY_SWEEP_INTERVAL: the
// store hands each warning to one replica.
func (g *Gateway) publishExpiring(ctx context.Context, pub webhook.EventPublisher) {
	repeat(ctx, g.cfg.ExpirySweepInterval, func(now time.Time) {
		if _, err := webhook.PublishExpiring(ctx, g.store, pub, now); err != nil && ctx.Err() == nil {
			g.log.Warn("publishing token.expiring events failed; retrying at the next sweep", slog.String("err", err.Error()))
		}
	})
}

func orReporter(l secretscan.Leak) string {
	if l.Reporter != "" {
		return l.Reporter
	}
	return l.ActorKind
}

// openWebhookStore opens the endpoint registry and the delivery queue:
// in Redis beside the tokens, or files in the data directory.
func (g *Gateway) openWebhookStore(ev *events) error {
	logger := g.log.With(slog.String("component", "webhook"))
	if g.rdb != nil {
		q, err := webhook.NewRedisQueue(webhook.RedisQueueOptions{Client: g.rdb, Prefix: g.cfg.RedisPrefix,
			MaxPending: g.cfg.WebhookMaxPending, MaxPendingPerProject: g.cfg.WebhookMaxPendingPerProject, Logger: logger})
		if err != nil {
			return fmt.Errorf("webhook queue: %w", err)
		}
		ev.registry, ev.queue = webhook.NewRedisRegistry(g.rdb, g.cfg.RedisPrefix), q
		return nil
	}
	reg, err := webhook.OpenFileRegistry(filepath.Join(g.cfg.DataDir, "webhook-endpoints.json"))
	if err != nil {
		return fmt.Errorf("TSWGATE_DATA_DIR: webhook endpoints: %w", err)
	}
	q, err := webhook.OpenFileQueue(webhook.FileQueueOptions{Path: filepath.Join(g.cfg.DataDir, "webhooks.queue"),
		MaxPending: g.cfg.WebhookMaxPending, MaxPendingPerProject: g.cfg.WebhookMaxPendingPerProject, Logger: logger})
	if err != nil {
		return fmt.Errorf("TSWGATE_DATA_DIR: webhook queue: %w", err)
	}
	ev.registry, ev.queue = reg, q
	ev.closers = append(ev.closers, q)
	return nil
}

// webhookAPI returns the webhook API for the token API's authorizer (the
// admin listener's or self-service's), in front of next; next alone when
// webhooks are off.
func (g *Gateway) webhookAPI(z webhookapi.Authorizer, prefix string, next http.Handler) (http.Handler, error) {
	if g.events.registry == nil {
		return next, nil
	}
	h, err := webhookapi.New(webhookapi.Options{Endpoints: g.events.registry, Queue: g.events.queue, Auth: z,
		Audit: g.events.audit, Prefix: prefix, AllowPrivateOperator: g.cfg.WebhookPrivateOperator,
		Logger: g.log.With(slog.String("component", "webhook-api"))})
	if err != nil {
		return nil, err
	}
	return h.Or(next), nil
}

// leakRoutes returns the leak report endpoints of the public listener,
// by path.
func (g *Gateway) leakRoutes(trusted []netip.Prefix) (map[string]exactRoute, error) {
	routes := map[string]exactRoute{}
	opts := secretscan.Options{Tokens: g.store, Revoker: g.store, Verifier: g.hasher, Audit: g.events.audit,
		Invalidate: g.valid.Invalidate, OnLeak: g.events.onLeak, Observer: g.metrics.leaks,
		Logger: g.log.With(slog.String("component", "secret-scanning"))}
	if src := g.cfg.SecretScanningKeys; src != "" {
		if err := checkKeySource(src); err != nil {
			return nil, err
		}
		keys, err := secretscan.NewKeySet(secretscan.KeySetOptions{Source: keySource(src), Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_SECRET_SCANNING_KEYS: %w", err)
		}
		h, err := secretscan.NewPartnerHandler(secretscan.PartnerOptions{Options: opts, Keys: keys})
		if err != nil {
			return nil, err
		}
		routes[SecretScanningPath] = exactRoute{http.MethodPost, h}
	}
	if g.cfg.PublicRevoke {
		h, err := secretscan.NewRevokeHandler(secretscan.RevokeOptions{Options: opts,
			Limiter: limiter.NewAuthGuard(1, 20), ClientAddr: func(r *http.Request) netip.Addr {
				return proxy.ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], trusted)
			}})
		if err != nil {
			return nil, err
		}
		g.events.run = append(g.events.run, h.Run)
		routes[PublicRevokePath] = exactRoute{http.MethodPost, h}
	}
	return routes, nil
}

// checkKeySource reads a key file once at start, so that a path that
// cannot be read, or a file without GitHub's key list, stops the gateway
// instead of failing every report (503 signature_keys_unavailable). A URL
// is not fetched: GitHub may be out of reach for now, and is tried again
// when a report comes.
func checkKeySource(src string) error {
	if strings.Contains(src, "://") {
		return nil
	}
	data, err := secretscan.FileKeys(src)(context.Background())
	if err == nil {
		_, err = secretscan.ParseKeyList(data)
	}
	if err != nil {
		return fmt.Errorf("TSWGATE_SECRET_SCANNING_KEYS: %w; give the path of a copy of GitHub's key list "+
			"(%s) or that URL", err, secretscan.GitHubKeysURL)
	}
	return nil
}

// keySource reads GitHub's keys from an https URL (any value naming a
// scheme: the configuration admits https alone) or a file.
func keySource(src string) secretscan.KeySource {
	if strings.Contains(src, "://") {
		return secretscan.URLKeys(&http.Client{Timeout: 10 * time.Second}, src)
	}
	return secretscan.FileKeys(src)
}

// exactRoute is a handler for one method at one path.
type exactRoute struct {
	method string
	h      http.Handler
}

// exactRoutes serves routes at their exact paths, through wrap, and
// everything else with next, untouched (no ServeMux path cleaning in front
// of the proxy).
func exactRoutes(routes map[string]exactRoute, next http.Handler, wrap func(http.Handler) http.Handler) http.Handler {
	if len(routes) == 0 {
		return next
	}
	exact := wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routes[r.URL.Path]
		if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", rt.method)
			http.Error(w, "method not allowed: use "+rt.method, http.StatusMethodNotAllowed)
			return
		}
		rt.h.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := routes[r.URL.Path]; !ok {
			next.ServeHTTP(w, r)
			return
		}
		exact.ServeHTTP(w, r)
	})
}

// start runs the event loops until ctx ends.
func (ev *events) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, run := range ev.run {
		wg.Go(func() { run(ctx) })
	}
}

// close releases the queue's files.
func (ev *events) close() error {
	var errs []error
	for _, c := range ev.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// tappedStore is the store whose audit trail publishes the events of the
// changes it records.
type tappedStore struct {
	auth.ActivityStore
	tap *webhook.AuditTap
}

func (s tappedStore) AppendAudit(ctx context.Context, ev *auth.AuditEvent) error {
	return s.tap.AppendAudit(ctx, ev)
}

// usageTee tells two recorders of each request.
type usageTee struct{ a, b proxy.UsageRecorder }

func (u usageTee) Record(tokenID string, code auth.Code, at time.Time) {
	u.a.Record(tokenID, code, at)
	u.b.Record(tokenID, code, at)
}
