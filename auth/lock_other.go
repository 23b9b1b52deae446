//go:build !unix

package auth

// lockFile does not lock where flock is missing: two processes
// refreshing at once may spend a rotated refresh token twice, and the
// loser asks the person to log in again.
func lockFile(string) (func(), error) { return func() {}, nil }
