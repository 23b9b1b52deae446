package app

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
	"github.com/modelfleet/modelfleet/signals"
)

// TestGatewayMonitorContinuesItsWindows: the gateway's drift monitor keeps
// its windows in the gateway's store, so a restarted gateway (bbolt, the
// same data directory) or another replica (PostgreSQL) continues the
// window the first was filling: the verdict of the fourth message counts
// all four.
func TestGatewayMonitorContinuesItsWindows(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		dir := t.TempDir()
		monitorAcross(t, func(int) GatewayConfig {
			return GatewayConfig{Addr: "127.0.0.1:0", DataDir: dir, QueueDir: filepath.Join(dir, "queues")}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		root := t.TempDir()
		monitorAcross(t, func(i int) GatewayConfig {
			return GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(root, fmt.Sprint(i)), Store: dsn}
		})
	})
}

// monitorAcross sends two windows' signals through one gateway, closes it,
// and two more through the next.
func monitorAcross(t *testing.T, config func(i int) GatewayConfig) {
	features := []string{"a", "b"}
	rng := rand.New(rand.NewPCG(3, 4))
	ds := &inference.Dataset{Features: features}
	for range 500 {
		ds.X = append(ds.X, []float64{rng.NormFloat64(), 2 + rng.NormFloat64()})
	}
	base, err := signals.BuildBaseline(ds, 10)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "s1", Now: func() time.Time { return now }})
	agg.SetBaseline("m", "1", features, base)
	window := func() string {
		for _, row := range ds.X[:100] {
			agg.Observe("m", "1", row, 0.5, time.Millisecond, nil)
		}
		now = now.Add(time.Minute)
		b, err := json.Marshal(agg.Flush(now)[0])
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`{"id":"w%d","body":%q}`, now.Unix(), base64.StdEncoding.EncodeToString(b))
	}
	for i := range 2 {
		cfg := config(i)
		cfg.Orchestrator = &orchestratortest.Fake{}
		gw, err := OpenGateway(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := gw.Directory.PutBaseline("m", "1", base); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if code := call(t, "POST", gw.URL()+"/api/queues/signals/messages", window(), nil); code != 201 {
				t.Fatalf("send = %d", code)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for gw.Monitor.Stats().Evaluated < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("gateway %d: the monitor evaluated %+v of 2 messages", i, gw.Monitor.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		vs := gw.Monitor.Verdicts()
		if len(vs) != 1 || vs[0].Messages != 2*(i+1) || vs[0].Requests != int64(200*(i+1)) {
			t.Errorf("gateway %d: verdicts %+v; want one window of %d messages", i, vs, 2*(i+1))
		}
		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
