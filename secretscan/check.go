package secretscan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/tswgate/tswgate/auth"
)

// Lookup reads a token record; auth.Store is one.
type Lookup interface {
	Get(ctx context.Context, id string) (*auth.Token, error)
}

// Revoker revokes a token on every replica; auth.Store is one.
type Revoker interface {
	Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error)
}

// Verifier checks a credential against a stored hash in constant time;
// *auth.Hasher is one.
type Verifier interface {
	Verify(credential string, sum *[32]byte, pepperID string) bool
}

// Auditor appends to a project's audit trail; the stores are ones
// (filestore.Store, redisstore.Store).
type Auditor interface {
	AppendAudit(ctx context.Context, ev *auth.AuditEvent) error
}

// Actor kinds of the audit events this package records.
const (
	// ActorSecretScanning: a secret scanning provider reported the token;
	// the actor is the provider ("github").
	ActorSecretScanning = "secret_scanning"
	// ActorPublicRevoke: someone revoked the token by its value.
	ActorPublicRevoke = "public_revoke"
)

// Leak is what OnLeak is told of a reported live token.
type Leak struct {
	// Token is the record after the report: a tombstone.
	Token *auth.Token
	// Revoked says the report revoked it (false: it was revoked by
	// someone else between the lookup and the revocation).
	Revoked bool
	// ActorKind is ActorSecretScanning or ActorPublicRevoke; Reporter is
	// the provider ("github"), or empty.
	ActorKind string
	Reporter  string
	// Type, URL and Source come from the report, redacted.
	Type, URL, Source string
	// ClientAddr is the reporter's address.
	ClientAddr string
}

// Options are what both handlers need. Tokens, Revoker, Verifier and
// Audit are required.
type Options struct {
	Tokens   Lookup
	Revoker  Revoker
	Verifier Verifier
	Audit    Auditor
	// Invalidate drops a token from this replica's cache once it is
	// revoked (auth.Validator.Invalidate); the store tells the others.
	Invalidate func(id string)
	// OnLeak is told of every reported live token, after its revocation
	// is recorded (to publish token.leaked and token.revoked events).
	OnLeak func(ctx context.Context, l Leak)
	// Observer is told of refusals and checked credentials; nil: none.
	Observer Observer
	// Parallelism bounds the credentials checked at once (store reads and
	// revocations); DefaultParallelism when zero.
	Parallelism int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives audit and error lines; nil discards them.
	Logger *slog.Logger
}

// DefaultParallelism bounds the store work of one report.
const DefaultParallelism = 32

// auditTimeout bounds the recording of an audit event.
const auditTimeout = 5 * time.Second

// maxDetail bounds an audit event's detail, in bytes.
const maxDetail = 512

func (o *Options) check() error {
	if o.Tokens == nil || o.Revoker == nil || o.Verifier == nil || o.Audit == nil {
		return errors.New("secretscan: Options.Tokens, Revoker, Verifier and Audit are required")
	}
	if o.Invalidate == nil {
		o.Invalidate = func(string) {}
	}
	if o.OnLeak == nil {
		o.OnLeak = func(context.Context, Leak) {}
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// origin says who reported a credential, and where it was found.
type origin struct {
	actorKind, reporter, clientAddr string
	report                          Report
}

// checkOne decides one reported credential and revokes it when it is a
// live token. A string that fails the checksum costs no store read. The
// error is the store's (unavailable), never a verdict.
func (o *Options) checkOne(ctx context.Context, cred string, from origin) (Label, error) {
	if !auth.ValidCredential(cred) {
		return FalsePositive, nil
	}
	id := cred[:auth.IDLen]
	tok, err := o.Tokens.Get(ctx, id)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return FalsePositive, nil
	case err != nil:
		return "", fmt.Errorf("looking up %s: %w", id, err)
	case tok.Revoked():
		// Its id was a real token, revoked before the report. A tombstone
		// has no hash to verify the secret: nothing more is done.
		return TruePositive, nil
	case !o.Verifier.Verify(cred, &tok.SecretHash, tok.PepperID):
		return FalsePositive, nil
	}
	at := o.Now()
	dead, err := o.Revoker.Revoke(ctx, id, at)
	if errors.Is(err, auth.ErrNotFound) {
		return FalsePositive, nil
	}
	if err != nil {
		return "", fmt.Errorf("revoking %s: %w", id, err)
	}
	o.Invalidate(id)
	byUs := dead.RevokedAt.UnixMilli() == at.UnixMilli()
	if byUs {
		o.audit(ctx, dead, at, from)
	}
	o.OnLeak(ctx, o.leak(dead, byUs, from))
	return TruePositive, nil
}

func (o *Options) leak(t *auth.Token, byUs bool, from origin) Leak {
	return Leak{
		Token: t, Revoked: byUs, ActorKind: from.actorKind, Reporter: from.reporter,
		Type: redact(from.report.Type, 100), URL: redact(from.report.URL, 2048),
		Source: redact(from.report.Source, 100), ClientAddr: from.clientAddr,
	}
}

// audit records the revocation in the token's project's trail and the
// log.
func (o *Options) audit(ctx context.Context, t *auth.Token, at time.Time, from origin) {
	ev := auth.AuditEvent{
		Time: at.UTC().Truncate(time.Millisecond), Action: "token.revoke",
		ActorKind: from.actorKind, Actor: redact(from.reporter, 100),
		ProjectID: t.ProjectID, TokenID: t.ID, Source: redact(from.clientAddr, 100),
		Outcome: auth.OutcomeOK, Detail: redact(detail(from), maxDetail),
	}
	o.Logger.LogAttrs(ctx, slog.LevelInfo, "token.revoke",
		slog.String("token_id", ev.TokenID), slog.Int64("project_id", ev.ProjectID),
		slog.String("actor_kind", ev.ActorKind), slog.String("actor", ev.Actor), slog.String("detail", ev.Detail))
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := o.Audit.AppendAudit(actx, &ev); err != nil {
		o.Logger.LogAttrs(ctx, slog.LevelError, "recording an audit event failed; the log line above stands for it",
			slog.String("action", ev.Action), slog.String("token_id", ev.TokenID), slog.String("err", redact(err.Error(), 1000)))
	}
}

// detail describes a report for humans.
func detail(from origin) string {
	r := from.report
	var b strings.Builder
	if from.actorKind == ActorSecretScanning {
		fmt.Fprintf(&b, "leaked: reported by %s secret scanning", from.reporter)
	} else {
		b.WriteString("leaked: revoked by its value through the public revoke endpoint")
	}
	if r.Type != "" || r.Source != "" {
		fmt.Fprintf(&b, " (type %s, source %s)", orDash(r.Type), orDash(r.Source))
	}
	if r.URL != "" {
		b.WriteString(" at ")
		b.WriteString(r.URL)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// redact removes secrets from s (auth.RedactSecrets), then cuts it to at
// most n bytes on a rune boundary, marking the cut with "…".
func redact(s string, n int) string {
	s = auth.RedactSecrets(s)
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// checkAll decides every distinct credential of reports, at most
// Parallelism at once, and returns each credential's label. Every
// credential is tried; the first store error is returned with the labels
// of the others.
func (o *Options) checkAll(ctx context.Context, reports []Report, from origin) (map[string]Label, error) {
	labels := make(map[string]Label, len(reports))
	var work []Report // distinct credentials worth a store read
	for _, r := range reports {
		if _, dup := labels[r.Token]; dup {
			continue
		}
		labels[r.Token] = FalsePositive
		if auth.ValidCredential(r.Token) {
			work = append(work, r)
		} else {
			o.Observer.Checked(from.actorKind, FalsePositive)
		}
	}
	results := make([]Label, len(work))
	errs := make([]error, len(work))
	var g errgroup.Group
	g.SetLimit(o.Parallelism)
	for i, r := range work {
		f := from
		f.report = r
		g.Go(func() error {
			results[i], errs[i] = o.checkOne(ctx, r.Token, f)
			if errs[i] == nil {
				o.Observer.Checked(f.actorKind, results[i])
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, r := range work {
		labels[r.Token] = results[i]
	}
	return labels, errors.Join(errs...)
}
