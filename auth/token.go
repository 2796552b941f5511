// Package auth owns tswgate's API tokens: their wire format, the keyed hash
// of their secrets, the token record and its stores, the cache in front of the
// store, the role and route table, project scoping and the per-request
// decision that ties these together.
//
// The package knows nothing of net/http: the decision takes plain strings and
// a body prefix and returns a Verdict, so any front end can reuse it.
package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"strings"
	"time"
	"unsafe"
)

// Role is what a token may do within its project.
type Role uint8

// Roles. The zero Role is invalid, so a record with a missing role is refused.
const (
	RoleInvalid Role = iota
	// RoleOwner may call every route of its own project.
	RoleOwner
	// RoleAccounting may only read billing and usage data.
	RoleAccounting
)

// String returns the role's wire name ("owner", "accounting").
func (r Role) String() string {
	switch r {
	case RoleOwner:
		return "owner"
	case RoleAccounting:
		return "accounting"
	}
	return "invalid"
}

// Title returns the role as the TeraSwitch console names it ("Owner").
func (r Role) Title() string {
	switch r {
	case RoleOwner:
		return "Owner"
	case RoleAccounting:
		return "Accounting"
	}
	return "Invalid"
}

// ParseRole accepts a role name in any letter case.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "owner":
		return RoleOwner, nil
	case "accounting":
		return RoleAccounting, nil
	}
	return RoleInvalid, fmt.Errorf("unknown role %q: want owner or accounting", s)
}

// Status says whether a token may be used.
type Status uint8

// Statuses. Revocation is not a status: a revoked token keeps a tombstone
// (Token.RevokedAt) so that clients are told "revoked", not "unknown".
const (
	StatusInvalid Status = iota
	StatusActive
	StatusInactive
)

// String returns the status's wire name ("active", "inactive").
func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusInactive:
		return "inactive"
	}
	return "invalid"
}

// ParseStatus accepts a status name in any letter case.
func ParseStatus(s string) (Status, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "active":
		return StatusActive, nil
	case "inactive":
		return StatusInactive, nil
	}
	return StatusInvalid, fmt.Errorf("unknown status %q: want active or inactive", s)
}

// Token is the stored record of an API token. It never holds the secret,
// only SecretHash, the keyed hash of the whole credential (see Hasher).
// Values handed out by stores and the cache are shared: treat them as
// read-only.
type Token struct {
	ID        string
	ProjectID int64
	Name      string
	Role      Role
	Status    Status
	CreatedAt time.Time
	// ExpiresAt is the end of the token's life; zero means it never expires.
	ExpiresAt time.Time
	// RevokedAt is set on the tombstone a revocation leaves behind.
	RevokedAt time.Time
	// SecretHash is HMAC-SHA256(pepper, credential); zero on tombstones.
	SecretHash [32]byte
	// PepperID names the pepper SecretHash was made with (Hasher.ID).
	PepperID string
	// RateLimit, when above zero, overrides the role's rate limit for this
	// token: requests per second on average. Zero means the role's limit.
	RateLimit float64
	// RateBurst is the burst of the override (requests at once); zero
	// means ceil(RateLimit). It is set only with RateLimit.
	RateBurst int
	// RateShadow puts the token's rate limit in shadow mode: requests over
	// it are counted and logged but not refused (for rolling out a new
	// limit safely).
	RateShadow bool
	// RotatedTo is the id of the token's successor, set when the token was
	// rotated with a grace period: it lives on until its expiry, but only
	// to read and revoke (the token API refuses it the rest, token_rotated).
	// Empty otherwise, and on records written before the field existed.
	RotatedTo string
	// Replaced is set, with RotatedTo, by a rotation without a grace
	// period: the token ended at that instant and is refused as revoked
	// (token_revoked) from then on, before its tombstone is written (and
	// also if writing it failed), never as expired. It is never cleared.
	Replaced bool
	// Scopes, when not empty, limits the token to these permissions
	// (within its role's): the "scopes list". Empty means no list: the
	// token may do whatever its role allows, as tokens always could.
	Scopes PermSet
	// AllowedIPs, when not empty, are the only client address ranges the
	// token may be used from (masked, sorted, no duplicates); empty means
	// any address.
	AllowedIPs []netip.Prefix
	// Lineage, set on a token made by a token (created, or a rotation's
	// successor), names the tokens above it, whose rate-limit buckets it
	// shares with them and everything made from them. The zero Lineage
	// (tokens made by an operator, and records written before the field
	// existed) means the token starts its own.
	Lineage Lineage
}

// Lineage names the tokens above a token made by a token: Root, the
// first token of the line (made by an operator), then Via down to its
// maker. Each request of the token takes one from the bucket of each of
// them, at its limit as it is now, so a token never makes itself more room
// than it has, and narrowing a token narrows what was made from it. Each
// one's limit when the token was made is carried on the record too, and
// binds once that token's record is gone.
type Lineage struct {
	// Root is the id of the lineage's first token; empty: the token is a
	// root (it has its own bucket only).
	Root string
	// Rate and Burst are the lineage's limit (requests per second, and at
	// once; Burst 0 means ceil(Rate)); Rate 0 means the root was not
	// limited, and nor is the lineage. Shadow puts it in shadow mode, as
	// the root's limit was.
	Rate   float64
	Burst  int
	Shadow bool
	// Via are the ancestors between Root and the token, from Root's child
	// down to the token's maker (unused entries are zero): each of their
	// limits binds the token too, as the ancestor's limit is now. Empty on
	// a child of the root, and on records written before the field
	// existed. A line is at most MaxLineageDepth ancestors deep, Root
	// included, plus one for a rotation (see DescendLineage).
	Via [MaxLineageDepth]LineageLink
	// Successor says that the nearest ancestor is the first token of
	// the rotations this token is the successor of (by the token itself):
	// its bucket is this token's too.
	Successor bool
}

// LineageLimitedMessage explains a rate_limited refusal by a token's
// lineage (LimitStatus.Lineage) rather than by its own limit: same code,
// same 429, its own sentence.
const LineageLimitedMessage = "Too many requests for this API token's lineage: it shares one rate limit with the token " +
	"that made it and with every token made from the same first token (lineage.root in its record); " +
	"retry after the time in Retry-After."

// IsZero reports whether l is the zero Lineage: the token is a root.
func (l Lineage) IsZero() bool { return l == Lineage{} }

// validateLineage checks t's Lineage: a root other than t, and a valid
// limit; nothing but a root id may be set without one.
func (t *Token) validateLineage() []error {
	l := t.Lineage
	if l.Root == "" {
		if !l.IsZero() {
			return []error{errors.New("lineage: a limit without a root")}
		}
		return nil
	}
	var errs []error
	if !ValidID(l.Root) || l.Root == t.ID {
		errs = append(errs, errors.New("lineage root: not the id of another token"))
	}
	if l.Shadow && l.Rate == 0 {
		errs = append(errs, errors.New("lineage shadow: set without a lineage rate limit"))
	}
	errs = append(errs, validateLimit(l.Rate, l.Burst, "lineage burst")...)
	return append(errs, t.validateVia()...)
}

// Rotated reports whether t was rotated and lives on in a grace period.
func (t *Token) Rotated() bool { return t.RotatedTo != "" }

// Revoked reports whether t is a revocation tombstone.
func (t *Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Ended reports whether t is refused as revoked: a tombstone, or a token
// replaced by a rotation without grace period whose tombstone is still
// to be written (Replaced).
func (t *Token) Ended() bool { return t.Revoked() || t.Replaced }

// Expired reports whether t has an expiry at or before now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// DisplayID is the partial id shown in lists: the prefix and the first four
// characters of the random part, e.g. "tsw_Ab3x…".
func DisplayID(id string) string {
	n := len(IDPrefix) + 4
	if len(id) <= n {
		return id
	}
	return id[:n] + "…"
}

// Credential format.
//
//	tsw_<20 base62>:tswsk_<30 base62><6 base62 CRC32>
//
// The id is public. The secret carries 30 base62 characters from crypto/rand
// (178 bits) and ends in the CRC32 (IEEE) of everything before it — id,
// colon, secret prefix and random part — written as 6 base62 digits, so a
// mistyped or truncated credential is refused without any store lookup and a
// secret scanner can confirm a match offline. CredentialPattern matches it.
const (
	IDPrefix     = "tsw_"
	SecretPrefix = "tswsk_"

	idRandLen     = 20
	secretRandLen = 30
	checksumLen   = 6

	// IDLen is the length of a token id.
	IDLen = len(IDPrefix) + idRandLen
	// SecretLen is the length of a token secret.
	SecretLen = len(SecretPrefix) + secretRandLen + checksumLen
	// CredentialLen is the length of "<id>:<secret>".
	CredentialLen = IDLen + 1 + SecretLen

	// CredentialPattern is a regular expression for a whole credential, for
	// secret scanners and log redaction.
	CredentialPattern = `\btsw_[0-9A-Za-z]{20}:tswsk_[0-9A-Za-z]{36}\b`
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Credential errors. Both mean the request is refused before any store call.
var (
	ErrNoCredential        = errors.New("no bearer credential")
	ErrMalformedCredential = errors.New("malformed credential")
)

// ParseAuthorization takes the value of an Authorization header and returns
// the token id and the whole credential ("<id>:<secret>"), both slices of
// header. It checks the shape and the checksum; it never allocates.
// It returns ErrNoCredential when header is empty or not a Bearer
// credential, and ErrMalformedCredential when the credential is not one of
// ours or fails its checksum.
func ParseAuthorization(header string) (id, credential string, err error) {
	if header == "" {
		return "", "", ErrNoCredential
	}
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", "", ErrNoCredential
	}
	cred := strings.Trim(header[len(scheme):], " \t")
	if cred == "" {
		return "", "", ErrNoCredential
	}
	if !ValidCredential(cred) {
		return "", "", ErrMalformedCredential
	}
	return cred[:IDLen], cred, nil
}

// ValidCredential reports whether s has the shape of a credential and a
// correct checksum.
func ValidCredential(s string) bool {
	if len(s) != CredentialLen ||
		s[:len(IDPrefix)] != IDPrefix ||
		s[IDLen] != ':' ||
		s[IDLen+1:IDLen+1+len(SecretPrefix)] != SecretPrefix {
		return false
	}
	if !isBase62(s[len(IDPrefix):IDLen]) || !isBase62(s[IDLen+1+len(SecretPrefix):]) {
		return false
	}
	var sum uint64
	for i := CredentialLen - checksumLen; i < CredentialLen; i++ {
		sum = sum*62 + uint64(base62Value[s[i]])
	}
	return sum == uint64(checksum(s[:CredentialLen-checksumLen]))
}

// ValidID reports whether s has the shape of a token id.
func ValidID(s string) bool {
	return len(s) == IDLen && s[:len(IDPrefix)] == IDPrefix && isBase62(s[len(IDPrefix):])
}

// NewCredential returns a fresh token id and its whole credential. Its id
// carries no tag: gateways make theirs with Hasher.NewCredential.
func NewCredential() (id, credential string, err error) {
	return newCredential(nil)
}

// newCredential makes a credential; tag, when set, makes the last
// idTagLen characters of the id from the ones before them.
func newCredential(tag func(body []byte) [idTagLen]byte) (id, credential string, err error) {
	var buf [CredentialLen]byte
	n := copy(buf[:], IDPrefix)
	if err := randBase62(buf[n : n+idRandLen]); err != nil {
		return "", "", err
	}
	n += idRandLen
	if tag != nil {
		t := tag(buf[:n-idTagLen])
		copy(buf[n-idTagLen:n], t[:])
	}
	buf[n] = ':'
	n++
	n += copy(buf[n:], SecretPrefix)
	if err := randBase62(buf[n : n+secretRandLen]); err != nil {
		return "", "", err
	}
	n += secretRandLen
	var sum [checksumLen]byte
	encodeChecksum(&sum, checksum(string(buf[:n])))
	copy(buf[n:], sum[:])
	cred := string(buf[:])
	return cred[:IDLen], cred, nil
}

// randBase62 fills dst with uniformly random base62 characters, by rejection
// sampling so that no character is more likely than another.
func randBase62(dst []byte) error {
	var pool [64]byte
	i := 0
	for i < len(dst) {
		if _, err := rand.Read(pool[:]); err != nil {
			return fmt.Errorf("reading random bytes: %w", err)
		}
		for _, b := range pool {
			if b >= 248 { // 248 = 4*62: keep only values that map evenly
				continue
			}
			dst[i] = base62[b%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
	return nil
}

// base62Value maps a base62 digit to its value and any other byte to 0xff.
var base62Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = byte(i)
	}
	return t
}()

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if base62Value[s[i]] == 0xff {
			return false
		}
	}
	return true
}

func checksum(s string) uint32 {
	// crc32 only reads the slice; viewing the string's bytes avoids a copy
	// on the hot path.
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func encodeChecksum(dst *[checksumLen]byte, v uint32) {
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = base62[v%62]
		v /= 62
	}
}
