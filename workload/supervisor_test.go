package workload

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// fakeInstance is a workload version whose start and health a test scripts.
type fakeInstance struct {
	man      spec.Manifest
	startErr error
	readyErr error
	healthy  func() bool
	done     chan struct{}
	once     sync.Once
	drained  bool
}

func (f *fakeInstance) Start(context.Context) error { return f.startErr }
func (f *fakeInstance) Ready(context.Context) error { return f.readyErr }
func (f *fakeInstance) Drain(context.Context) error { f.drained = true; f.Close(); return nil }
func (f *fakeInstance) Close()                      { f.once.Do(func() { close(f.done) }) }
func (f *fakeInstance) Done() <-chan struct{}       { return f.done }
func (f *fakeInstance) Manifest() *spec.Manifest    { return &f.man }
func (f *fakeInstance) Health() Health {
	if f.healthy != nil && !f.healthy() {
		return Health{Reason: "scripted"}
	}
	return Health{Healthy: true}
}

// TestSupervisorRestartsWithBackoff: failed starts and crashes restart
// after waits that double up to the maximum, and a swap during a backoff
// starts the new version.
func TestSupervisorRestartsWithBackoff(t *testing.T) {
	var mu sync.Mutex
	var waits []time.Duration
	var launched []*fakeInstance
	cfg := SupervisorConfig{Site: "s1", MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		HealthInterval: time.Millisecond, Unhealthy: 2}
	cfg.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	cfg.launch = func(c Config) (instance, error) {
		mu.Lock()
		defer mu.Unlock()
		f := &fakeInstance{man: c.Program.Manifest, done: make(chan struct{})}
		switch n := len(launched); {
		case n < 4: // four failed starts in a row
			f.startErr = errors.New("broker refused")
		case n == 4: // then one that crashes at once
			f.Close()
		case n == 5: // then one that turns unhealthy
			f.healthy = func() bool { return false }
		}
		launched = append(launched, f)
		return f, nil
	}
	sup := NewSupervisor(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, testProgram("1", 1)) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(launched)
		mu.Unlock()
		if n >= 7 && sup.Status().State == StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisor stuck: %+v", sup.Status())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 400, 400, 400}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v ms", waits, want)
	}
	for i, w := range want {
		if waits[i] != w*time.Millisecond {
			t.Errorf("wait %d = %v, want %v", i, waits[i], w*time.Millisecond)
		}
	}
	if st := sup.Status(); st.Restarts != 6 || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
	if !launched[6].drained {
		t.Error("the last instance was not drained on stop")
	}
}

// TestSwapRefusedKeepsOld: a version that is not ready never replaces the
// running one; one with another name is refused outright.
func TestSwapRefusedKeepsOld(t *testing.T) {
	var mu sync.Mutex
	var launched []*fakeInstance
	cfg := SupervisorConfig{Site: "s1", HealthInterval: time.Hour}
	cfg.launch = func(c Config) (instance, error) {
		mu.Lock()
		defer mu.Unlock()
		f := &fakeInstance{man: c.Program.Manifest, done: make(chan struct{})}
		if c.Program.Manifest.Version == "2" {
			f.readyErr = errors.New(`router does not serve model "m"`)
		}
		launched = append(launched, f)
		return f, nil
	}
	sup, stop := runSupervisor(t, cfg, testProgram("1", 1))
	defer stop()
	err := sup.Swap(context.Background(), testProgram("2", 1))
	if err == nil || sup.Status().Version != "1" {
		t.Fatalf("swap to an unready version: %v, status %+v", err, sup.Status())
	}
	t.Log(err)
	mu.Lock()
	if launched[0].drained {
		t.Error("the running version was drained for a version that was not ready")
	}
	mu.Unlock()
	other := testProgram("3", 1)
	other.Manifest.Name = "other"
	if err := sup.Swap(context.Background(), other); err == nil {
		t.Error("swap to another workload name was accepted")
	}
	if err := sup.Swap(context.Background(), testProgram("3", 1)); err != nil || sup.Status().Version != "3" {
		t.Errorf("swap to a ready version: %v, %+v", err, sup.Status())
	}
}
