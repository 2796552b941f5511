package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinPepperLen is the shortest pepper a Hasher accepts, in bytes.
const MinPepperLen = 32

// Hasher computes and checks the keyed hash of credentials:
// HMAC-SHA256(pepper, "<id>:<secret>"). Binding the id into the hash means a
// stored hash cannot be replayed under another id.
//
// New hashes use the current pepper; older peppers stay usable for
// verification so that the pepper can be rotated without invalidating the
// tokens already issued. Each pepper is known by its ID, a fingerprint that
// reveals nothing about it. A Hasher is safe for concurrent use.
type Hasher struct {
	current pepper
	byID    map[string]*pepper
}

type pepper struct {
	id string
	// HMAC's inner and outer padded keys, so that a hash costs two SHA-256
	// calls on stack buffers and no allocation.
	ipad, opad [sha256.BlockSize]byte
	// tag keys the tags of minted token ids (see Hasher.Minted): a key
	// derived from the pepper, so that a tag reveals nothing of it.
	tag *pepper
}

// NewHasher returns a Hasher that makes new hashes with current and also
// verifies hashes made with any of old. Every pepper must be at least
// MinPepperLen bytes.
func NewHasher(current []byte, old ...[]byte) (*Hasher, error) {
	h := &Hasher{byID: make(map[string]*pepper, 1+len(old))}
	if err := h.current.init(current); err != nil {
		return nil, fmt.Errorf("current pepper: %w", err)
	}
	h.byID[h.current.id] = &h.current
	for i, o := range old {
		p := new(pepper)
		if err := p.init(o); err != nil {
			return nil, fmt.Errorf("old pepper %d: %w", i+1, err)
		}
		if _, dup := h.byID[p.id]; !dup {
			h.byID[p.id] = p
		}
	}
	return h, nil
}

// PepperID returns the fingerprint of a pepper as Hasher.CurrentID would
// report it, so operators can tell which pepper a token was hashed with.
func PepperID(key []byte) string {
	sum := sha256.Sum256(append([]byte("tswgate pepper id\x00"), key...))
	return hex.EncodeToString(sum[:4])
}

// CurrentID returns the ID of the pepper new hashes are made with.
func (h *Hasher) CurrentID() string { return h.current.id }

// PepperIDs lists the IDs of every pepper the Hasher verifies with, the
// current one first.
func (h *Hasher) PepperIDs() []string {
	ids := []string{h.current.id}
	for id := range h.byID {
		if id != h.current.id {
			ids = append(ids, id)
		}
	}
	return ids
}

// Hash returns the keyed hash of credential under the current pepper, and
// that pepper's ID.
func (h *Hasher) Hash(credential string) (sum [32]byte, pepperID string) {
	return h.current.mac(credential), h.current.id
}

// Verify reports, in constant time with respect to the hashes, whether
// credential hashes to sum under the pepper named pepperID. An unknown
// pepper ID verifies nothing.
func (h *Hasher) Verify(credential string, sum *[32]byte, pepperID string) bool {
	p := &h.current
	if pepperID != p.id {
		var ok bool
		if p, ok = h.byID[pepperID]; !ok {
			return false
		}
	}
	got := p.mac(credential)
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1
}

func (p *pepper) init(key []byte) error {
	if len(key) < MinPepperLen {
		return fmt.Errorf("pepper is %d bytes, want at least %d", len(key), MinPepperLen)
	}
	k := key
	if len(k) > sha256.BlockSize {
		s := sha256.Sum256(k)
		k = s[:]
	}
	p.setKey(k)
	p.id = PepperID(key)
	sub := p.mac("tswgate token id tag v1")
	p.tag = new(pepper)
	p.tag.setKey(sub[:])
	return nil
}

// setKey sets HMAC's padded keys for a key of at most a block.
func (p *pepper) setKey(k []byte) {
	for i := range p.ipad {
		var b byte
		if i < len(k) {
			b = k[i]
		}
		p.ipad[i] = b ^ 0x36
		p.opad[i] = b ^ 0x5c
	}
}

// maxMAC bounds the message mac hashes without allocating. Credentials are
// CredentialLen bytes; longer input is hashed all the same, on the heap.
const maxMAC = 128

// mac is HMAC-SHA256 (RFC 2104) over msg with the precomputed pads.
func (p *pepper) mac(msg string) [32]byte {
	var inner [sha256.BlockSize + maxMAC]byte
	var in []byte
	if len(msg) <= maxMAC {
		copy(inner[:], p.ipad[:])
		copy(inner[sha256.BlockSize:], msg)
		in = inner[:sha256.BlockSize+len(msg)]
	} else {
		in = append(append(make([]byte, 0, sha256.BlockSize+len(msg)), p.ipad[:]...), msg...)
	}
	isum := sha256.Sum256(in)
	var outer [sha256.BlockSize + sha256.Size]byte
	copy(outer[:], p.opad[:])
	copy(outer[sha256.BlockSize:], isum[:])
	return sha256.Sum256(outer[:])
}

// ParseHash decodes the hex form of a stored hash.
func ParseHash(s string) ([32]byte, error) {
	var sum [32]byte
	if hex.DecodedLen(len(s)) != len(sum) {
		return sum, errors.New("secret hash: want 64 hex digits")
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, fmt.Errorf("secret hash: %w", err)
	}
	return sum, nil
}

// Minted token ids.
//
// A token id made by Hasher.NewCredential ends in a tag: the last idTagLen
// of its random characters are a MAC of the rest under a key derived from
// the pepper. The id keeps its format (tsw_ and 20 letters and digits) and
// about 89 random bits. Only a gateway that holds the pepper can tell a
// minted id from a guessed one, and a guessed id passes with a chance of
// 1 in 62^5 (about 2^-30). It lets the gateway spend a store read on an id
// it has never seen — for a client whose address is over its failed
// authentications — only when the id is one it made.

// idTagLen is the length of an id's tag, in base62 characters.
const idTagLen = 5

// NewCredential returns a fresh token id, minted with the current pepper's
// tag, and its whole credential.
func (h *Hasher) NewCredential() (id, credential string, err error) {
	return newCredential(func(body []byte) [idTagLen]byte { return h.current.tag.idTag(body) })
}

// Minted reports whether id carries the tag of one of the Hasher's peppers:
// it was made by NewCredential of a gateway that shares the pepper.
func (h *Hasher) Minted(id string) bool {
	if !ValidID(id) {
		return false
	}
	body, tag := id[:IDLen-idTagLen], id[IDLen-idTagLen:]
	if h.current.tag.hasTag(body, tag) {
		return true
	}
	for _, p := range h.byID {
		if p != &h.current && p.tag.hasTag(body, tag) {
			return true
		}
	}
	return false
}

// idTag returns the tag of an id's body ("tsw_" and its first characters).
func (p *pepper) idTag(body []byte) (tag [idTagLen]byte) {
	sum := p.mac(string(body))
	v := binary.BigEndian.Uint64(sum[:8])
	for i := idTagLen - 1; i >= 0; i-- {
		tag[i] = base62[v%62]
		v /= 62
	}
	return tag
}

func (p *pepper) hasTag(body, tag string) bool {
	want := p.idTag([]byte(body))
	return subtle.ConstantTimeCompare(want[:], []byte(tag)) == 1
}
