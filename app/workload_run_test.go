package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

const testRouterKey = "s3cret-router-key-4711"

// exampleManifest is the bearing-failure sample's manifest with edits
// (old, new pairs) applied.
func exampleManifest(t *testing.T, edits ...string) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("manifest has no %q to replace", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return []byte(s)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a log sink the test reads while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One sensor reading published to the embedded broker comes out as a
// decision on the decision topic, scored by the site's router with the key
// from --key-file; SIGTERM (ctx) drains, keeps the record, and the key is in
// no log line.
func TestWorkloadRunDecides(t *testing.T) {
	// A window of one sample: the first reading is scored.
	runDecides(t, exampleManifest(t, "size: 16", "size: 1"), "")
}

// The same with the workload's code as the example's WebAssembly module,
// built from source: `workload run --module`.
func TestWorkloadRunModule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code := filepath.Join(t.TempDir(), "line.wasm")
	digest, err := workload.BuildModule(ctx, "", "../examples/bearing-failure/workload/module", code)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spec.SetModuleDigest(exampleManifest(t, "size: 16", "size: 1"), digest)
	if err != nil {
		t.Fatal(err)
	}
	runDecides(t, doc, code)

	// Refused before anything connects: the module file is not the one
	// the manifest names; the manifest names a module and none is given;
	// a module is given for a manifest without one.
	other := writeFile(t, "other.wasm", append(mustRead(t, code), 0))
	for _, c := range []struct {
		doc    []byte
		module string
		want   string
	}{
		{doc, other, "but workload bearing-failure-line:1 names module " + digest},
		{doc, "", "give its file with --module"},
		{exampleManifest(t), code, "names no module, but --module"},
	} {
		w, err := OpenWorkloadRunner(WorkloadRunnerConfig{Site: "site-1", Manifest: writeFile(t, "workload.yaml", c.doc), Module: c.module,
			Broker: "mqtt://127.0.0.1:1", Router: "http://127.0.0.1:1", Listen: "127.0.0.1:0", DataDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			if w != nil {
				w.srv.Close()
			}
			t.Errorf("module %q: %v, want %q", c.module, err, c.want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runDecides runs the workload of manifest doc (with module, if any)
// against the embedded broker and a router that answers 0.81.
func runDecides(t *testing.T, doc []byte, module string) {
	t.Helper()
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var mu sync.Mutex
	var auth []string
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/models":
			_, _ = io.WriteString(w, `[{"name":"bearing-failure"}]`)
		case r.Method == http.MethodPost && r.URL.Path == "/score/bearing-failure":
			mu.Lock()
			auth = append(auth, r.Header.Get("Authorization"))
			mu.Unlock()
			var body struct{ Features map[string]float64 }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Features) != 6 {
				http.Error(w, `{"message":"bad row"}`, http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, `{"model":"bearing-failure","version":"3","prediction":0.81,"label":1}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer router.Close()

	man := writeFile(t, "workload.yaml", doc)
	key := writeFile(t, "key", []byte(testRouterKey+"\n"))
	dataDir := t.TempDir()
	var logs syncBuffer
	w, err := OpenWorkloadRunner(WorkloadRunnerConfig{
		Site: "site-1", Manifest: man, Module: module, Broker: b.URL(), Router: router.URL, KeyFile: key,
		Listen: "127.0.0.1:0", DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	base := w.URL()
	waitHealthy(t, base+"/healthz")

	decisions := subscribe(t, b.URL(), "factory/site-1/decisions/bearing-failure")
	reading := fmt.Sprintf(`{"machine":"line-1-m03","ts":%q,"seq":4711,"vibration_mm_s":-2.1,"accel_m_s2":6.2,`+
		`"temperature_c":55.3,"speed_hz":24.75,"load_pct":62.4,"bearing_age_h":5200.4}`, time.Now().UTC().Format(time.RFC3339Nano))
	publish(t, b.URL(), "factory/site-1/line-1/line-1-m03/telemetry", reading)

	var d workload.Decision
	select {
	case msg := <-decisions:
		if err := json.Unmarshal(msg, &d); err != nil {
			t.Fatalf("decision %s: %v", msg, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no decision; logs:\n%s", logs.String())
	}
	if d.Site != "site-1" || d.Workload != "bearing-failure-line" || d.Machine != "line-1-m03" || d.Seq == nil || *d.Seq != 4711 ||
		d.Action != workload.ActionAlert || d.Prediction == nil || *d.Prediction != 0.81 || d.ModelVersion != "3" {
		t.Fatalf("decision %+v", d)
	}
	mu.Lock()
	if len(auth) != 1 || auth[0] != "Bearer "+testRouterKey {
		t.Errorf("router saw Authorization %q, want the key from --key-file", auth)
	}
	mu.Unlock()
	// The record is added to beside the publish: give it a moment.
	var recent []workload.Decision
	for i := 0; i < 100; i++ {
		if getJSON(t, base+"/decisions", &recent); len(recent) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(recent) != 1 || recent[0].Machine != "line-1-m03" {
		t.Fatalf("GET /decisions: %+v", recent)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not drain and return after SIGTERM")
	}
	saved, err := os.ReadFile(filepath.Join(dataDir, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	var kept []workload.Decision
	if err := json.Unmarshal(saved, &kept); err != nil || len(kept) != 1 || kept[0].Machine != "line-1-m03" {
		t.Fatalf("record kept in the data dir: %s (%v)", saved, err)
	}
	if rec := loadRecord(filepath.Join(dataDir, recordFile), 10, slog.New(slog.DiscardHandler)); len(rec.Recent(0)) != 1 {
		t.Fatalf("record reloaded: %+v", rec.Recent(0))
	}
	if out := logs.String(); strings.Contains(out, testRouterKey) || !strings.Contains(out, "workload: consuming") {
		t.Fatalf("logs hold the key or say nothing of consuming:\n%s", out)
	}
}

// A manifest this binary's code cannot serve is refused before anything
// connects, with the reason.
func TestWorkloadRunRefusesBadManifest(t *testing.T) {
	cases := []struct {
		name string
		doc  []byte
		want string
	}{
		{"other workload", exampleManifest(t, "name: bearing-failure-line", "name: paint-shop"), `no code for workload "paint-shop"`},
		{"other features", exampleManifest(t, "  - {name: bearing_age_h,      unit: h,    min: 0, max: 200000}\n", ""), "the manifest declares features"},
		{"input missing", exampleManifest(t, "    - {name: load_pct,       unit: \"%\",  min: 0, max: 150}\n", ""), `reads input field "load_pct"`},
		{"not a manifest", []byte("kind: Workload\nnmae: x\n"), "workload manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "workload.yaml", c.doc)
			w, err := OpenWorkloadRunner(WorkloadRunnerConfig{Site: "site-1", Manifest: path, Broker: "mqtt://127.0.0.1:1", Router: "http://127.0.0.1:1",
				Listen: "127.0.0.1:0", DataDir: t.TempDir()})
			if w != nil {
				t.Fatalf("a runner for a manifest the code cannot serve, listening at %s", w.URL())
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, path, c.want)
			}
		})
	}
	// An empty key file is an error that does not print a key.
	path := writeFile(t, "workload.yaml", exampleManifest(t))
	_, err := OpenWorkloadRunner(WorkloadRunnerConfig{Site: "site-1", Manifest: path, KeyFile: writeFile(t, "key", []byte(" \n")), Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty key file: %v", err)
	}
}

func waitHealthy(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s", u, resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func mqttConn(t *testing.T, broker, id string, cfg paho.ClientConfig, onUp func(*autopaho.ConnectionManager)) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg.ClientID = id
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true, ConnectTimeout: 5 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if onUp != nil {
				onUp(cm)
			}
		},
		ClientConfig: cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatal(err)
	}
	return cm
}

// subscribe returns the payloads published to topic from now on.
func subscribe(t *testing.T, broker, topic string) <-chan []byte {
	t.Helper()
	out := make(chan []byte, 16)
	subscribed := make(chan error, 1)
	mqttConn(t, broker, "test-decisions", paho.ClientConfig{
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			out <- pr.Packet.Payload
			return true, nil
		}},
	}, func(cm *autopaho.ConnectionManager) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
		subscribed <- err
	})
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}
	return out
}

func publish(t *testing.T, broker, topic, payload string) {
	t.Helper()
	cm := mqttConn(t, broker, "test-line", paho.ClientConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}
