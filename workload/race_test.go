//go:build race

package workload

// raceEnabled: the race detector makes a module's memory growth (wazero
// copying the memory it grows, every copy instrumented) many times slower.
const raceEnabled = true
