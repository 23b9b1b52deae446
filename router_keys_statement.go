package modelfleet

import (
	"bytes"
	"crypto"
	"encoding/json"
	"io"
	"reflect"
	"time"
)

// The router API key hashes a site's desired state carries (Desired.APIKeys)
// are vouched for like a release: the gateway, having authorised the
// operator who set them (PUT /api/apikeys), signs the site's whole key set
// with the release keys, and the statement travels beside it
// (Desired.APIKeysStatement). A site that pinned release keys applies a set
// only with a statement a key it trusts signed, for that site, exactly that
// set, and not older than the set in force; so whoever can write a site's
// desired state (a compromised database) cannot replace its keys.

// APIKeysPayloadType is the DSSE payload type of a signed router API key set.
const APIKeysPayloadType = "application/vnd.modelfleet.api-keys.v1+json"

// APIKeysStatement is what the gateway signs: a site's router API key
// hashes (nil: the control plane sets none) as of SignedAt.
type APIKeysStatement struct {
	Site     string    `json:"site"`
	Keys     *APIKeys  `json:"apiKeys"`
	SignedAt time.Time `json:"signedAt"`
}

// DecodeAPIKeysStatement decodes a signed key set's payload strictly (one
// JSON object, no unknown fields) and checks its bounds.
func DecodeAPIKeysStatement(payload []byte) (APIKeysStatement, error) {
	var st APIKeysStatement
	if len(payload) > MaxEnvelopePayload {
		return st, Errorf(EINVALID, "api keys statement: %d bytes, at most %d", len(payload), MaxEnvelopePayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return APIKeysStatement{}, Errorf(EINVALID, "api keys statement: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return APIKeysStatement{}, Errorf(EINVALID, "api keys statement: data after the object")
	}
	if err := ValidateName("site id", st.Site); err != nil {
		return APIKeysStatement{}, Errorf(EINVALID, "api keys statement: %v", err)
	}
	if st.SignedAt.IsZero() {
		return APIKeysStatement{}, Errorf(EINVALID, "api keys statement: no signedAt")
	}
	if err := st.Keys.Validate(); err != nil {
		return APIKeysStatement{}, Errorf(EINVALID, "api keys statement: %v", err)
	}
	st.Keys = normalAPIKeys(st.Keys)
	return st, nil
}

// SignAPIKeysStatement signs st with keys (SignAll).
func SignAPIKeysStatement[K crypto.Signer](st APIKeysStatement, keys []K) (*Envelope, error) {
	st.Keys = normalAPIKeys(st.Keys)
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return SignAll(APIKeysPayloadType, b, keys)
}

// VerifyAPIKeys checks that env is an API key statement signed by a key t
// trusts, for site, and returns it. Every refusal is EUNAUTHORIZED with the
// reason a site reports.
func (t *Trust) VerifyAPIKeys(env *Envelope, site string) (APIKeysStatement, error) {
	if env == nil {
		return APIKeysStatement{}, Errorf(EUNAUTHORIZED, "api keys of the desired state are not signed")
	}
	payload, _, err := env.Verify(APIKeysPayloadType, t.trusted())
	if err != nil {
		return APIKeysStatement{}, Errorf(EUNAUTHORIZED, "api keys of the desired state: %v", err)
	}
	st, err := DecodeAPIKeysStatement(payload)
	if err != nil {
		return APIKeysStatement{}, Errorf(EUNAUTHORIZED, "api keys of the desired state: %v", err)
	}
	if st.Site != site {
		return APIKeysStatement{}, Errorf(EUNAUTHORIZED, "api keys of the desired state: the statement is for site %q, not %q", clip(st.Site, 80), site)
	}
	return st, nil
}

// Vouches reports whether the statement is for exactly the key set k (nil
// and empty sets are the same).
func (st APIKeysStatement) Vouches(k *APIKeys) bool {
	return reflect.DeepEqual(normalAPIKeys(st.Keys), normalAPIKeys(k))
}

// normalAPIKeys drops empty lists and maps, so that a set compares (and
// signs) the same however it was built.
func normalAPIKeys(k *APIKeys) *APIKeys {
	if k.Empty() {
		return nil
	}
	c := k.Clone()
	if len(c.SHA256) == 0 {
		c.SHA256 = nil
	}
	if len(c.Models) == 0 {
		c.Models = nil
	}
	return c
}
