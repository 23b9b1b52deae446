package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// What the gateway does for each site of a rollout, plain and signed: a
// step, the site's poll of its desired state (as an older agent asks, the
// whole document, and as an agent naming its key set asks), and the
// release's progress read. The signed fleet's documents carry each
// version's statement (the new one and, under the release's lease, the
// previous one) and every poll the release key set: the difference
// between the two is what signing costs the gateway per site.
func BenchmarkRolloutGateway(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := modelfleet.TrustedKeyOf(key.Public())
	set, err := modelfleet.SignKeySet(modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: 1}, []ed25519.PrivateKey{key})
	if err != nil {
		b.Fatal(err)
	}
	feats := []string{"vibration_rms_mm_s", "temperature_c", "current_a", "rpm", "acoustic_db", "hours"}
	for _, signed := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "signed"}[signed]
		v := func(n string) modelfleet.DesiredVersion {
			dv := version(n, 100)
			dv.Features, dv.ArtifactURL, dv.Size = feats, "http://127.0.0.1:9000/api/blobs/"+dv.Digest, 106496
			if signed {
				st := modelfleet.NewReleaseStatement(dv.Digest, dv.Size, modelfleet.ReleasePredicate{Model: "m", Version: n, Format: dv.Format, Features: feats,
					Validation: modelfleet.ValidationResult{}, Release: "release/m/" + n, SignedAt: time.Now()})
				env, err := modelfleet.SignStatement(st, []ed25519.PrivateKey{key})
				if err != nil {
					b.Fatal(err)
				}
				dv.Statement = env
			}
			return dv
		}
		const n = 100
		var sites []string
		for i := range n {
			sites = append(sites, fmt.Sprintf("site-%05d", i))
		}
		d := mustOpen(b, sites...)
		if signed {
			d.SetReleaseKeys(set)
		}
		if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v("1"), Sites: sites}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Finish("r1", "m", sites); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: v("2"), Sites: sites}); err != nil {
			b.Fatal(err)
		}
		h := d.Handler()
		poll := func(b *testing.B, query string) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				r := httptest.NewRequest(http.MethodGet, "/api/sites/"+sites[i%n]+"/desired?after=-1"+query, nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		}
		b.Run(name+"/poll-whole", func(b *testing.B) { poll(b, "") })
		b.Run(name+"/poll-agent", func(b *testing.B) { poll(b, "&"+agentKeysParam+"="+set.Tag()) })
		// What the agent decodes of each answer.
		decode := func(b *testing.B, query string) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/sites/"+sites[0]+"/desired?after=-1"+query, nil))
			body := w.Body.Bytes()
			b.ReportAllocs()
			cpu := reportCPU(b)
			for b.Loop() {
				var ds modelfleet.Desired
				if err := json.Unmarshal(body, &ds); err != nil {
					b.Fatal(err)
				}
			}
			cpu()
			b.ReportMetric(float64(len(body)), "answer-bytes")
		}
		b.Run(name+"/agent-decode-whole", func(b *testing.B) { decode(b, "") })
		b.Run(name+"/agent-decode-agent", func(b *testing.B) { decode(b, "&"+agentKeysParam+"="+set.Tag()) })
		b.Run(name+"/step", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				// The same step again: each site's document is read,
				// decoded, encoded and written back all the same.
				if _, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: v("2"), Sites: sites[i%n : i%n+1]}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/progress", func(b *testing.B) {
			for _, s := range sites {
				if err := d.ReportActual(modelfleet.Actual{Site: s, Revision: 2, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{{Version: "2", Digest: v("2").Digest, Weight: 100}}}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := d.Progress("m", "2", sites); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU reports the process's CPU time per operation (cpu-ns/op), from
// when it is called to when what it returns is: on a machine busy with
// other work, a benchmark's wall time per operation says little, its CPU
// time more.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}
