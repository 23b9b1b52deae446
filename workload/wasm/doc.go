// Package wasm runs workload feature code written as WebAssembly (WASI)
// modules, on wazero (pure Go: the agent stays one static binary).
//
// A module is named by the sha256 digest of its bytes in the workload's
// manifest (spec.Module), checked against that digest whenever it is
// loaded, compiled once per version (a wazero compilation cache shared by
// every version, optionally on disk), and instantiated once per worker of
// the runtime. An instance sees nothing but what the ABI hands it: no
// files, no network, no environment, a fixed clock and a deterministic
// random source (wazero's defaults when none is configured); its linear
// memory is capped at module.memoryMiB and every call at
// module.callTimeout. An instance that runs out of either, or traps, is
// closed and the call returns a *Fault.
//
// ABI version 1 (docs/workloads.md has the full text). The module exports
// its memory and:
//
//	modelfleet_abi() i32                  -> 1
//	modelfleet_alloc(size i32) i32        a buffer of size bytes the host writes the next input into
//	modelfleet_init(ptr, len i32) i64     the configuration (JSON), once per instance
//	modelfleet_prepare(ptr, len i32) i64  one sample of one machine -> warming, features, or refused
//	modelfleet_decide(ptr, len i32) i64   one prediction -> the action to publish, or refused
//
// A result is packed as ptr<<32 | len and points into the module's memory;
// its first byte is a status. All numbers are little-endian. The guest
// side is package workload/wasm/guest.
package wasm
