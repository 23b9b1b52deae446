package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/modelfleet/modelfleet/internal/netfault"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// refuseClient is a broker hook refusing one client ID's connections while
// refusing is set.
type refuseClient struct {
	mqtt.HookBase
	id       string
	refusing atomic.Bool
}

func (h *refuseClient) ID() string           { return "test-refuse-" + h.id }
func (h *refuseClient) Provides(b byte) bool { return b == mqtt.OnConnect }
func (h *refuseClient) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.ID == h.id && h.refusing.Load() {
		return errors.New("refused by the test")
	}
	return nil
}

// TestObserverKeepsOutcomesAcrossItsLostConnection: an outcome a runner
// publishes while the run's observer is disconnected reaches the observer
// once it is back. With a session that ended with its connection (the
// observer had none that outlived it) the broker routed such outcomes to no
// one and the run counted their readings lost (issue 14).
func TestObserverKeepsOutcomesAcrossItsLostConnection(t *testing.T) {
	man, err := spec.LoadManifest(filepath.Join("..", "..", "examples", "bearing-failure", "workload", "workload.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	refuse := &refuseClient{id: observerID}
	if err := b.Server().AddHook(refuse, nil); err != nil {
		t.Fatal(err)
	}
	w := &workloads{manifest: man, broker: b, log: slog.New(slog.DiscardHandler), published: map[reading]time.Time{}, outcomes: map[reading][]time.Time{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.subscribe(ctx, []*site{{id: "site-1"}}); err != nil {
		t.Fatal(err)
	}
	defer w.sub.Disconnect(context.Background())

	// The observer's connection drops and cannot come back for now.
	refuse.refusing.Store(true)
	cl, ok := b.Server().Clients.Get(observerID)
	if !ok {
		t.Fatal("the observer has no session on the broker")
	}
	cl.Stop(errors.New("connection lost (test)"))
	for !cl.Closed() {
		time.Sleep(10 * time.Millisecond)
	}
	// Wait for the broker to have finished with the old connection (it
	// deletes a session that ends with it at that point).
	for {
		cur, ok := b.Server().Clients.Get(observerID)
		if !ok || cur.Closed() && !cur.IsTakenOver() {
			time.Sleep(100 * time.Millisecond) // the connection's handler returns after Stop
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A runner decides meanwhile.
	u, _ := url.Parse(b.URL())
	pub, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ClientConfig: paho.ClientConfig{ClientID: "test-runner-out"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(context.Background())
	if err := pub.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: spec.Topic(man.Output.Decisions, "site-1"), QoS: 1,
		Payload: []byte(`{"site":"site-1","machine":"m-1","seq":7,"action":"ok"}`)}); err != nil {
		t.Fatal(err)
	}

	// The observer is back: the outcome must reach it.
	refuse.refusing.Store(false)
	k := reading{"site-1", "m-1", 7}
	for {
		w.mu.Lock()
		got := len(w.outcomes[k])
		w.mu.Unlock()
		if got > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the decision published while the observer was disconnected never reached it (lost connections %d)", w.observerDown.Load())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if w.observerDown.Load() == 0 {
		t.Error("the observer's lost connection was not counted")
	}
}

// TestBalancerServesAfterEMFILE: the balancer relays connections again
// after its process ran out of descriptors for a moment; its accept loop
// used to end at the first error, leaving every later connection in the
// backlog.
func TestBalancerServesAfterEMFILE(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	replica := &proc{name: "replica"}
	replica.up.Store(true)
	b := &balancer{ln: &netfault.EMFILEListener{Listener: ln, N: 3}, replicas: []*proc{replica}, addrs: []string{echo.Addr().String()}}
	go b.serve()
	defer ln.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("relayed %q, %v: want the echo through the balancer", buf, err)
	}
	if n := b.acceptErrors.Load(); n != 3 {
		t.Errorf("acceptErrors = %d, want the 3 failed accepts counted", n)
	}
}
