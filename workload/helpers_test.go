package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// testManifest is a one-field workload: feature f = 2*x over a window of
// window samples (the mean).
func testManifest(version string, window int) spec.Manifest {
	lo, hi, fhi := 0.0, 100.0, 150.0
	m := spec.Manifest{
		APIVersion: spec.APIVersion, Kind: spec.KindWorkload, Name: "line", Version: version, Model: "m",
		Features: []spec.Feature{{Name: "f", Min: &lo, Max: &fhi}},
		Input: spec.Input{Topics: []string{"factory/{site}/+/telemetry"}, MaxSkew: spec.Duration(time.Minute),
			Fields: []spec.Field{{Name: "x", Unit: "mm/s", Min: &lo, Max: &hi}}},
		Output: spec.Output{Decisions: "factory/{site}/decisions", DeadLetter: "factory/{site}/deadletter"},
		Window: spec.Window{Size: window},
	}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	return m
}

type meanPrep struct{ r *Rolling }

func (p *meanPrep) Prepare(s *Sample, out []float64) (bool, error) {
	if s.Values["x"] == 13 {
		panic("unlucky sample")
	}
	p.r.Add(s.Values["x"])
	if !p.r.Full() {
		return false, nil
	}
	out[0] = 2 * p.r.Mean()
	return true, nil
}

func testProgram(version string, window int) Program {
	return Program{Manifest: testManifest(version, window), NewPreparer: func(m *spec.Manifest, _ string) Preparer {
		return &meanPrep{r: NewRolling(m.Window.Size)}
	}}
}

// fakeScorer predicts f/150 and names its version.
func fakeScorer(version string) Scorer {
	return ScoreFunc(func(_ context.Context, model, _ string, _ []string, row []float64) (Prediction, error) {
		p := row[0] / 150
		label := 0
		if p >= 0.5 {
			label = 1
		}
		return Prediction{Model: model, Version: version, Value: p, Label: label}, nil
	})
}

func startBroker(t testing.TB) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{Addr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// collector subscribes to a topic filter and keeps what arrives.
type collector struct {
	mu   sync.Mutex
	msgs map[string][][]byte // by topic
	cond chan struct{}
}

func collect(t testing.TB, broker, filter string) *collector {
	t.Helper()
	c := &collector{msgs: map[string][][]byte{}, cond: make(chan struct{}, 1)}
	u, _ := url.Parse(broker)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err == nil {
					close(ready)
				}
			}()
		},
		ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("collector-%d", time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.mu.Lock()
				c.msgs[pr.Packet.Topic] = append(c.msgs[pr.Packet.Topic], pr.Packet.Payload)
				c.mu.Unlock()
				select {
				case c.cond <- struct{}{}:
				default:
				}
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-cm.Done() })
	select {
	case <-ready:
	case <-time.After(30 * time.Second): // generous: CI machines are shared
		t.Fatal("collector did not subscribe")
	}
	return c
}

func (c *collector) count(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs[topic])
}

func (c *collector) all(topic string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.msgs[topic]...)
}

// waitFor waits until the topics hold n messages in all.
func (c *collector) waitFor(t testing.TB, n int, timeout time.Duration, topics ...string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got := 0
		for _, tp := range topics {
			got += c.count(tp)
		}
		if got >= n {
			return
		}
		select {
		case <-c.cond:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("got %d messages on %v, want %d", got, topics, n)
		}
	}
}

// publisher is a QoS 1 test publisher.
func publisher(t testing.TB, broker string) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse(broker)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("pub-%d", time.Now().UnixNano())},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-cm.Done() })
	return cm
}

func publish(t testing.TB, cm *autopaho.ConnectionManager, topic string, payload []byte) {
	t.Helper()
	if _, err := cm.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
		t.Fatal(err)
	}
}

func sample(machine string, seq int64, x float64, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"machine": machine, "seq": seq, "ts": at.UTC().Format(time.RFC3339Nano), "x": x})
	return b
}

// testLogger writes through t.Log at debug level when MF_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MF_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
