package main

import (
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
type balancer struct {
	ln       net.Listener
	replicas []*proc
	addrs    []string
	next     atomic.Uint64
}

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.relay(c)
	}
}

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
			_, _ = io.Copy(s, c)
			if tc, ok := s.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}()
		_, _ = io.Copy(c, s)
		return
	}
}
