package forest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// walk is the plain walk of a tree as Node describes it: what Leaves must
// agree with.
func walk(nodes []Node, i int, x []float64) int32 {
	for !nodes[i].Leaf {
		n := nodes[i]
		v := x[n.Feature]
		switch {
		case math.IsNaN(v) && n.NaNLeft, !math.IsNaN(v) && v <= n.Threshold:
			i = n.Left
		default:
			i = n.Right
		}
	}
	return nodes[i].LeafID
}

// randomForest is trees of random shapes (depth up to maxDepth, some
// leaves early) over features, with thresholds drawn from the values rows
// take, so that rows hit them exactly too.
func randomForest(rng *rand.Rand, trees, maxDepth, features int, values []float64) (nodes []Node, roots []int) {
	var grow func(depth int) int
	grow = func(depth int) int {
		i := len(nodes)
		nodes = append(nodes, Node{})
		if depth == maxDepth || (depth > 0 && rng.IntN(6) == 0) {
			nodes[i] = Node{Leaf: true, LeafID: int32(rng.IntN(1 << 20))}
			return i
		}
		n := Node{Feature: rng.IntN(features), Threshold: values[rng.IntN(len(values))], NaNLeft: rng.IntN(2) == 0}
		if math.IsNaN(n.Threshold) {
			n.Threshold = 0
		}
		n.Left = grow(depth + 1)
		n.Right = grow(depth + 1)
		nodes[i] = n
		return i
	}
	for range trees {
		roots = append(roots, grow(0))
	}
	// Shuffle the trees' order against their layout.
	rng.Shuffle(len(roots), func(a, b int) { roots[a], roots[b] = roots[b], roots[a] })
	return nodes, roots
}

func TestLeavesAgreesWithThePlainWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	values := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 1, -1, 0.5,
		math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64, 1e-35, 3.25}
	for range 50 {
		values = append(values, rng.NormFloat64()*10)
	}
	for _, tc := range []struct{ trees, depth, features int }{
		{1, 0, 1}, {1, 1, 1}, {3, 4, 2}, {4, 6, 6}, {7, 3, 5}, {300, 6, 6}, {33, 12, 9},
	} {
		nodes, roots := randomForest(rng, tc.trees, tc.depth, tc.features, values)
		f, err := Compile(nodes, roots, tc.features)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if f.Trees() != tc.trees || f.Features() != tc.features {
			t.Fatalf("%+v: compiled %d trees over %d features", tc, f.Trees(), f.Features())
		}
		out := make([]int32, tc.trees)
		x := make([]float64, tc.features)
		for r := range 500 {
			for i := range x {
				x[i] = values[rng.IntN(len(values))]
			}
			// Whole, and in chunks that start anywhere: the tail walk too.
			f.Leaves(x, 0, out)
			chunk := make([]int32, 0, tc.trees)
			for first := 0; first < tc.trees; {
				n := min(1+rng.IntN(9), tc.trees-first)
				part := make([]int32, n)
				f.Leaves(x, first, part)
				chunk = append(chunk, part...)
				first += n
			}
			for k, root := range roots {
				want := walk(nodes, root, x)
				if out[k] != want || chunk[k] != want {
					t.Fatalf("%+v row %d %v tree %d: leaf %d (in chunks %d), the plain walk %d", tc, r, x, k, out[k], chunk[k], want)
				}
			}
		}
	}
}

func TestLessThan(t *testing.T) {
	for _, th := range []float64{0, 1, -1, 0.1, math.Inf(1), math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64} {
		le, ok := LessThan(th)
		if !ok {
			t.Fatalf("LessThan(%v) refused", th)
		}
		for _, v := range []float64{th, math.Nextafter(th, math.Inf(-1)), math.Nextafter(th, math.Inf(1)), th - 1, th + 1, 0, math.Inf(-1), math.Inf(1)} {
			if (v < th) != (v <= le) {
				t.Fatalf("threshold %v: %v < %v is %v but %v <= %v is %v", th, v, th, v < th, v, le, v <= le)
			}
		}
	}
	for _, th := range []float64{math.NaN(), math.Inf(-1)} {
		if _, ok := LessThan(th); ok {
			t.Fatalf("LessThan(%v) accepted: no float is below it", th)
		}
	}
}

func TestCompileRefusesWhatIsNotAForest(t *testing.T) {
	leaf := Node{Leaf: true}
	for name, tc := range map[string]struct {
		nodes    []Node
		roots    []int
		features int
		want     string
	}{
		"shared child":    {[]Node{{Left: 1, Right: 1}, leaf}, []int{0}, 1, "share"},
		"cycle":           {[]Node{{Left: 0, Right: 1}, leaf}, []int{0}, 1, "share"},
		"shared root":     {[]Node{leaf}, []int{0, 0}, 1, "share"},
		"shared subtree":  {[]Node{{Left: 2, Right: 3}, {Left: 2, Right: 4}, leaf, leaf, leaf}, []int{0, 1}, 1, "share"},
		"root out":        {[]Node{leaf}, []int{1}, 1, "not a node"},
		"child out":       {[]Node{{Left: 1, Right: 5}, leaf}, []int{0}, 1, "not nodes"},
		"negative child":  {[]Node{{Left: -1, Right: 1}, leaf}, []int{0}, 1, "not nodes"},
		"feature out":     {[]Node{{Feature: 1, Left: 1, Right: 2}, leaf, leaf}, []int{0}, 1, "feature 1 of 1"},
		"NaN threshold":   {[]Node{{Threshold: math.NaN(), Left: 1, Right: 2}, leaf, leaf}, []int{0}, 1, "NaN"},
		"feature too big": {[]Node{leaf}, []int{0}, 1 << 31, "too large"},
	} {
		if _, err := Compile(tc.nodes, tc.roots, tc.features); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

func TestLeavesPanicsOnARowOfTheWrongLength(t *testing.T) {
	f, err := Compile([]Node{{Leaf: true}}, []int{0}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a short row did not panic")
		}
	}()
	f.Leaves([]float64{1}, 0, make([]int32, 1))
}

// FuzzCompile: no node list makes Compile or a walk of what it compiled
// panic, and what compiles walks as the plain walk does.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(2))
	f.Add([]byte{255, 0, 0, 1, 2, 128, 7, 7, 7, 7, 7, 7, 7, 7}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, features uint8) {
		if len(data) > 4096 {
			return
		}
		var nodes []Node
		for i := 0; i+5 <= len(data); i += 5 {
			b := data[i : i+5]
			if b[0]&1 == 0 {
				nodes = append(nodes, Node{Leaf: true, LeafID: int32(b[1])})
				continue
			}
			nodes = append(nodes, Node{Feature: int(b[1] % 8), Threshold: float64(int8(b[2])) / 4,
				Left: int(b[3] % 64), Right: int(b[4] % 64), NaNLeft: b[0]&2 != 0})
		}
		var roots []int
		for i := range min(len(nodes), 3) {
			roots = append(roots, i*len(nodes)/3)
		}
		fo, err := Compile(nodes, roots, int(features%8))
		if err != nil {
			return
		}
		x := make([]float64, fo.Features())
		for i := range x {
			if len(data) == 0 {
				break
			}
			x[i] = float64(int8(data[i%len(data)])) / 4
			if data[i%len(data)] == 0x7f {
				x[i] = math.NaN()
			}
		}
		out := make([]int32, fo.Trees())
		fo.Leaves(x, 0, out)
		for k, r := range roots {
			if want := walk(nodes, r, x); out[k] != want {
				t.Fatalf("tree %d: leaf %d, the plain walk %d", k, out[k], want)
			}
		}
	})
}

func BenchmarkLeaves(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, 64)
	for i := range values {
		values[i] = rng.NormFloat64()
	}
	nodes, roots := randomForest(rng, 300, 6, 6, values)
	f, err := Compile(nodes, roots, 6)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]float64, 1000)
	for i := range rows {
		rows[i] = make([]float64, 6)
		for j := range rows[i] {
			rows[i][j] = rng.NormFloat64()
		}
	}
	out := make([]int32, 300)
	b.Run("forest", func(b *testing.B) {
		i := 0
		for b.Loop() {
			f.Leaves(rows[i%len(rows)], 0, out)
			i++
		}
	})
	// cold walks batch rows back to back after sweeping sweepMiB through
	// the caches (the timer stopped meanwhile), and reports the time per
	// row. One row after 64 MiB is a walk whose nodes the caches no longer
	// hold, as a router's walk between the request's network path and
	// JSON finds them; a batch is a router's backlog walking a shadow's
	// rows (edge/post.go): its first row walks cold, the others find what
	// it and their predecessors fetched.
	sweep := make([]byte, 64<<20)
	cold := func(sweepMiB, batch int) func(*testing.B) {
		return func(b *testing.B) {
			k := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := 0; j < sweepMiB<<20; j += 64 {
					sweep[j]++
				}
				b.StartTimer()
				for range batch {
					f.Leaves(rows[k%len(rows)], 0, out)
					k++
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
		}
	}
	b.Run("forest-cold", cold(64, 1))
	for _, tc := range []struct{ sweep, batch int }{{8, 1}, {8, 16}, {8, 64}, {64, 16}, {64, 64}} {
		b.Run(fmt.Sprintf("cold%dMiB-batch%d", tc.sweep, tc.batch), cold(tc.sweep, tc.batch))
	}
	b.Run("plain", func(b *testing.B) {
		i := 0
		for b.Loop() {
			for k, r := range roots {
				out[k] = walk(nodes, r, rows[i%len(rows)])
			}
			i++
		}
	})
}
