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

// NewServer serves h on an already bound listener once started.
func NewServer(ln net.Listener, h http.Handler) *Server {
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, scheme: "http"}
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
