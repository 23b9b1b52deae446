// Package netfault makes network faults for tests: a listener whose process
// is out of file descriptors for a moment.
package netfault

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// EMFILEListener fails its first N accepts as accept4 does when the
// process is out of file descriptors (EMFILE), then accepts.
type EMFILEListener struct {
	net.Listener
	N      int32
	failed atomic.Int32
}

// Accept fails with EMFILE N times, then accepts from the listener.
func (l *EMFILEListener) Accept() (net.Conn, error) {
	if l.failed.Add(1) <= l.N {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}
