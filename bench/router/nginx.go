package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startNginx puts nginx in front of the floor, to measure like the others:
// the cost of one proxy hop, for scale. Without nginx on PATH it returns ""
// and the final line says NA. stop may be called more than once.
func (c *config) startNginx(floorURL string) (url string, stop func(), err error) {
	stop = func() {}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		fmt.Println("nginx    not on PATH: skipped (apt-get install nginx to compare)")
		return "", stop, nil
	}
	dir := filepath.Join(c.work, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", stop, err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", stop, err
	}
	// Workers run as nobody when nginx starts as root: the work directory
	// must be readable by them (os.MkdirTemp makes it 0700).
	os.Chmod(c.work, 0o755)
	conf := fmt.Sprintf(nginxConf, dir, strings.TrimPrefix(floorURL, "http://"), addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", stop, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", stop, fmt.Errorf("nginx: %w", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGQUIT) // graceful: the master stops its workers
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	if err := waitListening(addr, 5*time.Second); err != nil {
		stop()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return "", stop, fmt.Errorf("nginx did not start: %v\n%s", err, b)
	}
	return "http://" + addr, stop, nil
}

// nginxConf takes the work directory, the floor's address and nginx's.
const nginxConf = `worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream floor {
    server %[2]s;
    keepalive 128;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://floor;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
