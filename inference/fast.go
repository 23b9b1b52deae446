package inference

// The tree formats walk their trees with package forest where they can (see
// forest's doc); these size the buffers they walk with.
const (
	// fastChunk is how many trees' leaves one forest.Leaves call returns,
	// into a buffer on the stack.
	fastChunk = 64
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
