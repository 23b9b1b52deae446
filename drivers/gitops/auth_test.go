package gitops_test

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// smartHTTP serves the bare repository at dir over Git's smart HTTP
// protocol with git http-backend, as a Git host does, behind HTTP basic
// auth with token as the password.
func smartHTTP(t *testing.T, dir, token string) string {
	t.Helper()
	backend, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: no http-backend to push to")
	}
	h := &cgi.Handler{
		Path: backend, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=modelfleet"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="fleet"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// Pushing over smart HTTP needs receive-pack enabled on the repository.
	if out, err := exec.Command("git", "-C", dir, "config", "http.receivepack", "true").CombinedOutput(); err != nil {
		t.Fatalf("git config: %v: %s", err, out)
	}
	return srv.URL + "/" + filepath.Base(dir)
}

func TestPushesWithATokenOverSmartHTTP(t *testing.T) {
	bare := remote(t)
	url := smartHTTP(t, bare, "s3cret-token")
	s := site("plant-a")
	ds := desired(s.ID, 1, v("1", 'a', 100))

	auth, err := gitops.Credentials{Token: "s3cret-token"}.AuthFor(url)
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, url, func(c *gitops.Config) { c.Auth = auth })
	if _, err := d.Apply(context.Background(), s, ds); err != nil {
		t.Fatalf("apply with the right token: %v", err)
	}
	if cs := history(t, bare); len(cs) != 1 || !strings.Contains(cs[0].Message, "plant-a: r1") {
		t.Fatalf("remote history %v, want the one commit", cs)
	}

	wrong, _ := gitops.Credentials{Token: "not-it"}.AuthFor(url)
	d = newDriver(t, url, func(c *gitops.Config) { c.Auth = wrong })
	_, err = d.Apply(context.Background(), s, desired(s.ID, 2, v("2", 'b', 100)))
	if err == nil {
		t.Fatal("apply with a wrong token succeeded")
	}
	if strings.Contains(err.Error(), "not-it") {
		t.Errorf("the error shows the token: %v", err)
	}
	if cs := history(t, bare); len(cs) != 1 {
		t.Errorf("%d commits on the remote after a refused push, want 1", len(cs))
	}
}

func TestCredentialsRefuseTheWrongScheme(t *testing.T) {
	for _, c := range []struct {
		creds gitops.Credentials
		url   string
		want  string
	}{
		{gitops.Credentials{Token: "t"}, "http://git.example.com/fleet.git", "in the clear"},
		{gitops.Credentials{Token: "t"}, "ssh://git@git.example.com/fleet.git", "not https"},
		{gitops.Credentials{SSHKeyFile: "/nonexistent"}, "https://git.example.com/fleet.git", "not ssh"},
		{gitops.Credentials{Token: "t", SSHKeyFile: "/k"}, "https://git.example.com/fleet.git", "both"},
		{gitops.Credentials{SSHKeyFile: "/nonexistent/key"}, "ssh://git@git.example.com/fleet.git", "/nonexistent/key"},
	} {
		if _, err := c.creds.AuthFor(c.url); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v for %s: err = %v, want one saying %q", c.creds, c.url, err, c.want)
		}
	}
	if a, err := (gitops.Credentials{}).AuthFor("/srv/fleet.git"); a != nil || err != nil {
		t.Errorf("no credentials: %v %v, want anonymous", a, err)
	}
}
