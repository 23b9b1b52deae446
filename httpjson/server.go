package httpjson

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is a listener plus a server, so callers learn the bound address
// (port 0 in tests) before serving. Every process's HTTP endpoints use it.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	scheme string
}

// Listen binds addr and returns a Server for h; Start serves it.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewServer(ln, h), nil
}

// Timeouts of every server (Timeouts). A request that is meant to take
// longer says so itself: a long poll or a bulk transfer moves its own
// deadlines with LongRequest.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	// BulkTransferTimeout is how long an artifact upload or download may
	// take (LongRequest): 512 MiB at 300 KiB/s.
	BulkTransferTimeout = 30 * time.Minute
	maxHeaderBytes      = 64 << 10
)

// Timeouts bound how long a client may take: to send its headers (a
// slow-loris client is cut off there), its whole request, to read the
// response, and to keep an idle connection.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are every server's unless SetTimeouts says otherwise.
var DefaultTimeouts = Timeouts{ReadHeader: DefaultReadHeaderTimeout, Read: DefaultReadTimeout, Write: DefaultWriteTimeout, Idle: DefaultIdleTimeout}

// NewServer serves h on an already bound listener once started.
func NewServer(ln net.Listener, h http.Handler) *Server {
	s := &Server{ln: ln, srv: &http.Server{Handler: h, MaxHeaderBytes: maxHeaderBytes}, scheme: "http"}
	s.SetTimeouts(DefaultTimeouts)
	return s
}

// SetTimeouts replaces the server's timeouts; call before Start.
func (s *Server) SetTimeouts(t Timeouts) {
	s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout = t.ReadHeader, t.Read, t.Write, t.Idle
}

// LongRequest moves the read and write deadlines of the request w answers
// to d from now: for the requests that are slow by design (a long poll, an
// artifact upload or download), which the server's timeouts would cut.
// Servers without deadlines (httptest recorders) ignore it.
func LongRequest(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	until := time.Now().Add(d)
	_ = rc.SetReadDeadline(until)
	_ = rc.SetWriteDeadline(until)
}

// UseTLS serves TLS with cfg instead of plain HTTP; call before Start.
func (s *Server) UseTLS(cfg *tls.Config) {
	s.ln, s.scheme = tls.NewListener(s.ln, cfg), "https"
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is http(s)://<bound address>.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr() }

// Start serves in the background; a server that stops other than by Close
// is logged under name.
func (s *Server) Start(log *slog.Logger, name string) {
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "server", name, "error", err)
		}
	}()
}

// Close shuts the server down, giving requests in flight five seconds.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
