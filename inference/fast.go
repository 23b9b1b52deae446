package inference

import (
	"sync"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// lazyForest is a model's trees compiled for the fast walk, on first use:
// a version loaded but never scored (the previous one, kept for an instant
// rollback; one of thousands in a fleet simulation) does not carry a
// second copy of its trees.
type lazyForest struct {
	once    sync.Once
	f       *forest.Forest
	compile func() *forest.Forest // nil: nothing to compile (own walk only)
}

func newLazyForest(compile func() *forest.Forest) *lazyForest {
	return &lazyForest{compile: compile}
}

// get is the compiled forest, nil where the trees did not compile.
func (l *lazyForest) get() *forest.Forest {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		if l.compile != nil {
			l.f, l.compile = l.compile(), nil
		}
	})
	return l.f
}

// The tree formats walk their trees with package forest where they can (see
// forest's doc); these size the buffers they walk with.
const (
	// fastRowOnStack is the widest row a prediction copies on the stack;
	// a wider one is copied into an allocated slice.
	fastRowOnStack = 64
)

// rowBuffer is buf[:n], or a new slice of n when buf is too short.
func rowBuffer(buf []float64, n int) []float64 {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]float64, n)
}
