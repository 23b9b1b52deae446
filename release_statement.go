package modelfleet

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// A validated model version is vouched for by an in-toto Statement v1
// (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
// in a DSSE envelope, signed with the control plane's release-signing key.
// It travels with the desired state (DesiredVersion.Statement) and a site
// loads the version only if a key it pinned at enrolment signed a statement
// for exactly that artifact: whoever can write a desired state (a bug, a
// compromised database, a proxy) cannot choose what runs.
const (
	// InTotoPayloadType is DSSE's payload type for in-toto statements.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// InTotoStatementType is the statement's _type.
	InTotoStatementType = "https://in-toto.io/Statement/v1"
	// ReleasePredicateType names modelfleet's predicate: a model version
	// passed validation and may be released.
	ReleasePredicateType = "https://modelfleet.dev/attestations/release/v1"
)

// Statement is an in-toto Statement v1 with modelfleet's release predicate.
type Statement struct {
	Type          string           `json:"_type"`
	Subject       []Subject        `json:"subject"`
	PredicateType string           `json:"predicateType"`
	Predicate     ReleasePredicate `json:"predicate"`
}

// Subject is an in-toto ResourceDescriptor: the artifact by name and
// digest; its size, which in-toto has no field for, is an annotation.
type Subject struct {
	Name        string             `json:"name"`
	Digest      map[string]string  `json:"digest"` // "sha256": hex
	Annotations SubjectAnnotations `json:"annotations"`
}

// SubjectAnnotations carry what a site checks besides the digest.
type SubjectAnnotations struct {
	Size int64 `json:"size"` // bytes: a download stops there
}

// ReleasePredicate is what the release vouches for: which model version the
// artifact is, how it validated, and what it is released with.
type ReleasePredicate struct {
	Model      string           `json:"model"`
	Version    string           `json:"version"`
	Format     string           `json:"format"`
	Features   []string         `json:"features,omitempty"`
	Validation ValidationResult `json:"validation"`
	// Baseline is the digest of the version's monitoring baseline ("" if
	// none).
	Baseline string `json:"baseline,omitempty"`
	// Workload is the workload version the model version is released with,
	// and the digest of its manifest (nil if none).
	Workload *SignedWorkload `json:"workload,omitempty"`
	// Server is the external model server a FormatOIP version runs in
	// (nil for a built-in format): the site runs the version only as
	// signed.
	Server   *ModelServer `json:"server,omitempty"`
	Release  string       `json:"release"` // the release's workflow ID
	SignedAt time.Time    `json:"signedAt"`
}

// SignedWorkload is a workload version by name, version and manifest digest.
type SignedWorkload struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	ManifestDigest string `json:"manifestDigest"`
}

// NewReleaseStatement builds the statement for an artifact of size bytes.
func NewReleaseStatement(digest string, size int64, p ReleasePredicate) Statement {
	return Statement{
		Type: InTotoStatementType, PredicateType: ReleasePredicateType, Predicate: p,
		Subject: []Subject{{
			Name:        p.Model + ":" + p.Version,
			Digest:      map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")},
			Annotations: SubjectAnnotations{Size: size},
		}},
	}
}

// DecodeStatement reads a statement's payload: strictly (unknown fields are
// refused, as is trailing data) and only of the expected types.
func DecodeStatement(payload []byte) (Statement, error) {
	var st Statement
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, Errorf(EINVALID, "signed statement: %v", err)
	}
	if dec.More() {
		return st, Errorf(EINVALID, "signed statement: data after the statement")
	}
	if st.Type != InTotoStatementType || st.PredicateType != ReleasePredicateType {
		return st, Errorf(EINVALID, "signed statement: type %q with predicate %q, want %q with %q",
			clip(st.Type, 80), clip(st.PredicateType, 80), InTotoStatementType, ReleasePredicateType)
	}
	if len(st.Subject) != 1 {
		return st, Errorf(EINVALID, "signed statement: %d subjects, want 1", len(st.Subject))
	}
	return st, nil
}

// Trust is what a site trusts release statements from: the keys it pinned
// at enrolment or learned since from a signed key set, minus revoked ones.
type Trust struct {
	Keys []TrustedKey `json:"keys"`
	// Revoked key IDs: a statement they signed is refused even if the
	// key is also listed in Keys.
	Revoked []string `json:"revoked,omitempty"`
	// Serial orders key sets: a site takes a set only with a higher one.
	Serial int64 `json:"serial"`
}

// trusted returns the keys not revoked.
func (t *Trust) trusted() []TrustedKey {
	var out []TrustedKey
	for _, k := range t.Keys {
		if !slices.Contains(t.Revoked, k.ID) {
			out = append(out, k)
		}
	}
	return out
}

// VerifyRelease checks that env is a release statement signed by a key t
// trusts, for exactly v's artifact (digest and size) as version v.Version
// of model, in v's format. It returns the statement; every refusal is
// EUNAUTHORIZED with the reason a site reports.
func (t *Trust) VerifyRelease(env *Envelope, model string, v DesiredVersion) (Statement, error) {
	if env == nil {
		return Statement{}, Errorf(EUNAUTHORIZED, "version %s:%s has no signed release statement", model, v.Version)
	}
	payload, _, err := env.Verify(InTotoPayloadType, t.trusted())
	if err != nil {
		ids := make([]string, 0, len(env.Signatures))
		for _, s := range env.Signatures {
			ids = append(ids, clip(s.KeyID, 40))
		}
		return Statement{}, Errorf(EUNAUTHORIZED, "version %s:%s: release statement signed by %v: %v", model, v.Version, ids, err)
	}
	st, err := DecodeStatement(payload)
	if err != nil {
		return st, Errorf(EUNAUTHORIZED, "version %s:%s: %v", model, v.Version, err)
	}
	return st, st.Matches(model, v)
}

// Matches checks that a verified release statement is for exactly v's
// artifact (digest and size) as version v.Version of model, in v's format,
// with v's baseline, features and model server: VerifyRelease's checks
// after the signature's. Every refusal is EUNAUTHORIZED with the reason a
// site reports.
func (st Statement) Matches(model string, v DesiredVersion) error {
	sub, p := st.Subject[0], st.Predicate
	switch {
	case "sha256:"+sub.Digest["sha256"] != v.Digest:
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement is for artifact sha256:%s, not %s", model, v.Version, clip(sub.Digest["sha256"], 64), v.Digest)
	case sub.Annotations.Size <= 0 || (v.Size != 0 && sub.Annotations.Size != v.Size):
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement is for %d bytes, the desired state says %d", model, v.Version, sub.Annotations.Size, v.Size)
	case p.Model != model || p.Version != v.Version:
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement is for %s:%s", model, v.Version, clip(p.Model, 80), clip(p.Version, 80))
	case p.Format != v.Format:
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement is for format %q, not %q", model, v.Version, clip(p.Format, 40), v.Format)
	case v.Baseline != "" && p.Baseline != v.Baseline:
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement is for baseline %q, not %q", model, v.Version, clip(p.Baseline, 80), v.Baseline)
	case !slices.Equal(p.Features, v.Features):
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement names other features", model, v.Version)
	case !p.Server.Equal(v.Server):
		return Errorf(EUNAUTHORIZED, "version %s:%s: the release statement names another model server, or none", model, v.Version)
	}
	return nil
}

// KeySetPayloadType is the DSSE payload type of a signed Trust: how sites
// learn a rotated-in key and revocations after enrolment. A site takes a
// key set only if a key it already trusts signed it.
const KeySetPayloadType = "application/vnd.modelfleet.release-keys.v1+json"

// Update returns the trust a signed key set env leaves: env must be signed
// by a key t trusts (not revoked) and carry a higher serial. Revocations
// accumulate: a key once revoked stays revoked.
func (t *Trust) Update(env *Envelope) (Trust, bool, error) {
	if env == nil {
		return *t, false, nil
	}
	payload, _, err := env.Verify(KeySetPayloadType, t.trusted())
	if err != nil {
		return *t, false, err
	}
	var next Trust
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return *t, false, Errorf(EINVALID, "release key set: %v", err)
	}
	if next.Serial <= t.Serial {
		return *t, false, nil
	}
	if len(next.Keys) > MaxTrustedKeys || len(next.Revoked) > MaxRevokedKeys {
		return *t, false, Errorf(EINVALID, "release key set: %d keys, %d revoked: too many", len(next.Keys), len(next.Revoked))
	}
	for _, id := range t.Revoked {
		if !slices.Contains(next.Revoked, id) {
			next.Revoked = append(next.Revoked, id)
		}
	}
	return next, true, nil
}

// Bounds of a key set.
const (
	MaxTrustedKeys = 16
	MaxRevokedKeys = 256
)

// ReleaseSigner signs release statements with the control plane's
// release-signing keys (key files, keys in Azure Key Vault, or both:
// app.ReleaseKeys).
type ReleaseSigner interface {
	SignRelease(ctx context.Context, st Statement) (*Envelope, error)
	WorkloadSigner
}

// SignAll signs payload as payloadType with every key (ed25519 or ECDSA
// P-256), the first one's signature first: during a rotation sites that
// know only the old key and sites that know only the new one both find a
// signature they trust.
func SignAll[K crypto.Signer](payloadType string, payload []byte, keys []K) (*Envelope, error) {
	if len(keys) == 0 {
		return nil, Errorf(EINVALID, "no signing key")
	}
	env := Envelope{PayloadType: payloadType, Payload: payload}
	pae := PAE(payloadType, payload)
	for _, k := range keys {
		sig, err := sign(k, pae)
		if err != nil {
			return nil, err
		}
		env.Signatures = append(env.Signatures, sig)
	}
	return &env, nil
}

// SignStatement signs a release statement with keys (see SignAll).
func SignStatement[K crypto.Signer](st Statement, keys []K) (*Envelope, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return SignAll(InTotoPayloadType, b, keys)
}

// SignKeySet signs a key set with keys (see Trust.Update).
func SignKeySet[K crypto.Signer](t Trust, keys []K) (*Envelope, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return SignAll(KeySetPayloadType, b, keys)
}
