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
	id, cred, perr := ParseAuthorization(header)
	if perr != nil {
		if perr == ErrNoCredential {
			return nil, CodeMissingToken, nil
		}
		return nil, CodeMalformedToken, nil
	}
	rec, _, err := a.Validator.Lookup(ctx, id, now)
	if errors.Is(err, ErrNotFound) {
		return nil, CodeInvalidToken, nil
	}
	if err != nil {
		return nil, CodeStoreUnavailable, err
	}
	code := OK
	switch {
	case rec.Revoked():
		code = CodeTokenRevoked
	case !a.Hasher.Verify(cred, &rec.SecretHash, rec.PepperID):
		code = CodeInvalidToken
	case rec.Status != StatusActive:
		code = CodeTokenInactive
	case rec.Expired(now):
		code = CodeTokenExpired
	}
	return rec, code, nil
}
