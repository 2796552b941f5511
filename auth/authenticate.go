package auth

import (
	"context"
	"errors"
	"time"
)

// Authenticator checks a token credential the way Gate.Decide does —
// through the same cached Validator, with a constant-time hash comparison,
// then status and expiry — for callers that need the token itself rather
// than a decision about an API route (the token self-service API).
type Authenticator struct {
	Validator *Validator
	Hasher    *Hasher
}

// Authenticate checks the Authorization header value at now. It returns
// the record the credential names whenever the store has one (also when
// the secret is wrong, so that refusals can be attributed), and OK only if
// the credential is verified and the token is live, active and unexpired.
// err is set with CodeStoreUnavailable only, for logs.
func (a *Authenticator) Authenticate(ctx context.Context, header string, now time.Time) (*Token, Code, error) {
	rec, _, _, code, err := checkCredential(ctx, a.Validator, a.Hasher, header, now)
	return rec, code, err
}

// Recognized reports whether header carries a credential worth a store
// read for a client whose address is over its failed-authentication limit,
// judged with no store read: its token's record is cached (however old;
// Validator.Peek) and the secret matches it, or no record is cached and
// the id is one the gateway minted (Hasher.Minted). It is a hint, never an
// authorisation: the request is then decided as any other. It lets the
// clients that share an address with a guesser go on with their tokens,
// old and new, while guesses from that address cost the store nothing.
func (a *Authenticator) Recognized(header string) bool {
	return recognized(a.Validator, a.Hasher, header)
}

func recognized(v *Validator, h *Hasher, header string) bool {
	id, cred, err := ParseAuthorization(header)
	if err != nil {
		return false
	}
	if rec := v.Peek(id); rec != nil {
		return !rec.Ended() && h.Verify(cred, &rec.SecretHash, rec.PepperID)
	}
	return h.Minted(id)
}

// checkCredential is the credential step that Gate.Decide and
// Authenticator share: parse the header, look the id up (cache first),
// refuse a tombstone, verify the secret in constant time, then status and
// expiry. rec is the record the id names (nil when there is none);
// verified says the secret matched it; code is OK or the first refusal;
// err is the cause of CodeStoreUnavailable.
func checkCredential(ctx context.Context, v *Validator, h *Hasher, header string, now time.Time) (rec *Token, verified bool, cache CacheResult, code Code, err error) {
	id, cred, perr := ParseAuthorization(header)
	if perr != nil {
		if perr == ErrNoCredential {
			return nil, false, cache, CodeMissingToken, nil
		}
		return nil, false, cache, CodeMalformedToken, nil
	}
	rec, cache, err = v.Lookup(ctx, id, now)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, cache, CodeInvalidToken, nil
	case err != nil && ctx.Err() != nil:
		// The caller went away while the store was read: no outage.
		return nil, false, cache, CodeClientClosed, nil
	case err != nil:
		return nil, false, cache, CodeStoreUnavailable, err
	case rec.Ended():
		// A tombstone has no hash: say "revoked" to whoever presents its
		// id with a well-formed credential, as the id is what was revoked;
		// and so for a token a rotation replaced, whose tombstone is
		// still to come, so that it is answered alike at every instant.
		return rec, false, cache, CodeTokenRevoked, nil
	case !h.Verify(cred, &rec.SecretHash, rec.PepperID):
		return rec, false, cache, CodeInvalidToken, nil
	case rec.Status != StatusActive:
		return rec, true, cache, CodeTokenInactive, nil
	case rec.Expired(now):
		return rec, true, cache, CodeTokenExpired, nil
	}
	return rec, true, cache, OK, nil
}
