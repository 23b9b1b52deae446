//go:build race

package inference

// raceEnabled: the race detector drops sync.Pool items at random, so a
// pooled path allocates then.
const raceEnabled = true
