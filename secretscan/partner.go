package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Headers of GitHub's signed reports.
const (
	HeaderKeyIdentifier = "Github-Public-Key-Identifier"
	HeaderKeySignature  = "Github-Public-Key-Signature"
)

// Defaults of PartnerOptions.
const (
	DefaultMaxBody     = 4 << 20
	DefaultMaxReports  = 10000
	DefaultTimeout     = 8 * time.Second
	DefaultProvider    = "github"
	maxSignatureHeader = 512
)

// KeyFinder returns the public key of an identifier; *KeySet is one.
type KeyFinder interface {
	Key(ctx context.Context, id string) (*ecdsa.PublicKey, error)
}

// PartnerOptions configure NewPartnerHandler. Keys and Options' required
// fields are required.
type PartnerOptions struct {
	Options
	// Keys verifies the reports' signatures.
	Keys KeyFinder
	// Provider names the reporter in the audit trail and events;
	// DefaultProvider when empty.
	Provider string
	// MaxBody bounds a report's body, in bytes; DefaultMaxBody when zero.
	MaxBody int64
	// MaxReports bounds a report's matches; DefaultMaxReports when zero.
	MaxReports int
	// Timeout bounds the work on one report (GitHub waits about 10 s);
	// DefaultTimeout when zero. The work goes on if the caller leaves.
	Timeout time.Duration
}

type partner struct {
	PartnerOptions
}

// NewPartnerHandler returns the handler of GitHub's secret scanning
// partner protocol. Mount it for POST at the path given to GitHub.
//
// It answers 200 with the feedback array when the report is verified and
// decided; 401/400 (signature_*) for an unsigned or badly signed report,
// 413 and 400 for a body too large or not a report, 503 when the keys or
// the store cannot be read or the work outlasts Timeout (GitHub sends the
// report again; revoking is idempotent).
func NewPartnerHandler(opts PartnerOptions) (http.Handler, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Keys == nil {
		return nil, errors.New("secretscan: PartnerOptions.Keys is required")
	}
	if opts.Provider == "" {
		opts.Provider = DefaultProvider
	}
	opts.MaxBody = orDefault(opts.MaxBody, DefaultMaxBody)
	opts.MaxReports = orDefault(opts.MaxReports, DefaultMaxReports)
	opts.Timeout = orDefault(opts.Timeout, DefaultTimeout)
	return &partner{opts}, nil
}

// readBody reads r's body, at most max bytes. It returns a refusal code
// on failure: CodeBodyTooLarge past max, else unreadable (a body cut
// short, a read timeout), which is no valid report or request either.
func readBody(w http.ResponseWriter, r *http.Request, max int64, unreadable string) ([]byte, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, CodeBodyTooLarge
	case err != nil:
		return nil, unreadable
	}
	return body, ""
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (p *partner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, p.Observer, CodeMethodNotAllowed, 0)
		return
	}
	keyID, sig := r.Header.Get(HeaderKeyIdentifier), r.Header.Get(HeaderKeySignature)
	if keyID == "" || sig == "" {
		refuse(w, p.Observer, CodeSignatureMissing, 0)
		return
	}
	body, code := readBody(w, r, p.MaxBody, CodeInvalidReport)
	if code != "" {
		refuse(w, p.Observer, code, 0)
		return
	}
	if code := p.verify(r.Context(), keyID, sig, body); code != "" {
		p.Logger.Warn("secretscan: report refused", "code", code, "client", r.RemoteAddr)
		refuse(w, p.Observer, code, 0)
		return
	}
	reports, err := ParseReport(body, p.MaxReports)
	if err != nil {
		refuse(w, p.Observer, CodeInvalidReport, 0)
		return
	}
	p.decide(w, r, reports)
	p.Observer.Answered(len(reports), time.Since(start))
}

// verify checks the signature over body and returns "" or a refusal code.
func (p *partner) verify(ctx context.Context, keyID, sig string, body []byte) string {
	if len(keyID) > maxSignatureHeader || len(sig) > maxSignatureHeader {
		return CodeSignatureMalformed
	}
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return CodeSignatureMalformed
	}
	pub, err := p.Keys.Key(ctx, keyID)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return CodeSignatureKeyUnknown
	case err != nil:
		p.Logger.Error("secretscan: no public keys to verify a report", "err", err)
		return CodeKeysUnavailable
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], der) {
		return CodeSignatureInvalid
	}
	return ""
}

// workGrace is how long the work on a report may go on after its answer
// was given up (Timeout): a slow store finishes the revocations, and the
// report GitHub sends again then finds them done.
const workGrace = 5 * time.Minute

// decided is the outcome of checkAll.
type decided struct {
	labels map[string]Label
	err    error
}

// decide checks every match and answers the feedback, one entry per
// match in the report's order. If the work takes longer than Timeout, it
// answers 503 report_timeout and the work goes on: GitHub sends the
// report again, and revoked tokens are then decided without a write.
func (p *partner) decide(w http.ResponseWriter, r *http.Request, reports []Report) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.Timeout+workGrace)
	from := origin{actorKind: ActorSecretScanning, reporter: p.Provider, clientAddr: r.RemoteAddr}
	done := make(chan decided, 1)
	go func() {
		defer cancel()
		labels, err := p.checkAll(ctx, reports, from)
		done <- decided{labels, err}
	}()
	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	var res decided
	select {
	case res = <-done:
	case <-timer.C:
		p.Logger.Warn("secretscan: a report takes longer than its answer may; it goes on, and GitHub will send it again",
			"matches", len(reports), "timeout", p.Timeout)
		refuse(w, p.Observer, CodeReportTimeout, time.Second)
		return
	}
	if res.err != nil {
		p.Logger.LogAttrs(ctx, slog.LevelError, "secretscan: a report could not be fully decided; it will be sent again",
			slog.Int("matches", len(reports)), slog.String("err", redact(res.err.Error(), 1000)))
		refuse(w, p.Observer, CodeStoreUnavailable, time.Second)
		return
	}
	feedback := make([]Feedback, len(reports))
	for i, rep := range reports {
		feedback[i] = Feedback{TokenHash: TokenHash(rep.Token), TokenType: rep.Type, Label: res.labels[rep.Token]}
	}
	writeJSON(w, http.StatusOK, feedback)
}
