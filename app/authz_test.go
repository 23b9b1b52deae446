package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// authzStack is a gateway with authentication on, two enrolled sites and
// a client per identity.
type authzStack struct {
	gw      *Gateway
	fake    *orchestratortest.Fake
	clients map[string]*http.Client
	dir     string
}

// The callers every endpoint is tried with.
const (
	anon     = "anonymous"
	viewer   = "viewer"
	engineer = "ml-engineer"
	manager  = "release-manager"
	approver = "approver-plant-a" // scoped to plant=plant-a
	admin    = "admin"
	dev      = "dev" // the newcomer's identity: every human role, fleet-wide
	workerID = "worker"
	site1    = "site-1" // its own records are site-1's
	site2    = "site-2" // a site, but not the one the path names
)

var callers = []string{anon, viewer, engineer, manager, approver, admin, dev, workerID, site1, site2}

func newAuthzStack(t *testing.T) *authzStack {
	t.Helper()
	dir := t.TempDir()
	fake := &orchestratortest.Fake{Statuses: map[string]modelfleet.ReleaseStatus{
		"release/m/1": {
			Model: modelfleet.ModelRef{Name: "m", Version: "1"}, State: modelfleet.StateAwaitingApproval,
			Gate:  &modelfleet.GateStatus{After: "canary"},
			Waves: []modelfleet.WaveStatus{{Name: "canary"}, {Name: "fleet"}},
			Sites: []modelfleet.SiteStatus{{Site: "site-1", Wave: "canary"}, {Site: "site-2", Wave: "fleet"}},
		},
	}}
	fake.SetRunning("release/m/1")
	gw, err := OpenGateway(GatewayConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: fake,
		Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	s := &authzStack{gw: gw, fake: fake, dir: dir, clients: map[string]*http.Client{}}
	for name, file := range map[string]string{viewer: "viewer.token", engineer: "ml-engineer.token", manager: "release-manager.token",
		approver: "approver-plant-a.token", admin: "admin.token", dev: "token", workerID: "worker.token"} {
		b, err := os.ReadFile(filepath.Join(dir, "credentials", file))
		if err != nil {
			t.Fatal(err)
		}
		if s.clients[name], err = auth.Client(gw.CABundle(), auth.StaticToken(strings.TrimSpace(string(b)))); err != nil {
			t.Fatal(err)
		}
	}
	s.clients[anon], _ = auth.Client(gw.CABundle(), nil)
	for site, plant := range map[string]string{site1: "plant-a", site2: "plant-b"} {
		tok, err := gw.JoinToken(site, map[string]string{"plant": plant}, "test")
		if err != nil {
			t.Fatal(err)
		}
		id, err := agent.Enroll(context.Background(), gw.URL(), tok, filepath.Join(dir, site))
		if err != nil {
			t.Fatalf("enrol %s: %v", site, err)
		}
		tr, err := id.Transport()
		if err != nil {
			t.Fatal(err)
		}
		s.clients[site] = &http.Client{Transport: tr}
	}
	return s
}

func (s *authzStack) do(t *testing.T, who, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.gw.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/ui/") {
		// The dashboard's forms.
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.clients[who].Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", method, path, who, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// snapshot is everything a request could change, as bytes.
func (s *authzStack) snapshot(t *testing.T) []byte {
	t.Helper()
	d := s.gw.Directory
	var out bytes.Buffer
	sites, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(&out)
	for _, site := range sites {
		_ = enc.Encode(site)
		ds, err := d.Desired(context.Background(), site.ID, -1)
		if err != nil {
			t.Fatal(err)
		}
		_ = enc.Encode(ds)
	}
	p, custom, _ := d.Policy("m")
	_ = enc.Encode(p)
	_ = enc.Encode(custom)
	w, _ := d.Workloads()
	_ = enc.Encode(w)
	st, _ := s.gw.Signals.Stats()
	_ = enc.Encode(st)
	b, _ := d.Baseline("m", "1")
	_ = enc.Encode(b)
	enrol, _ := os.ReadFile(filepath.Join(s.dir, "gateway", "pki", "enrolments.json"))
	out.Write(enrol)
	for _, c := range s.fake.Calls() {
		if c.Method != orchestratortest.ReleaseStatus {
			_ = enc.Encode(c.Method + " " + c.WorkflowID)
		}
	}
	return out.Bytes()
}

// TestAuthorisationMatrix tries every endpoint of the gateway as every
// kind of caller. The expectations are written here by hand, from
// docs/security.md's role table, not derived from the route table: a
// route whose rule drifts from the documented model fails. A denial must
// be 401 (no identity) or 403, and leave the state byte for byte as it
// was.
func TestAuthorisationMatrix(t *testing.T) {
	s := newAuthzStack(t)
	people := []string{viewer, engineer, manager, approver, admin, dev}
	any := slices.Concat(people, []string{workerID, site1, site2})
	all := append([]string{anon}, any...)
	// Every rule of the route table has a row here.
	rules, covered := http.NewServeMux(), map[string]bool{}
	for _, r := range gatewayRules() {
		rules.HandleFunc(r.Pattern, func(http.ResponseWriter, *http.Request) {})
	}
	defer func() {
		for _, r := range gatewayRules() {
			if !covered[r.Pattern] {
				t.Errorf("route %s has no row in the matrix", r.Pattern)
			}
		}
	}()
	step := `{"release":"release/m/666","model":"m","new":{"version":"666","url":"http://evil/m","digest":"sha256:` + strings.Repeat("6", 64) + `","weight":100},"sites":["site-1"]}`
	// A message the queue refuses (no ID): the matrix is about who may
	// send, and an accepted one would change the state under the next
	// row's check as the monitor consumed it.
	signal := `{"id":"","body":"e30="}`
	for _, tc := range []struct {
		method, path, body string
		allowed            []string // besides these, every caller is refused
	}{
		{"GET", "/healthz", "", all},
		{"GET", "/readyz", "", all},
		{"GET", "/metrics", "", all},
		// Event Grid's deliveries: authenticated by the webhook's own keys
		// or Entra tokens (none configured here, on loopback).
		{"POST", "/api/events", "[]", all},
		{"GET", "/oidc/.well-known/openid-configuration", "", all},
		{"GET", "/oidc/jwks", "", all},
		{"GET", "/api/enroll/ca", "", all},
		{"POST", "/api/enroll", `{"token":"mfjoin1.site-1.bad.bad","csr":""}`, nil}, // the token is the credential: a bad one is refused for everyone
		{"GET", "/api/whoami", "", any},
		{"GET", "/api/sites", "", append(slices.Clone(people), workerID)},
		{"GET", "/api/sites/site-1", "", append(slices.Clone(people), workerID, site1)},
		{"PUT", "/api/sites/site-1", `{"id":"site-1","taskQueue":"modelfleet-site-site-1","labels":{"ring":"canary"}}`, []string{admin, dev}},
		{"GET", "/api/sites/site-1/desired?wait=0s", "", append(slices.Clone(people), workerID, site1)},
		{"PUT", "/api/sites/site-1/actual", `{"site":"site-1","revision":1}`, []string{workerID, site1}},
		{"POST", "/api/sites/site-1/renew", `{"csr":""}`, []string{site1}},
		{"POST", "/api/sites/site-9/enroll", `{}`, []string{admin, dev}},
		{"POST", "/api/sites/site-9/revoke", "", []string{admin, dev}},
		{"POST", "/api/rollouts/step", step, []string{workerID}},
		{"POST", "/api/rollouts/rollback", `{"release":"release/m/1","model":"m","sites":["site-1"]}`, []string{workerID}},
		{"POST", "/api/rollouts/finish", `{"release":"release/m/1","model":"m","sites":["site-1"]}`, []string{workerID}},
		{"POST", "/api/rollouts/progress", `{"model":"m","version":"1","sites":["site-1"]}`, []string{workerID}},
		{"GET", "/api/policies/m", "", append(slices.Clone(people), workerID)},
		{"PUT", "/api/policies/m", "waves: [{name: all, bake: 1s}]", []string{manager, dev}},
		{"PUT", "/api/apikeys", `{"sites":["site-1"],"model":"m","sha256":["` + strings.Repeat("ab", 32) + `"]}`, []string{manager, admin, dev}},
		{"GET", "/api/baselines/m/1", "", append(slices.Clone(people), workerID, site1, site2)},
		{"PUT", "/api/baselines/m/1", `{}`, []string{workerID}},
		{"GET", "/api/artifacts/sha256:" + strings.Repeat("a", 64), "", append(slices.Clone(people), workerID, site1, site2)},
		{"PUT", "/api/artifacts/sha256:" + strings.Repeat("a", 64), "x", []string{workerID}},
		{"GET", "/api/workloads", "", append(slices.Clone(people), workerID, site1, site2)},
		{"GET", "/api/workloads/w/1", "", append(slices.Clone(people), workerID, site1, site2)},
		{"POST", "/api/workloads", "name: w", []string{engineer, dev}},
		{"PUT", "/api/workloads/modules/sha256:" + strings.Repeat("0", 64), "not a module", []string{engineer, dev}},
		{"POST", "/api/workloads/pairings", `{"model":"m","sites":["site-1"]}`, []string{engineer, dev, workerID}},
		{"GET", "/api/queues/signals/stats", "", people},
		{"GET", "/api/queues/signals/messages", "", people},
		{"POST", "/api/queues/signals/messages", signal, []string{site1, site2}},
		{"POST", "/api/queues/signals/redrive", "", []string{manager, admin, dev}},
		{"GET", "/api/monitor", "", people},
		{"POST", "/api/workload-releases", `{"model":"m","workload":{"name":"w","version":"1"}}`, []string{engineer, dev}},
		{"POST", "/api/controls", `{"release":"release/m/1","action":"pause","reason":"x"}`, []string{manager, dev}},
		{"POST", "/api/controls", `{"release":"release/m/1","action":"approve","reason":"x"}`, []string{dev}},
		// The dashboard: the same permissions as the API it shows (with
		// a bearer token here; the session cookie in TestDashboardSession).
		{"GET", "/ui/login", "", all},
		{"POST", "/ui/login", "token=not-a-token", nil}, // the token is the credential: a bad one is refused for everyone
		{"POST", "/ui/logout", "", all},
		{"GET", "/ui/static/app.css", "", all},
		{"GET", "/ui/", "", append(slices.Clone(people), workerID)},
		{"GET", "/ui/fleet", "", append(slices.Clone(people), workerID)},
		{"GET", "/ui/releases", "", append(slices.Clone(people), workerID)},
		{"GET", "/ui/releases/m/1", "", append(slices.Clone(people), workerID)},
		{"POST", "/ui/releases/m/1/control", "action=pause&reason=x", []string{manager, dev}},
		{"POST", "/ui/releases/m/1/control", "action=approve&reason=x", []string{dev}},
		{"GET", "/ui/drift", "", people},
		{"GET", "/ui/queues", "", people},
		{"POST", "/ui/queues/redrive", "", []string{manager, admin, dev}},
		{"DELETE", "/api/sites/site-1", "", nil},
		{"GET", "/api/nothing-here", "", nil},
	} {
		if req, err := http.NewRequest(tc.method, "http://x"+tc.path, nil); err == nil {
			if _, pattern := rules.Handler(req); pattern != "" {
				covered[pattern] = true
			}
		}
		for _, who := range callers {
			before := s.snapshot(t)
			code, body := s.do(t, who, tc.method, tc.path, tc.body)
			allowed := slices.Contains(tc.allowed, who)
			name := fmt.Sprintf("%s %s as %s", tc.method, tc.path, who)
			switch {
			case allowed && (code == http.StatusUnauthorized || code == http.StatusForbidden):
				t.Errorf("%s: %d %s, want allowed", name, code, body)
			case !allowed && code != http.StatusUnauthorized && code != http.StatusForbidden && code != http.StatusNotFound && code != http.StatusMethodNotAllowed:
				t.Errorf("%s: %d %s, want refused", name, code, body)
			case !allowed && who == anon && tc.allowed != nil && code != http.StatusUnauthorized:
				t.Errorf("%s: %d, want 401", name, code)
			case !allowed:
				if after := s.snapshot(t); !bytes.Equal(before, after) {
					t.Errorf("%s: refused (%d) but the state changed", name, code)
				}
				if code == http.StatusForbidden && !strings.Contains(body, `"forbidden"`) {
					t.Errorf("%s: 403 without the forbidden error: %s", name, body)
				}
			}
		}
	}
}

// TestControlsAreSignedAndScoped: the gateway signs what it allows, with
// the verified subject, and an approver approves only in scope.
func TestControlsAreSignedAndScoped(t *testing.T) {
	s := newAuthzStack(t)
	code, body := s.do(t, approver, "POST", "/api/controls", `{"release":"release/m/1","action":"approve","reason":"ok"}`)
	if code != http.StatusForbidden || !strings.Contains(body, "in scope") {
		t.Errorf("out-of-scope approve: %d %s", code, body)
	}
	code, body = s.do(t, dev, "POST", "/api/controls", `{"release":"release/m/1","action":"approve","reason":"canary fine"}`)
	if code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, body)
	}
	calls := s.fake.CallsTo(orchestratortest.SignalControl)
	if len(calls) != 1 {
		t.Fatalf("signals sent: %v", calls)
	}
	ctl := calls[0].Payload.(modelfleet.Control)
	keys := s.gw.sec.ControlKeys()
	st, err := modelfleet.VerifyControl(ctl, keys, modelfleet.SignalApprove, "release/m/1", time.Now())
	if err != nil || st.Subject != "dev@modelfleet.local" || st.Gate != "canary" || st.Role != auth.RoleApprover {
		t.Errorf("signed statement = %+v, %v", st, err)
	}
	// Printed, not sent: signed the same way, nothing signalled.
	code, body = s.do(t, dev, "POST", "/api/controls", `{"release":"release/m/1","action":"approve","reason":"x","printSignal":true}`)
	if code != http.StatusOK || len(s.fake.CallsTo(orchestratortest.SignalControl)) != 1 || !strings.Contains(body, `"statement"`) {
		t.Errorf("print-signal: %d %s", code, body)
	}
	// A body claiming another identity changes nothing: the token says who.
	code, _ = s.do(t, viewer, "POST", "/api/controls", `{"release":"release/m/1","action":"abort","reason":"x","by":"admin"}`)
	if code != http.StatusBadRequest && code != http.StatusForbidden {
		t.Errorf("a viewer's abort: %d", code)
	}
}

// TestRevokedSiteIsRefused: after revocation the site's next request is
// refused.
func TestRevokedSiteIsRefused(t *testing.T) {
	s := newAuthzStack(t)
	if code, body := s.do(t, site1, "GET", "/api/sites/site-1/desired?wait=0s", ""); code != http.StatusOK {
		t.Fatalf("before revocation: %d %s", code, body)
	}
	if code, body := s.do(t, dev, "POST", "/api/sites/site-1/revoke", ""); code != http.StatusOK || !strings.Contains(body, `"revoked": 1`) && !strings.Contains(body, `"revoked":1`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, body := s.do(t, site1, "GET", "/api/sites/site-1/desired?wait=0s", ""); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("after revocation: %d %s", code, body)
	}
	if code, _ := s.do(t, site2, "GET", "/api/sites/site-2/desired?wait=0s", ""); code != http.StatusOK {
		t.Errorf("another site after site-1's revocation: %d", code)
	}
}

// TestSignalsAreBoundToTheirSender: the gateway stamps the sender's site;
// a site cannot claim to be another.
func TestSignalsAreBoundToTheirSender(t *testing.T) {
	s := newAuthzStack(t)
	code, body := s.do(t, site1, "POST", "/api/queues/signals/messages", `{"id":"a","body":"e30=","properties":{"modelfleet-site":"site-2"}}`)
	if code != http.StatusForbidden {
		t.Errorf("site-1 sending as site-2: %d %s", code, body)
	}
	if code, body := s.do(t, site1, "POST", "/api/queues/signals/messages", `{"id":"b","body":"e30="}`); code != http.StatusCreated {
		t.Fatalf("send: %d %s", code, body)
	}
	// The monitor may already have taken it (and dead-lettered it: "{}"
	// is no signal message): look in the queue and its dead letters.
	msgs, err := s.gw.Signals.Peek(0, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.gw.Signals.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, dead...) // it may move between the two peeks: seen twice
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.ID] = true
		if m.Properties[SiteProperty] != "site-1" {
			t.Errorf("message %s stamped %q, want site-1", m.ID, m.Properties[SiteProperty])
		}
	}
	if len(ids) != 1 || !ids["b"] {
		t.Errorf("queued or dead-lettered = %+v; want message b", msgs)
	}
}

// TestOwnershipAndQuorum: an ml-engineer aborts only a release they own;
// a policy's self-approval ban and distinct approvers are enforced before
// anything is signed.
func TestOwnershipAndQuorum(t *testing.T) {
	s := newAuthzStack(t)
	s.fake.Statuses["release/m/2"] = modelfleet.ReleaseStatus{
		Model: modelfleet.ModelRef{Name: "m", Version: "2"}, State: modelfleet.StateAwaitingApproval, Owner: "engineer@modelfleet.local",
		Gate:  &modelfleet.GateStatus{After: "canary", Needed: 2, Distinct: true, SelfApprovalForbidden: true, Approvals: []string{"approver-a@modelfleet.local"}},
		Waves: []modelfleet.WaveStatus{{Name: "canary"}, {Name: "fleet"}},
		Sites: []modelfleet.SiteStatus{{Site: "site-1", Wave: "canary"}, {Site: "site-1", Wave: "fleet"}},
	}
	s.fake.SetRunning("release/m/2")
	for _, tc := range []struct {
		who, release, action string
		code                 int
		says                 string
	}{
		{engineer, "release/m/1", "abort", http.StatusForbidden, "may abort only releases they own"},
		{engineer, "release/m/2", "pause", http.StatusForbidden, "needs permission releases.control"},
		{engineer, "release/m/2", "abort", http.StatusOK, `"role":"owner"`},
		{approver, "release/m/2", "approve", http.StatusConflict, "already approved"},
		// dev holds every role: the approver role, but it owns nothing here.
		{dev, "release/m/2", "approve", http.StatusOK, `"role":"approver"`},
	} {
		code, body := s.do(t, tc.who, "POST", "/api/controls", `{"release":"`+tc.release+`","action":"`+tc.action+`","reason":"x","printSignal":true}`)
		// Compared without spaces: the JSON may be indented.
		if code != tc.code || !strings.Contains(strings.ReplaceAll(body, " ", ""), strings.ReplaceAll(tc.says, " ", "")) {
			t.Errorf("%s %s of %s: %d %s; want %d saying %s", tc.who, tc.action, tc.release, code, body, tc.code, tc.says)
		}
	}
	// The owner, were they an approver, may not approve their own release.
	st := s.fake.Statuses["release/m/2"]
	st.Owner = "dev@modelfleet.local"
	s.fake.Statuses["release/m/2"] = st
	if code, body := s.do(t, dev, "POST", "/api/controls", `{"release":"release/m/2","action":"approve","reason":"mine","printSignal":true}`); code != http.StatusForbidden || !strings.Contains(body, "forbids self-approval") {
		t.Errorf("self-approval: %d %s", code, body)
	}
}
