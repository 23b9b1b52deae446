package modelfleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"
)

// FuzzVerifyWorkload decodes any payload a trusted key signed as a
// workload statement (the decoder behind the signature): it accepts only a
// statement for exactly the desired manifest, workload, version and model.
func FuzzVerifyWorkload(f *testing.F) {
	key, other := mustKey(f), mustKey(f)
	trust, others := trustOf(key), trustOf(other)
	manifest := "name: w\nversion: \"1\"\n"
	sum := sha256.Sum256([]byte(manifest))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	rec := WorkloadRecord{Name: "w", Version: "1", Model: "m", Digest: digest, Manifest: manifest}
	good, _ := json.Marshal(NewWorkloadStatement(rec, "release/w", time.Unix(0, 0).UTC()))
	f.Add(good, "w", "1", "m", manifest)
	f.Add(good, "w", "2", "m", manifest)
	f.Add(good, "w", "1", "m", manifest+" ")
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{}}],"predicateType":"https://modelfleet.dev/attestations/workload/v1","predicate":{}}`), "", "", "", "")
	f.Fuzz(func(t *testing.T, payload []byte, name, version, model, manifest string) {
		env := SignEnvelope(InTotoPayloadType, payload, key)
		sum := sha256.Sum256([]byte(manifest))
		dw := DesiredWorkload{Version: version, Model: model, Manifest: manifest, Digest: "sha256:" + hex.EncodeToString(sum[:]), Statement: &env}
		if err := trust.VerifyWorkload(&env, name, dw); err != nil {
			if ErrorCode(err) != EUNAUTHORIZED {
				t.Fatalf("a refusal that is not unauthorized: %v", err)
			}
			return
		}
		var st WorkloadStatement
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatalf("accepted a payload that does not decode: %v", err)
		}
		p := st.Predicate
		if len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != dw.Digest || p.Workload != name || p.Version != version || p.Model != model {
			t.Fatalf("accepted a statement for %+v as %s:%s calling %s, manifest %s", st, name, version, model, dw.Digest)
		}
		if others.VerifyWorkload(&env, name, dw) == nil {
			t.Fatal("another key's trust accepts it")
		}
	})
}
