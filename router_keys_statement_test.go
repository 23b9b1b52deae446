package modelfleet

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

func TestVerifyAPIKeys(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	trust := trustOf(key)
	a, b := HashAPIKey("key-a-0123456789abcdef"), HashAPIKey("key-b-0123456789abcdef")
	set := &APIKeys{SHA256: []string{a}, Models: map[string]KeyHashes{"m": {SHA256: []string{b}}}}
	at := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	env, err := SignAPIKeysStatement(APIKeysStatement{Site: "s1", Keys: set, SignedAt: at}, []ed25519.PrivateKey{key})
	if err != nil {
		t.Fatal(err)
	}
	st, err := trust.VerifyAPIKeys(env, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Vouches(set) || !st.SignedAt.Equal(at) {
		t.Fatalf("statement %+v does not vouch for the set it signed", st)
	}
	if st.Vouches(&APIKeys{SHA256: []string{a}, Models: map[string]KeyHashes{"m": {SHA256: []string{a}}}}) {
		t.Fatal("a statement vouches for another set")
	}
	if st.Vouches(nil) {
		t.Fatal("a statement of keys vouches for no keys")
	}
	if _, err := trust.VerifyAPIKeys(env, "s2"); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("another site's statement: %v, want unauthorized", err)
	}
	if _, err := trust.VerifyAPIKeys(nil, "s1"); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("no statement: %v", err)
	}
	byOther, _ := SignAPIKeysStatement(APIKeysStatement{Site: "s1", Keys: set, SignedAt: at}, []ed25519.PrivateKey{other})
	if _, err := trust.VerifyAPIKeys(byOther, "s1"); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("an untrusted key's statement: %v", err)
	}
	tampered := *env
	tampered.Payload = []byte(string(env.Payload[:len(env.Payload)-2]) + " }")
	if _, err := trust.VerifyAPIKeys(&tampered, "s1"); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("a changed payload: %v", err)
	}
	// A release statement's signature does not make a key set.
	rel := SignEnvelope(InTotoPayloadType, env.Payload, key)
	if _, err := trust.VerifyAPIKeys(&rel, "s1"); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("another payload type: %v", err)
	}
	// Clearing is signed too: nil and empty sets are the same.
	clear, _ := SignAPIKeysStatement(APIKeysStatement{Site: "s1", Keys: &APIKeys{Models: map[string]KeyHashes{}}, SignedAt: at}, []ed25519.PrivateKey{key})
	if st, err := trust.VerifyAPIKeys(clear, "s1"); err != nil || !st.Vouches(nil) || !st.Vouches(&APIKeys{}) {
		t.Fatalf("a signed clear: %+v, %v", st, err)
	}
	for name, payload := range map[string]string{
		"unknown field": `{"site":"s1","apiKeys":null,"signedAt":"2026-12-06T06:00:00Z","x":1}`,
		"trailing":      `{"site":"s1","apiKeys":null,"signedAt":"2026-12-06T06:00:00Z"} {}`,
		"no time":       `{"site":"s1","apiKeys":null}`,
		"bad site":      `{"site":"../x","apiKeys":null,"signedAt":"2026-12-06T06:00:00Z"}`,
		"bad hash":      `{"site":"s1","apiKeys":{"sha256":["00"]},"signedAt":"2026-12-06T06:00:00Z"}`,
	} {
		if _, err := DecodeAPIKeysStatement([]byte(payload)); ErrorCode(err) != EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

// FuzzDecodeAPIKeysStatement: any payload a trusted key signed as an API
// key set is either refused as unauthorized or decodes to a valid set for
// the site asked about, which it vouches for.
func FuzzDecodeAPIKeysStatement(f *testing.F) {
	key := mustKey(f)
	trust := trustOf(key)
	good, _ := json.Marshal(APIKeysStatement{Site: "s1", Keys: &APIKeys{SHA256: []string{HashAPIKey("key-a-0123456789abcdef")}}, SignedAt: time.Unix(1, 0).UTC()})
	f.Add(good, "s1")
	f.Add(good, "s2")
	f.Add([]byte(`{"site":"s1","apiKeys":{"models":{"m":{"sha256":[]}}},"signedAt":"2026-12-06T06:00:00Z"}`), "s1")
	f.Add([]byte(`{"site":"s1","apiKeys":null,"signedAt":"2026-12-06T06:00:00Z"}`), "s1")
	f.Fuzz(func(t *testing.T, payload []byte, site string) {
		env := SignEnvelope(APIKeysPayloadType, payload, key)
		st, err := trust.VerifyAPIKeys(&env, site)
		if err != nil {
			if ErrorCode(err) != EUNAUTHORIZED {
				t.Fatalf("a refusal that is not unauthorized: %v", err)
			}
			return
		}
		if st.Site != site || st.SignedAt.IsZero() {
			t.Fatalf("accepted %+v for site %q", st, site)
		}
		if err := st.Keys.Validate(); err != nil {
			t.Fatalf("accepted an invalid set: %v", err)
		}
		if !st.Vouches(st.Keys) {
			t.Fatal("a statement does not vouch for its own set")
		}
	})
}
