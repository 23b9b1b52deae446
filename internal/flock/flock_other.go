//go:build !unix

package flock

import "os"

// Lock does not lock where flock is missing (the binary is built for
// Linux); callers must tolerate two holders at once there.
func Lock(string, os.FileMode) (func(), error) { return func() {}, nil }
