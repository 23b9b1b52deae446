package edge

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// What one site does in a rollout, with release statements verified and
// without (bench/rollout's verify_overhead_ratio, one site of it): apply
// a new version at 100 %, then the same split again (the release's finish
// sends it once more). The difference between the two is what a signed
// release costs a site per version.
func BenchmarkApplyRollout(b *testing.B) {
	dir := os.Getenv("EDGE_BENCH_DIR") // e.g. /dev/shm: the file system's cost apart
	for _, signedRun := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "signed"}[signedRun], func(b *testing.B) {
			s := newSigner(b)
			var trust *modelfleet.Trust
			if signedRun {
				trust = s.trust
			}
			d, err := os.MkdirTemp(dir, "apply-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(d)
			a, err := Open(d, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, Trust: trust})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			// The versions signed beforehand (the control plane signs, not
			// the site), more than the site remembers verifying: each
			// version is new to it, as each release's is.
			const n = 2 * maxVerified
			arts := map[string][]byte{}
			var vs []modelfleet.DesiredVersion
			for i := range n {
				art := fakeArtifact(float64(i), 1, 1, 1)
				v := s.version(b, "m", strconv.Itoa(i), art, 100)
				if !signedRun {
					v.Statement = nil
				}
				arts[v.Version] = art
				vs = append(vs, v)
			}
			fetch := fetchAll(arts)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v := []modelfleet.DesiredVersion{vs[i%n]}
				i++
				for range 2 {
					if err := a.Apply(context.Background(), "m", v, fetch); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
