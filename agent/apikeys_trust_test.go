package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// keySigner signs router API key sets with a release key, as the gateway's
// app.ReleaseKeys does.
type keySigner struct {
	key   ed25519.PrivateKey
	trust modelfleet.Trust
}

func (k keySigner) SignAPIKeys(st modelfleet.APIKeysStatement) (*modelfleet.Envelope, error) {
	return modelfleet.SignAPIKeysStatement(st, []ed25519.PrivateKey{k.key})
}

func (k keySigner) VerifyAPIKeys(env *modelfleet.Envelope, site string) (modelfleet.APIKeysStatement, error) {
	return k.trust.VerifyAPIKeys(env, site)
}

// tamperProxy stands between a site and its gateway as whoever can write
// the site's desired state would: it rewrites the desired state's API keys
// (and their statement) with rewrite, if set, and records the reasons the
// site reports.
type tamperProxy struct {
	mu      sync.Mutex
	rewrite func(*modelfleet.Desired)
	reason  string // the last Actual.APIKeysError reported
	reports int
}

func (p *tamperProxy) set(f func(*modelfleet.Desired)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite = f
}

func (p *tamperProxy) handler(t *testing.T, target string) http.Handler {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		f := p.rewrite
		p.mu.Unlock()
		if f == nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(resp.Request.URL.Path, "/desired") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var ds modelfleet.Desired
		if err := json.Unmarshal(b, &ds); err != nil {
			return err
		}
		f(&ds)
		if b, err = json.Marshal(ds); err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/actual") {
			b, _ := io.ReadAll(r.Body)
			var a modelfleet.Actual
			if json.Unmarshal(b, &a) == nil {
				p.mu.Lock()
				p.reason, p.reports = a.APIKeysError, p.reports+1
				p.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rp.ServeHTTP(w, r)
	})
}

// waitReason waits until the site reports an API keys refusal containing
// want ("" : none).
func (p *tamperProxy) waitReason(t *testing.T, want string) {
	t.Helper()
	p.mu.Lock()
	start := p.reports
	p.mu.Unlock()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p.mu.Lock()
		r, n := p.reason, p.reports
		p.mu.Unlock()
		if n > start+1 && (want == "" && r == "" || want != "" && strings.Contains(r, want)) {
			return
		}
	}
	t.Fatalf("the site never reported an api keys refusal with %q (reports %q)", want, p.reason)
}

// A site that pinned release keys applies the router API keys of its
// desired state only as the control plane signed them: a hash set changed
// on the way (or in the store), stripped of its statement, replayed from
// before, or signed for another site or by another key is refused, the
// keys in force stay and the site reports why; the signed set is applied,
// also after such a refusal, and clearing is signed too.
func TestSignedAPIKeysAreVerifiedAtTheSite(t *testing.T) {
	dir := t.TempDir()
	v1 := exampleVersions(t, dir, "1")[0]
	key, pub := releaseKey(t)
	otherKey, _ := releaseKey(t)
	trust := modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: 1}
	keysFile := filepath.Join(dir, "release-keys.json")
	if err := saveTrust(keysFile, &trust); err != nil {
		t.Fatal(err)
	}
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.Directory.SetAPIKeysSigner(keySigner{key: key, trust: trust})
	for _, s := range []string{"s1", "s2"} {
		if _, err := gw.Directory.Put(modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s)}); err != nil {
			t.Fatal(err)
		}
	}
	fi := exampleModelSize(t)
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "r1", Model: "bearing-failure", New: signVersion(t, v1, fi, key), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	var proxy tamperProxy
	srv := httptest.NewServer(proxy.handler(t, gw.URL()))
	defer srv.Close()
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: srv.URL,
		HeartbeatInterval: 50 * time.Millisecond, NoSignals: true, ReleaseKeysFile: keysFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.Edge.Close() }()
	waitServing(t, e, "1")

	const good, good2, evil = "operator-key-0123456789abcdef", "operator-key-2-0123456789abcdef", "attacker-key-0123456789abcdef"
	set := func(sites []string, keys ...string) {
		t.Helper()
		var hs []string
		for _, k := range keys {
			hs = append(hs, modelfleet.HashAPIKey(k))
		}
		if _, err := gw.Directory.SetAPIKeys(modelfleet.APIKeysRequest{Sites: sites, Model: "bearing-failure", SHA256: hs}); err != nil {
			t.Fatal(err)
		}
	}
	set([]string{"s1"}, good)
	waitStatus(t, e, good, http.StatusOK)
	waitStatus(t, e, "", http.StatusUnauthorized)
	proxy.waitReason(t, "")
	first, err := gw.Directory.Desired(ctx, "s1", -1)
	if err != nil || first.APIKeysStatement == nil {
		t.Fatalf("the directory wrote no statement: %v", err)
	}
	// The keys in force stay whatever is refused.
	holds := func() {
		t.Helper()
		if got := scoreWith(t, e, good2); got != http.StatusOK {
			t.Fatalf("the key in force is refused after a tampered set: %d", got)
		}
		if got := scoreWith(t, e, evil); got != http.StatusUnauthorized {
			t.Fatalf("the attacker's key scores: %d", got)
		}
	}
	set([]string{"s1"}, good2)
	waitStatus(t, e, good2, http.StatusOK)
	waitStatus(t, e, good, http.StatusUnauthorized)

	evilKeys := &modelfleet.APIKeys{Models: map[string]modelfleet.KeyHashes{"bearing-failure": {SHA256: []string{modelfleet.HashAPIKey(evil)}}}}
	s2Keys := func() *modelfleet.Desired {
		set([]string{"s2"}, evil)
		ds, err := gw.Directory.Desired(ctx, "s2", -1)
		if err != nil {
			t.Fatal(err)
		}
		return &ds
	}()
	byOther, err := modelfleet.SignAPIKeysStatement(modelfleet.APIKeysStatement{Site: "s1", Keys: evilKeys, SignedAt: time.Now().Add(time.Hour)}, []ed25519.PrivateKey{otherKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, reason string
		rewrite      func(*modelfleet.Desired)
	}{
		{"a hash swapped", "for another key set", func(ds *modelfleet.Desired) { ds.APIKeys = evilKeys }},
		{"no statement", "not signed", func(ds *modelfleet.Desired) { ds.APIKeys, ds.APIKeysStatement = evilKeys, nil }},
		{"keys cleared unsigned", "not signed", func(ds *modelfleet.Desired) { ds.APIKeys, ds.APIKeysStatement = nil, nil }},
		{"an older signed set", "before the set in force", func(ds *modelfleet.Desired) { ds.APIKeys, ds.APIKeysStatement = first.APIKeys, first.APIKeysStatement }},
		{"another site's set", "for site \"s2\"", func(ds *modelfleet.Desired) {
			ds.APIKeys, ds.APIKeysStatement = s2Keys.APIKeys, s2Keys.APIKeysStatement
		}},
		{"an untrusted key", "not signed by a trusted key", func(ds *modelfleet.Desired) { ds.APIKeys, ds.APIKeysStatement = evilKeys, byOther }},
	} {
		proxy.set(c.rewrite)
		proxy.waitReason(t, c.reason)
		holds()
	}
	// What an operator sees: the site record names the refusal.
	if rec, err := gw.Directory.Get("s1"); err != nil || !strings.Contains(rec.APIKeysError, "not signed by a trusted key") {
		t.Errorf("site record: %q, %v", rec.APIKeysError, err)
	}
	proxy.set(nil)
	proxy.waitReason(t, "")
	holds()

	// Clearing is signed: the router opens again.
	set([]string{"s1"})
	waitStatus(t, e, "", http.StatusOK)
}

func exampleModelSize(t *testing.T) int64 {
	t.Helper()
	fi, err := osStat(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func osStat(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
