package main

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// balancer stands in for the load balancer in front of gateway replicas:
// each connection goes to the next replica whose process is up; a replica
// killed takes its connections with it, and the clients (agents' long
// polls, the worker, the registry's webhook) reconnect through here to
// another, as behind a Kubernetes Service.
//
// It runs in the harness process beside the workload runners' MQTT broker,
// and with a thousand fleet sites relays a couple of thousand connections:
// it copies through a buffer of its own (io.Copy between two TCP
// connections splices through a pipe per direction, four more descriptors
// per connection, which took the process to its 20,000 and made accept
// fail with EMFILE), and an accept error is retried, counted in
// acceptErrors, rather than ending the loop (which left every later
// connection unanswered in the backlog).
type balancer struct {
	ln           net.Listener
	replicas     []*proc
	addrs        []string
	next         atomic.Uint64
	acceptErrors atomic.Int64
}

func (b *balancer) serve() {
	var wait time.Duration
	for {
		c, err := b.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			b.acceptErrors.Add(1)
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			time.Sleep(wait)
			continue
		}
		wait = 0
		go b.relay(c)
	}
}

// relayBuffer is each direction's copy buffer.
const relayBuffer = 16 << 10

func (b *balancer) relay(c net.Conn) {
	defer c.Close()
	for try := 0; try < 4*len(b.addrs); try++ {
		i := int(b.next.Add(1) % uint64(len(b.addrs)))
		if !b.replicas[i].up.Load() {
			continue
		}
		s, err := net.DialTimeout("tcp", b.addrs[i], time.Second)
		if err != nil {
			continue
		}
		defer s.Close()
		go func() {
			copyPlain(s, c)
			if tc, ok := s.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}()
		copyPlain(c, s)
		return
	}
}

// copyPlain copies src to dst through a buffer, never by splice: the
// wrappers hide the connections' ReadFrom and WriteTo.
func copyPlain(dst io.Writer, src io.Reader) {
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, relayBuffer))
}
