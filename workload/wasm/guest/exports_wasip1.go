//go:build wasip1

package guest

import "unsafe"

// The ABI v1 exports. Results stay valid until the next call: they live in
// package variables the host reads right after the call returns.

var input []byte

//go:wasmexport modelfleet_abi
func abiVersion() int32 { return ABI }

//go:wasmexport modelfleet_alloc
func alloc(size int32) uint32 {
	if cap(input) < int(size) {
		input = make([]byte, size)
	}
	input = input[:size]
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&input[0])))
}

//go:wasmexport modelfleet_init
func initialize(ptr, size uint32) uint64 { return pack(handleInit(view(ptr, size))) }

//go:wasmexport modelfleet_prepare
func prepareSample(ptr, size uint32) uint64 { return pack(handlePrepare(view(ptr, size))) }

//go:wasmexport modelfleet_decide
func decidePrediction(ptr, size uint32) uint64 { return pack(handleDecide(view(ptr, size))) }

// view is the input the host wrote: always the buffer alloc returned.
func view(ptr, size uint32) []byte {
	if size == 0 || int(size) != len(input) || ptr != uint32(uintptr(unsafe.Pointer(&input[0]))) {
		return nil // decoding nothing refuses the call
	}
	return input
}

func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}
