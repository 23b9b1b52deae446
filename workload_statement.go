package modelfleet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// A workload version released alone (WorkloadRelease) is vouched for like a
// model version: an in-toto statement over its manifest, signed with the
// release keys, travelling in DesiredWorkload.Statement. A workload that
// comes with a model release is vouched for by that version's statement
// (ReleasePredicate.Workload). A site that pinned release keys runs a
// workload manifest only with one or the other.

// WorkloadPredicateType names the predicate of a workload statement.
const WorkloadPredicateType = "https://modelfleet.dev/attestations/workload/v1"

// WorkloadStatement is an in-toto Statement v1 about a workload manifest.
type WorkloadStatement struct {
	Type          string            `json:"_type"`
	Subject       []Subject         `json:"subject"`
	PredicateType string            `json:"predicateType"`
	Predicate     WorkloadPredicate `json:"predicate"`
}

// WorkloadPredicate is what a workload release vouches for.
type WorkloadPredicate struct {
	Workload string    `json:"workload"`
	Version  string    `json:"version"`
	Model    string    `json:"model"` // the model it calls
	Features []string  `json:"features,omitempty"`
	Release  string    `json:"release"`
	SignedAt time.Time `json:"signedAt"`
}

// NewWorkloadStatement builds the statement of a registered workload version.
func NewWorkloadStatement(rec WorkloadRecord, release string, at time.Time) WorkloadStatement {
	return WorkloadStatement{
		Type: InTotoStatementType, PredicateType: WorkloadPredicateType,
		Subject: []Subject{{
			Name:        rec.Name + ":" + rec.Version,
			Digest:      map[string]string{"sha256": strings.TrimPrefix(rec.Digest, "sha256:")},
			Annotations: SubjectAnnotations{Size: int64(len(rec.Manifest))},
		}},
		Predicate: WorkloadPredicate{Workload: rec.Name, Version: rec.Version, Model: rec.Model, Features: rec.Features, Release: release, SignedAt: at},
	}
}

// SignWorkloadStatement signs a workload statement with keys (SignAll).
func SignWorkloadStatement[K crypto.Signer](st WorkloadStatement, keys []K) (*Envelope, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return SignAll(InTotoPayloadType, b, keys)
}

// WorkloadSigner signs workload statements (ReleaseKeys does both).
type WorkloadSigner interface {
	SignWorkload(ctx context.Context, st WorkloadStatement) (*Envelope, error)
}

// VerifyWorkload checks that env is a workload statement signed by a key t
// trusts, for exactly dw's manifest as version dw.Version of the workload
// name calling dw.Model.
func (t *Trust) VerifyWorkload(env *Envelope, name string, dw DesiredWorkload) error {
	if env == nil {
		return Errorf(EUNAUTHORIZED, "workload %s:%s has no signed statement", name, dw.Version)
	}
	payload, _, err := env.Verify(InTotoPayloadType, t.trusted())
	if err != nil {
		return Errorf(EUNAUTHORIZED, "workload %s:%s: %v", name, dw.Version, err)
	}
	var st WorkloadStatement
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || st.Type != InTotoStatementType || st.PredicateType != WorkloadPredicateType || len(st.Subject) != 1 {
		return Errorf(EUNAUTHORIZED, "workload %s:%s: not a workload statement", name, dw.Version)
	}
	sum := sha256.Sum256([]byte(dw.Manifest))
	p := st.Predicate
	switch {
	case "sha256:"+st.Subject[0].Digest["sha256"] != dw.Digest || dw.Digest != "sha256:"+hex.EncodeToString(sum[:]):
		return Errorf(EUNAUTHORIZED, "workload %s:%s: the statement is for manifest sha256:%s, not %s", name, dw.Version, clip(st.Subject[0].Digest["sha256"], 64), dw.Digest)
	case p.Workload != name || p.Version != dw.Version || p.Model != dw.Model:
		return Errorf(EUNAUTHORIZED, "workload %s:%s: the statement is for %s:%s calling %q", name, dw.Version, clip(p.Workload, 80), clip(p.Version, 80), clip(p.Model, 80))
	}
	return nil
}

// VouchWorkload checks that the desired workload name is vouched for by a
// signed statement t trusts: its own (a workload release), or that of a
// version of its model the same desired state serves, naming exactly this
// workload version and manifest (a model release carrying it).
func (t *Trust) VouchWorkload(ds Desired, name string, dw DesiredWorkload) error {
	if dw.Statement != nil {
		return t.VerifyWorkload(dw.Statement, name, dw)
	}
	sum := sha256.Sum256([]byte(dw.Manifest))
	if dw.Digest == "sha256:"+hex.EncodeToString(sum[:]) {
		want := SignedWorkload{Name: name, Version: dw.Version, ManifestDigest: dw.Digest}
		for _, v := range ds.Models[dw.Model].Versions {
			st, err := t.VerifyRelease(v.Statement, dw.Model, v)
			if err == nil && st.Predicate.Workload != nil && *st.Predicate.Workload == want {
				return nil
			}
		}
	}
	return Errorf(EUNAUTHORIZED, "workload %s:%s (manifest %s) has no signed statement, and no signed version of %s it serves names it", name, dw.Version, dw.Digest, dw.Model)
}
