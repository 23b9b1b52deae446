package workload

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// steadyListener keeps a broker accepting through accept errors that pass.
// mochi-mqtt v2.7.9's listeners return from their accept loop on the first
// error, whatever it is, and never accept again while the socket stays
// open: clients' connections then wait in the kernel's backlog and none is
// ever answered. One EMFILE (a process briefly out of file descriptors, as
// a loaded host process hosting the broker beside a thousand sites' relays
// was) was enough for every later connection, a restarted workload's
// included, to go unanswered for good, with nothing logged. Here such an
// error is logged, counted (Broker.AcceptErrors) and retried after a
// backoff, as net/http's server does; only the listener's closing ends it.
type steadyListener struct {
	net.Listener
	log    *slog.Logger
	errors atomic.Int64
}

// maxAcceptWait bounds the wait between two attempts after an error.
const maxAcceptWait = time.Second

func (l *steadyListener) Accept() (net.Conn, error) {
	var wait time.Duration
	var streak int
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if streak > 0 {
				l.log.Warn("mqtt broker: accepting connections again", "failed_accepts", streak)
			}
			return c, nil
		}
		if !passingAcceptError(err) {
			return nil, err
		}
		l.errors.Add(1)
		streak++
		wait = min(max(2*wait, 5*time.Millisecond), maxAcceptWait)
		if streak == 1 {
			l.log.Warn("mqtt broker: accept failed; retrying (clients cannot connect meanwhile)", "error", err)
		}
		time.Sleep(wait)
	}
}

// passingAcceptError reports whether an accept error may pass: the process
// or the system out of descriptors or buffers, a connection aborted before
// it was accepted, an interrupted or timed-out call.
func passingAcceptError(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
