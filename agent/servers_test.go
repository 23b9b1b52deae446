package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/registry"
)

// TestMain lets the test binary be the external model server the tests
// declare: run as "<test binary> oip-serve ...", it is ServeOIP in a
// process of its own, as `modelfleet oip-serve` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "oip-serve" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := ServeOIP(ctx, os.Args[2:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// blobs serves artifacts by digest, as the registry's blob endpoint does.
type blobs struct {
	mu sync.Mutex
	m  map[string][]byte
	*httptest.Server
}

func newBlobs(t *testing.T) *blobs {
	b := &blobs{m: map[string][]byte{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		data, ok := b.m[strings.TrimPrefix(r.URL.Path, "/")]
		b.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(b.Close)
	return b
}

// add serves data and returns a version of it.
func (b *blobs) add(version, format string, data []byte, features []string, weight int) modelfleet.DesiredVersion {
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	b.mu.Lock()
	b.m[d] = data
	b.mu.Unlock()
	return modelfleet.DesiredVersion{Version: version, Digest: d, Format: format, ArtifactURL: b.URL + "/" + d, Features: features, Weight: weight, Size: int64(len(data))}
}

// tarball packs files (name -> content) as a gzip-compressed tar archive.
func tarball(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serverArgs run the test binary as the model server of model name.
func serverArgs(name string) []string {
	return []string{"oip-serve", "--port", modelfleet.ServerArgPort, "--model-dir", modelfleet.ServerArgModelDir, "--model", name}
}

func post(t *testing.T, url, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExternalModelServer rolls out a version that runs in an external
// model server — this test binary as `oip-serve`, a real separate process
// speaking the Open Inference Protocol — beside a built-in version of the
// same model (the XGBoost model trained by the real library,
// inference/testdata/xgboost): a 50/50 split answered by both, through
// /score and V2, with the same predictions as the model itself; a pinned
// request; a crash (the server is restarted and serves again); a rollback
// (the server is stopped); a version whose server never becomes ready
// (refused, the site keeps serving what it served).
func TestExternalModelServer(t *testing.T) {
	data, err := os.ReadFile("../inference/testdata/xgboost/golden/binary.json")
	if err != nil {
		t.Fatal(err)
	}
	model, err := inference.Load("", data)
	if err != nil {
		t.Fatal(err)
	}
	features := model.FeatureNames()
	bs := newBlobs(t)
	v1 := bs.add("1", modelfleet.FormatXGBoost, data, features, 50)
	archive := tarball(t, map[string][]byte{"model.json": data, "README": []byte("a model directory\n")})
	v2 := bs.add("2", modelfleet.FormatOIP, archive, features, 50)
	v2.Server = &modelfleet.ModelServer{Name: "oip", Model: "bearing", Args: serverArgs("bearing"), Task: modelfleet.TaskBinary}

	dir := t.TempDir()
	s, err := Open(Config{SiteID: "s1", DataDir: dir, Listen: "127.0.0.1:0", NoSignals: true, Logger: testLog(t),
		OIPServers: []OIPServer{{Name: "oip", Path: os.Args[0]}}, ServerReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Edge.Close() }()
	router := s.http.URL()
	ctx := context.Background()
	dl := &registry.Client{}
	apply := func(rev int64, vs ...modelfleet.DesiredVersion) modelfleet.ActualModel {
		t.Helper()
		act := s.apply(ctx, modelfleet.Desired{Site: "s1", Revision: rev, Models: map[string]modelfleet.DesiredModel{"bearing-failure": {Versions: vs}}}, dl)
		return act.Models["bearing-failure"]
	}
	if am := apply(1, v1, v2); am.Error != "" {
		t.Fatalf("apply 50/50: %s", am.Error)
	}

	rows := [][]float64{{4.2, 1.1, 71, 1480, 80}, {0.5, 0.1, 40, 1500, 30}, {2.5, 0.7, 55, 1200, 60}}
	check := func(version string, rows [][]float64, header ...string) {
		t.Helper()
		for _, row := range rows {
			want, _ := model.Predict(row)
			obj := map[string]float64{}
			for j, f := range features {
				obj[f] = row[j]
			}
			body, _ := json.Marshal(obj)
			resp, b := post(t, router+"/score/bearing-failure", string(body), header...)
			var sr struct {
				Version    string
				Prediction float64
			}
			if resp.StatusCode != 200 || json.Unmarshal(b, &sr) != nil {
				t.Fatalf("score: %d %s", resp.StatusCode, b)
			}
			if version != "" && sr.Version != version {
				t.Errorf("answered by %s, want %s", sr.Version, version)
			}
			if sr.Prediction != want {
				t.Errorf("version %s: /score %v, the model %v", sr.Version, sr.Prediction, want)
			}
			v2body, _ := json.Marshal(edge.V2InferRequest{Inputs: []edge.V2Tensor{{Name: "x", Datatype: "FP64", Shape: []int64{1, int64(len(row))}, Data: mustJSON(row)}}})
			resp, b = post(t, router+"/v2/models/bearing-failure/infer", string(v2body), header...)
			var vr edge.V2InferResponse
			if resp.StatusCode != 200 || json.Unmarshal(b, &vr) != nil {
				t.Fatalf("v2 infer: %d %s", resp.StatusCode, b)
			}
			var p []float64
			_ = json.Unmarshal(vr.Outputs[0].Data, &p)
			if len(p) != 1 || p[0] != want {
				t.Errorf("version %s: V2 %v, the model %v", vr.ModelVersion, p, want)
			}
		}
	}
	// The split: sticky keys land on both versions, each answering what
	// the model answers (the external one through the server).
	answered := map[string]int{}
	for i := range 30 {
		key := fmt.Sprintf("machine-%d", i)
		resp, _ := post(t, router+"/score/bearing-failure", `{"vibration_rms_mm_s":1,"vibration_peak_g":1,"temperature_c":50,"speed_rpm":1500,"load_pct":50}`, edge.HeaderRouteKey, key)
		answered[resp.Header.Get(edge.HeaderVersion)]++
		check(resp.Header.Get(edge.HeaderVersion), rows[:1], edge.HeaderRouteKey, key)
	}
	if answered["1"] == 0 || answered["2"] == 0 {
		t.Errorf("answered by %v: want both versions of a 50/50 split", answered)
	}
	check("2", rows, edge.HeaderVersion, "2")
	check("1", rows, edge.HeaderVersion, "1")
	if resp, b := post(t, router+"/v2/models/bearing-failure/versions/2/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,5],"data":[1,1,50,1500,50]}]}`); resp.StatusCode != 200 {
		t.Errorf("pinned by path: %d %s", resp.StatusCode, b)
	}

	// A crash: the server is restarted, and version 2 answers again.
	ref2 := modelfleet.ModelRef{Name: "bearing-failure", Version: "2"}
	pid, _, ok := s.servers.status(ref2)
	if !ok || pid == 0 {
		t.Fatal("no server runs version 2")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	until(t, "the server's restart", func() bool {
		p, restarts, ok := s.servers.status(ref2)
		return ok && restarts >= 1 && p != 0 && p != pid
	})
	until(t, "version 2 to answer again", func() bool {
		resp, _ := post(t, router+"/v2/models/bearing-failure/versions/2/infer", `{"inputs":[{"name":"x","datatype":"FP64","shape":[1,5],"data":[1,1,50,1500,50]}]}`)
		return resp.StatusCode == 200
	})
	check("2", rows, edge.HeaderVersion, "2")
	if m := metricsText(t, router); !strings.Contains(m, `modelfleet_edge_model_server_restarts_total{model="bearing-failure",server="oip",site="s1",version="2"} 1`) ||
		!strings.Contains(m, `modelfleet_edge_model_server_up{model="bearing-failure",server="oip",site="s1",version="2"} 1`) {
		t.Errorf("server metrics after a restart:\n%s", grep(m, "model_server"))
	}

	// A rollback to the built-in version stops the server.
	v1.Weight = 100
	if am := apply(2, v1); am.Error != "" {
		t.Fatalf("rollback: %s", am.Error)
	}
	if _, _, ok := s.servers.status(ref2); ok {
		t.Error("the server of version 2 still runs after the rollback")
	}
	if m := metricsText(t, router); strings.Contains(m, `modelfleet_edge_model_server_up{model="bearing-failure",server="oip",site="s1",version="2"}`) {
		t.Error("a stopped server is still reported up or down")
	}
	check("1", rows)
	// A change that starts version 2's server and then fails on another
	// version (3, whose server is never ready) leaves no server running.
	v3 := bs.add("3", modelfleet.FormatOIP, tarball(t, map[string][]byte{"model.json": data}), features, 0)
	v3.Server = &modelfleet.ModelServer{Name: "oip", Model: "not-this-one", Args: serverArgs("bearing"), Task: modelfleet.TaskBinary}
	v1.Weight, v2.Weight = 50, 50
	if am := apply(3, v1, v2, v3); !strings.Contains(am.Error, "did not become ready") {
		t.Errorf("apply with a server that is never ready: error %q", am.Error)
	}
	if _, _, ok := s.servers.status(ref2); ok {
		t.Error("the server of version 2 runs although the change that started it failed")
	}
	check("1", rows)
	// Rolling forward again starts it again, from the archive on disk.
	v2.Weight = 100
	if am := apply(4, v2); am.Error != "" {
		t.Fatalf("roll forward: %s", am.Error)
	}
	check("2", rows)

	// A server that never becomes ready (the model name is not the one it
	// serves) fails the apply; the site keeps serving version 2 alone.
	v2.Weight, v3.Weight = 50, 50
	am := apply(5, v2, v3)
	if !strings.Contains(am.Error, "did not become ready") {
		t.Errorf("apply of a server that is never ready: error %q", am.Error)
	}
	if got := s.Edge.Traffic("bearing-failure"); len(got) != 1 || got["2"] != 100 {
		t.Errorf("traffic after the refused version = %v, want 2 at 100", got)
	}
	if _, _, ok := s.servers.status(modelfleet.ModelRef{Name: "bearing-failure", Version: "3"}); ok {
		t.Error("the server that never became ready still runs")
	}
	check("2", rows)

	// A version naming a server the site did not declare is refused.
	v4 := v3
	v4.Version, v4.Server = "4", &modelfleet.ModelServer{Name: "triton", Model: "bearing", Task: modelfleet.TaskBinary}
	if am := apply(6, v2, v4); !strings.Contains(am.Error, `model server "triton" is not one this site runs`) {
		t.Errorf("undeclared server: error %q", am.Error)
	}

	// A restarted agent starts the server of its last good version before
	// it connects to anything.
	s.http.Close()
	s.Edge.Close()
	if _, _, ok := s.servers.status(ref2); ok {
		t.Error("the server still runs after the agent closed")
	}
	s, err = Open(Config{SiteID: "s1", DataDir: dir, Listen: "127.0.0.1:0", NoSignals: true, Logger: testLog(t),
		OIPServers: []OIPServer{{Name: "oip", Path: os.Args[0]}}, ServerReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.http.Close()
	router = s.http.URL()
	check("2", rows)
}

func metricsText(t *testing.T, router string) string {
	t.Helper()
	resp, err := http.Get(router + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// testLog logs to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestSignedExternalModelServer: at a site that pins release keys, an
// external server runs only as the release statement names it — another
// argument is refused — and a restarted site verifies it again from disk
// before starting it.
func TestSignedExternalModelServer(t *testing.T) {
	data, err := os.ReadFile("../inference/testdata/xgboost/golden/binary.json")
	if err != nil {
		t.Fatal(err)
	}
	model, err := inference.Load("", data)
	if err != nil {
		t.Fatal(err)
	}
	bs := newBlobs(t)
	archive := tarball(t, map[string][]byte{"model.json": data})
	v2 := bs.add("2", modelfleet.FormatOIP, archive, model.FeatureNames(), 100)
	v2.Server = &modelfleet.ModelServer{Name: "oip", Model: "bearing", Args: serverArgs("bearing"), Task: modelfleet.TaskBinary}
	key, pub := releaseKey(t)
	v2 = signVersion(t, v2, int64(len(archive)), key)

	dir := t.TempDir()
	keysFile := filepath.Join(dir, "release-keys.json")
	if err := saveTrust(keysFile, &modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: 1}); err != nil {
		t.Fatal(err)
	}
	open := func() *Site {
		s, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", NoSignals: true, Logger: testLog(t),
			ReleaseKeysFile: keysFile, OIPServers: []OIPServer{{Name: "oip", Path: os.Args[0]}}, ServerReadyTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	apply := func(rev int64, v modelfleet.DesiredVersion) string {
		act := s.apply(context.Background(), modelfleet.Desired{Site: "s1", Revision: rev, Models: map[string]modelfleet.DesiredModel{"bearing-failure": {Versions: []modelfleet.DesiredVersion{v}}}}, &registry.Client{})
		return act.Models["bearing-failure"].Error
	}
	tampered := v2
	tampered.Server = v2.Server.Clone()
	tampered.Server.Args = append(tampered.Server.Args, "--backend-directory=/tmp/evil")
	if e := apply(1, tampered); !strings.Contains(e, "another model server") {
		t.Errorf("a server with other arguments than signed: error %q", e)
	}
	if _, _, ok := s.servers.status(modelfleet.ModelRef{Name: "bearing-failure", Version: "2"}); ok {
		t.Error("the refused server runs")
	}
	if e := apply(2, v2); e != "" {
		t.Fatalf("the signed version: %s", e)
	}
	s.http.Close()
	s.Edge.Close()
	s = open()
	defer func() { s.http.Close(); s.Edge.Close() }()
	if got := s.Edge.Traffic("bearing-failure"); got["2"] != 100 {
		t.Fatalf("after a restart the site serves %v (refused: %v)", got, s.Edge.Refused())
	}
	resp, b := post(t, s.http.URL()+"/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP64","shape":[1,5],"data":[4.2,1.1,71,1480,80]}]}`)
	want, _ := model.Predict([]float64{4.2, 1.1, 71, 1480, 80})
	var vr edge.V2InferResponse
	var p []float64
	if resp.StatusCode != 200 || json.Unmarshal(b, &vr) != nil || json.Unmarshal(vr.Outputs[0].Data, &p) != nil || p[0] != want {
		t.Errorf("after a restart: %d %s, want %v", resp.StatusCode, b, want)
	}
}
