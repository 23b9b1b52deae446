// Package pgtest starts a real PostgreSQL server for tests: initdb into a
// temporary directory, a free port on loopback, pg_ctl start, and stop at
// the end. One server serves a whole test package (Main in TestMain); each
// test gets a database of its own (NewDatabase).
//
// The binaries are Debian's `postgresql` package (found on PATH or under
// /usr/lib/postgresql/*/bin). Without them the tests that need the server
// skip, naming the package, unless MODELFLEET_REQUIRE_DEPS=1, where they
// fail. initdb and postgres refuse to run as root (CI runs as root), so as
// root the server runs as the unprivileged `postgres` user the package
// creates (or `nobody`).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server in a temporary directory.
type Server struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // temporary directory: data/, sock/, log
	port int
	cred *syscall.Credential // nil: run as ourselves
	dbs  atomic.Int64
	// hbaMu serialises edits of pg_hba.conf (PasswordRole).
	hbaMu sync.Mutex
}

var (
	shared    *Server
	sharedErr error
	once      sync.Once
)

// Main runs a test package with one shared server, started on first use
// (NeedServer) and stopped when the tests end. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// NeedServer returns the package's shared server, starting it the first
// time. Without the binaries it skips tb (fails it when
// MODELFLEET_REQUIRE_DEPS=1); a server that fails to start fails tb.
func NeedServer(tb testing.TB) *Server {
	tb.Helper()
	once.Do(func() { shared, sharedErr = Start() })
	if errors.Is(sharedErr, ErrNoBinaries) {
		if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
			tb.Fatalf("%v (MODELFLEET_REQUIRE_DEPS=1)", sharedErr)
		}
		tb.Skip(sharedErr)
	}
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

// DSN returns a new, empty database on the shared server (see NeedServer).
func DSN(tb testing.TB) string {
	tb.Helper()
	return NeedServer(tb).NewDatabase(tb)
}

// ErrNoBinaries says PostgreSQL is not installed.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: install the Debian package `postgresql` (make deps)")

// findBin returns the directory holding initdb and pg_ctl.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) }) // newest first
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a new server. Stop removes it.
func Start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.run("mkdir", "-p", filepath.Join(dir, "sock")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken between our probe and the server's bind:
	// try a few.
	for range 3 {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.pgctl("start"); err == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

// unprivileged is the user the server runs as when we are root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root, and neither user postgres nor nobody exists to run PostgreSQL as (initdb refuses root)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// run runs a PostgreSQL binary (or mkdir) as the server's user.
func (s *Server) run(name string, args ...string) error {
	path := name
	if name != "mkdir" {
		path = filepath.Join(s.bin, name)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pgtest: %s %v: %w\n%s\n%s", name, args, err, out.Bytes(), tail(log))
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 4096 {
		return b[len(b)-4096:]
	}
	return b
}

// pgctl runs pg_ctl start or restart with the server's options: loopback
// only, the socket in the temporary directory, no fsync (a test server
// loses nothing that matters in a crash).
func (s *Server) pgctl(op string) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
		s.port, filepath.Join(s.dir, "sock"))
	return s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-m", "fast", "-o", opts, op)
}

// Restart stops and starts the server (pg_ctl restart, fast shutdown):
// every connection is cut.
func (s *Server) Restart() error { return s.pgctl("restart") }

// Port is the TCP port the server listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

// AdminDSN is the DSN of the server's postgres database as its superuser.
func (s *Server) AdminDSN() string { return s.dsn("postgres") }

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase creates an empty database and returns its DSN; it is
// dropped at tb's cleanup.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	if err := s.exec("CREATE DATABASE " + name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return s.dsn(name)
}

// exec runs one SQL statement on the postgres database.
func (s *Server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.AdminDSN())
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// CreateDatabase creates an empty database called name (letters, digits
// and underscores) and returns its DSN, for programs that are not tests
// (the rollout benchmark).
func (s *Server) CreateDatabase(name string) (string, error) {
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "", fmt.Errorf("pgtest: database name %q: want lowercase letters, digits and underscores", name)
		}
	}
	if err := s.exec("CREATE DATABASE " + name); err != nil {
		return "", err
	}
	return s.dsn(name), nil
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() {
	_ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
}

// PasswordRole creates a login role that must give its password (SCRAM)
// on TCP connections, where every other role is trusted, owning a new
// database; it returns the DSN of that database as the role, without a
// password. Both are dropped at tb's cleanup. SetPassword changes the
// password.
func (s *Server) PasswordRole(tb testing.TB, role, password string) string {
	tb.Helper()
	for _, r := range role {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			tb.Fatalf("pgtest: role name %q: want lowercase letters, digits and underscores", role)
		}
	}
	s.hbaMu.Lock()
	hba := filepath.Join(s.data(), "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err == nil {
		// The first matching line decides: this one goes before trust.
		err = os.WriteFile(hba, append([]byte("host all "+role+" 127.0.0.1/32 scram-sha-256\n"), old...), 0o600)
	}
	s.hbaMu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.exec("SELECT pg_reload_conf()"); err != nil {
		tb.Fatal(err)
	}
	if err := s.exec("CREATE ROLE " + role + " LOGIN"); err != nil {
		tb.Fatal(err)
	}
	s.SetPassword(tb, role, password)
	dsn := s.NewDatabase(tb)
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	if err := s.exec("ALTER DATABASE " + db + " OWNER TO " + role); err != nil {
		tb.Fatal(err)
	}
	// Registered after NewDatabase's, so it runs first: the role's
	// database goes before the role.
	tb.Cleanup(func() {
		_ = s.exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)")
		_ = s.exec("DROP ROLE IF EXISTS " + role)
	})
	return strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1)
}

// SetPassword sets a role's password.
func (s *Server) SetPassword(tb testing.TB, role, password string) {
	tb.Helper()
	if err := s.exec("ALTER ROLE " + role + " PASSWORD '" + strings.ReplaceAll(password, "'", "''") + "'"); err != nil {
		tb.Fatal(err)
	}
}
