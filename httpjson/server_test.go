package httpjson

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T, h http.Handler, to Timeouts) *Server {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTimeouts(to)
	srv.Start(slog.New(slog.DiscardHandler), "test")
	t.Cleanup(srv.Close)
	return srv
}

// trickle sends s a byte at a time, every gap, until the server closes the
// connection; it returns how long that took, or fails the test after limit.
func trickle(t *testing.T, addr, s string, gap, limit time.Duration) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		// The server's answer (408 or nothing) and its close end this.
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	for i := 0; ; i = (i + 1) % len(s) {
		select {
		case <-closed:
			return time.Since(start)
		case <-time.After(gap):
		}
		if time.Since(start) > limit {
			t.Fatalf("the server still reads a client trickling %q after %s", s, limit)
		}
		if _, err := c.Write([]byte{s[i]}); err != nil {
			<-closed
			return time.Since(start)
		}
	}
}

// A slow-loris client, trickling its headers or its body, is cut off by the
// server's timeouts instead of holding a connection and a goroutine.
func TestSlowClientsAreCutOff(t *testing.T) {
	read := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}
	srv := startServer(t, http.HandlerFunc(read), Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: time.Second, Idle: time.Second})
	if d := trickle(t, srv.Addr(), "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 1000), 20*time.Millisecond, 5*time.Second); d > 2*time.Second {
		t.Fatalf("slow headers cut off after %s, want about 300ms", d)
	}
	body := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000)
	if d := trickle(t, srv.Addr(), body, 5*time.Millisecond, 5*time.Second); d > 3*time.Second {
		t.Fatalf("a slow body cut off after %s, want about 600ms", d)
	}
}

// A request that declares itself long (LongRequest) outlives the server's
// write timeout; the same handler without it is cut off.
func TestLongRequestsMoveTheirDeadlines(t *testing.T) {
	slow := func(long bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if long {
				LongRequest(w, 5*time.Second)
			}
			time.Sleep(700 * time.Millisecond) // a long poll's wait
			_, _ = w.Write([]byte("done"))
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/long", slow(true))
	mux.Handle("/short", slow(false))
	srv := startServer(t, mux, Timeouts{ReadHeader: time.Second, Read: time.Second, Write: 300 * time.Millisecond, Idle: time.Second})
	get := func(path string) (string, error) {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			return "", err
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get("/long"); err != nil || got != "done" {
		t.Fatalf("a long request: %q %v", got, err)
	}
	if got, err := get("/short"); err == nil && got == "done" {
		t.Fatal("a slow handler outlived the write timeout without LongRequest")
	}
}
