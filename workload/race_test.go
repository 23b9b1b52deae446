//go:build race

package workload

// raceEnabled: under the race detector a module runs slower; the memory
// bomb of TestModuleFaultsAreContained took over 2 s to reach its memory
// limit there (measured: dead-lettered as a timeout instead).
const raceEnabled = true
