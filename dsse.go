package modelfleet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// Envelope is a DSSE envelope (Dead Simple Signing Envelope,
// github.com/secure-systems-lab/dsse): a payload, its type, and signatures
// over both. The control plane signs the statements it vouches for in one —
// operator controls today — with ed25519 keys whose public halves travel
// to the verifiers (a workflow's input) as TrustedKeys.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // base64 in JSON, as DSSE specifies
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an Envelope.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// TrustedKey is a public key a verifier accepts, by ID.
type TrustedKey struct {
	ID        string `json:"id"`
	PublicKey []byte `json:"publicKey"` // ed25519, 32 bytes; ECDSA P-256 (ID "ecdsa-p256:…"), PKIX DER
}

// Bounds of what a verifier reads from an envelope it is handed.
const (
	MaxEnvelopePayload    = 16 << 10
	MaxEnvelopeSignatures = 8
)

// KeyID names an ed25519 public key: "ed25519:" and the first 16 hex
// digits of its SHA-256, so a key is known by the same ID everywhere.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// PAE is DSSE's pre-authentication encoding: what is actually signed, so
// a signature binds the payload's type as well as its bytes.
func PAE(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// SignEnvelope signs payload as payloadType with key.
func SignEnvelope(payloadType string, payload []byte, key ed25519.PrivateKey) Envelope {
	pub := key.Public().(ed25519.PublicKey)
	return Envelope{
		PayloadType: payloadType, Payload: payload,
		Signatures: []Signature{{KeyID: KeyID(pub), Sig: ed25519.Sign(key, PAE(payloadType, payload))}},
	}
}

// Tag names e's content (its payload type, payload and signatures) with a
// short digest: two envelopes with the same tag are the same envelope. A
// site sends the tag of the release key set it last received, and a
// gateway holding the same set leaves it out of the answer (fleet's
// desired-state endpoint): the set does not travel, nor is it decoded,
// with every poll. A tag authenticates nothing: what a site takes it still
// verifies (Trust.Update).
func (e *Envelope) Tag() string {
	if e == nil {
		return ""
	}
	sum := e.Digest()
	return hex.EncodeToString(sum[:16])
}

// Digest is the SHA-256 of e's content (its payload type, payload and
// signatures, each length-prefixed): two envelopes with the same digest
// are the same envelope. A site remembers by it the statements it has
// verified under its current trust (edge's verification memo).
func (e *Envelope) Digest() [32]byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(e.PayloadType))
	field(e.Payload)
	for _, s := range e.Signatures {
		field([]byte(s.KeyID))
		field(s.Sig)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// StatementRef names e where a statement is kept once for many sites
// (DesiredVersion.StatementRef): "sha256:" and the hex of its Digest.
func (e *Envelope) StatementRef() string {
	d := e.Digest()
	return "sha256:" + hex.EncodeToString(d[:])
}

// ErrUntrusted says an envelope carries no valid signature by a trusted
// key.
var ErrUntrusted = errors.New("not signed by a trusted key")

// Verify checks that e has payloadType and a valid signature by one of
// keys, and returns the payload and the ID of the key that signed it.
// Everything about e is bounded before any signature is checked.
func (e *Envelope) Verify(payloadType string, keys []TrustedKey) ([]byte, string, error) {
	if e == nil {
		return nil, "", Errorf(EUNAUTHORIZED, "no signed statement: %v", ErrUntrusted)
	}
	if e.PayloadType != payloadType {
		return nil, "", Errorf(EUNAUTHORIZED, "statement type %q, want %q", clip(e.PayloadType, 80), payloadType)
	}
	if len(e.Payload) > MaxEnvelopePayload || len(e.Signatures) > MaxEnvelopeSignatures {
		return nil, "", Errorf(EUNAUTHORIZED, "statement too large (%d bytes, %d signatures)", len(e.Payload), len(e.Signatures))
	}
	pae := PAE(e.PayloadType, e.Payload)
	for _, s := range e.Signatures {
		for _, k := range keys {
			if k.ID == s.KeyID && k.verify(pae, s.Sig) {
				return e.Payload, k.ID, nil
			}
		}
	}
	return nil, "", Errorf(EUNAUTHORIZED, "statement %v", ErrUntrusted)
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…", s[:n])
}
