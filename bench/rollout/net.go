package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Every simulated site, the cloud worker and the registry client share
// http.DefaultClient, so its transport decides how the whole fleet reaches
// the gateway and the registry. The benchmark replaces http.DefaultTransport
// with one built here: pooled for thousands of hosts' worth of connections,
// optionally routed over in-memory pipes, and metered.

// Several stacks may run side by side in this process (the overhead
// comparison), each with a fleet of its own to meter: http.DefaultTransport
// is a mux, installed once, that sends a request to the transport of the
// stack serving its host (its gateways and its registry), and anything
// else to the transport it replaced.
var fleetHosts sync.Map // host → http.RoundTripper

type hostMux struct{ fallback http.RoundTripper }

func (m hostMux) RoundTrip(r *http.Request) (*http.Response, error) {
	if t, ok := fleetHosts.Load(r.URL.Host); ok {
		return t.(http.RoundTripper).RoundTrip(r)
	}
	return m.fallback.RoundTrip(r)
}

var installMux sync.Once

func installHostMux() {
	installMux.Do(func() { http.DefaultTransport = hostMux{fallback: http.DefaultTransport} })
}

// route sends the fleet's requests to host through this stack's metered
// transport, until the stack closes.
func (s *stack) route(host string) {
	fleetHosts.Store(host, s.meter)
	s.closers = append(s.closers, func() { fleetHosts.Delete(host) })
}

// pipeListener is a net.Listener whose connections are in-memory pipes. In
// pipe mode the gateway's site directory and the registry are served on one,
// so the fleet's long polls cost no file descriptors: a long poll over
// loopback TCP holds two (client and server end) in this one process, and
// 10,000 of them do not fit under the 20,000-descriptor hard limit here.
type pipeListener struct {
	addr  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener(addr string) *pipeListener {
	return &pipeListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.addr) }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// fabric dials host:port either over TCP or, for the addresses routed to a
// pipeListener, in memory.
type fabric struct {
	mu     sync.Mutex
	routes map[string]*pipeListener
	dialer net.Dialer
}

func (f *fabric) route(addr string) *pipeListener {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.routes == nil {
		f.routes = map[string]*pipeListener{}
	}
	l := newPipeListener(addr)
	f.routes[addr] = l
	return l
}

func (f *fabric) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	l := f.routes[addr]
	f.mu.Unlock()
	if l != nil {
		return l.dial(ctx)
	}
	return f.dialer.DialContext(ctx, network, addr)
}

// newTransport keeps one idle connection per agent and goroutine alive
// instead of http.DefaultTransport's 2 per host (100 in all): with the
// default, every long poll that ends closes its connection and the next one
// dials again, leaving thousands of sockets in TIME_WAIT per heartbeat.
func newTransport(f *fabric, sites int) *http.Transport {
	return &http.Transport{
		DialContext:           f.dial,
		MaxIdleConns:          0, // no overall cap
		MaxIdleConnsPerHost:   4*sites + 100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // loopback: gzip would only burn CPU
	}
}

// meter counts the fleet's requests by kind, so the benchmark knows when
// every agent has reported and is long-polling, and can say how many
// downloads and reports a phase cost.
type meter struct {
	next http.RoundTripper

	reports      atomic.Int64 // PUT /api/sites/{id}/actual, answered 2xx
	polls        atomic.Int64 // GET /api/sites/{id}/desired, answered
	pollsOpen    atomic.Int64 // long polls in flight
	downloads    atomic.Int64 // GET /api/blobs/{digest}, answered 200
	downloadErrs atomic.Int64 // ... answered otherwise, or not at all

	// Time spent in the directory's writes as the agents see it: each is a
	// transaction of its own on the gateway, so queueing shows here first.
	reportNanos atomic.Int64
}

type counts struct {
	reports, polls, downloads, downloadErrs int64
	reportTime                              time.Duration
}

func (m *meter) snapshot() counts {
	return counts{m.reports.Load(), m.polls.Load(), m.downloads.Load(), m.downloadErrs.Load(), time.Duration(m.reportNanos.Load())}
}

func (c counts) minus(o counts) counts {
	return counts{c.reports - o.reports, c.polls - o.polls, c.downloads - o.downloads, c.downloadErrs - o.downloadErrs, c.reportTime - o.reportTime}
}

func (c counts) String() string {
	mean := func(d time.Duration, n int64) float64 {
		if n == 0 {
			return 0
		}
		return d.Seconds() * 1000 / float64(n)
	}
	return fmt.Sprintf("downloads=%d download_errors=%d reports=%d (mean %.0fms) polls=%d",
		c.downloads, c.downloadErrs, c.reports, mean(c.reportTime, c.reports), c.polls)
}

func (m *meter) RoundTrip(r *http.Request) (*http.Response, error) { return m.roundTrip(m.next, r) }

// via meters requests sent through next (a site's own mTLS transport) in
// the same counters.
func (m *meter) via(next http.RoundTripper) http.RoundTripper { return meterVia{m, next} }

type meterVia struct {
	m    *meter
	next http.RoundTripper
}

func (v meterVia) RoundTrip(r *http.Request) (*http.Response, error) { return v.m.roundTrip(v.next, r) }

func (m *meter) roundTrip(next http.RoundTripper, r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/api/blobs/"):
		resp, err := next.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusOK {
			m.downloads.Add(1)
		} else {
			m.downloadErrs.Add(1)
		}
		return resp, err
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/desired"):
		m.pollsOpen.Add(1)
		defer m.pollsOpen.Add(-1)
		resp, err := next.RoundTrip(r)
		if err == nil {
			m.polls.Add(1)
		}
		return resp, err
	case r.Method == http.MethodPut && strings.HasSuffix(p, "/actual"):
		return m.timed(next, r, &m.reports, &m.reportNanos)
	}
	return next.RoundTrip(r)
}

// timed forwards a directory write and, if it succeeded, counts it and its
// latency.
func (m *meter) timed(next http.RoundTripper, r *http.Request, ok, nanos *atomic.Int64) (*http.Response, error) {
	began := time.Now()
	resp, err := next.RoundTrip(r)
	if err == nil && resp.StatusCode/100 == 2 {
		nanos.Add(int64(time.Since(began)))
		ok.Add(1)
	}
	return resp, err
}
