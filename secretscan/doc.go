// Package secretscan closes the loop on leaked tokens: a token found in
// public is revoked within seconds, recorded in its project's audit trail,
// and its owner told.
//
// Two handlers:
//
//   - NewPartnerHandler serves GitHub's secret scanning partner protocol:
//     GitHub POSTs a JSON array of matches of auth.CredentialPattern
//     ({"token","type","url","source"}), signed with ECDSA P-256 SHA-256
//     over the raw body (Github-Public-Key-Identifier and
//     Github-Public-Key-Signature, checked against GitHub's published keys
//     through a KeySet); each live token is revoked, and the answer is
//     GitHub's feedback array (token_hash, token_type, label).
//   - NewRevokeHandler is a public revoke-by-value endpoint, like GitHub's
//     /credentials/revoke: anyone holding a leaked token may revoke it. It
//     is limited per client address and answers the same whatever the
//     token was (live, revoked, unknown, malformed): the work is done
//     after the answer.
//
// A reported string costs no store read unless it passes the token
// format's checksum (auth.ValidCredential); then its record is read and
// its secret verified in constant time (auth.Hasher.Verify) before it is
// revoked. The package needs of the rest of the gateway only the small
// interfaces below (Lookup, Revoker, Verifier, Auditor, AddrLimiter),
// which auth.Store, auth.Hasher and limiter.AuthGuard satisfy.
package secretscan
