package workload

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/modelfleet/modelfleet/workload/wasm/guest"
)

// The guest SDK's Rolling must compute exactly what the host's does, bit
// for bit, so a module's features equal the built-in reference's: the same
// values over windows of several sizes, past the exact recomputation every
// 65536 additions.
func TestGuestRollingEqualsHost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 16, 100} {
		h, g := NewRolling(n), guest.NewRolling(n)
		for i := range 70_000 {
			v := rng.NormFloat64()*50 + 3
			if i%997 == 0 {
				v = -1e6 // a spike, so a lost subtraction would show
			}
			h.Add(v)
			g.Add(v)
			if h.Full() != g.Full() {
				t.Fatalf("n=%d after %d: full %v, guest %v", n, i+1, h.Full(), g.Full())
			}
			for _, c := range [][3]any{{"mean", h.Mean(), g.Mean()}, {"rms", h.RMS(), g.RMS()}, {"peak", h.Peak(), g.Peak()}} {
				if math.Float64bits(c[1].(float64)) != math.Float64bits(c[2].(float64)) {
					t.Fatalf("n=%d after %d: %s %v, guest %v", n, i+1, c[0], c[1], c[2])
				}
			}
		}
	}
}
