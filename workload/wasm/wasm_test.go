package wasm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

const badGuest = "./testdata/badguest"

func manifest(t *testing.T, code []byte, extra string) *spec.Manifest {
	t.Helper()
	m, err := spec.ParseManifest([]byte(`
apiVersion: modelfleet/v1
kind: Workload
name: line
version: "1"
model: m
input: {topics: ["f/{site}/+"], fields: [{name: x}]}
features: [{name: a}, {name: b}]
window: {size: 2}
output: {decisions: "d/{site}", deadLetter: "dl/{site}"}
module: {digest: "` + Digest(code) + `", abi: 1` + extra + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	return &m
}

func instance(t *testing.T, extra string) (*Module, *Instance, *spec.Manifest) {
	t.Helper()
	code := BuildModule(t, badGuest)
	m := manifest(t, code, extra)
	mod, err := testEngine(t).Load(context.Background(), m.Module, code)
	if err != nil {
		t.Fatal(err)
	}
	in, err := mod.Instantiate(context.Background(), ConfigOf(m))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return mod, in, m
}

var (
	engineOnce sync.Once
	engine     *Engine
)

// testEngine is one engine for the tests that share it, so each version
// and limit compiles once.
func testEngine(t *testing.T) *Engine {
	engineOnce.Do(func() {
		var err error
		if engine, err = NewEngine(""); err != nil {
			t.Fatal(err)
		}
	})
	return engine
}

func sample(machine string, x float64) Input {
	return Input{Machine: machine, Time: time.Unix(1700000000, 0), Values: []float64{x}}
}

func TestPrepareAndDecide(t *testing.T) {
	_, in, _ := instance(t, "")
	out := make([]float64, 2)
	ready, err := in.Prepare(sample("m1", 2.5), out)
	if err != nil || !ready || out[0] != 2.5 || out[1] != 3.5 {
		t.Fatalf("prepare: %v %v %v", ready, out, err)
	}
	for v, want := range map[float64]string{0.7: "alert", 0.2: "normal"} {
		if a, err := in.Decide("m1", v, 1, "3"); err != nil || a != want {
			t.Errorf("decide %v: %q %v, want %q", v, a, err, want)
		}
	}
	// The module's refusal is not a fault: the instance carries on.
	_, err = in.Prepare(sample("refuse", 1), out)
	var f *Fault
	if err == nil || errors.As(err, &f) || !strings.Contains(err.Error(), "not ours") {
		t.Fatalf("refusal: %v", err)
	}
	if ready, err := in.Prepare(sample("m1", 1), out); err != nil || !ready {
		t.Fatalf("after a refusal: %v %v", ready, err)
	}
}

// Each runaway is stopped with its reason, the instance closed, and a new
// instance of the same module works.
func TestFaultsAreContained(t *testing.T) {
	for _, c := range []struct {
		machine, reason, extra string
	}{
		{"loop", FaultTimeout, ", callTimeout: 50ms"},
		{"bomb", FaultMemory, ", memoryMiB: 48, callTimeout: 5s"},
		{"panic", FaultTrap, ""},
	} {
		t.Run(c.machine, func(t *testing.T) {
			mod, in, m := instance(t, c.extra)
			began := time.Now()
			_, err := in.Prepare(sample(c.machine, 1), make([]float64, 2))
			var f *Fault
			if !errors.As(err, &f) || f.Reason != c.reason {
				t.Fatalf("got %v, want a %s fault", err, c.reason)
			}
			t.Logf("%s after %s: %v", c.machine, time.Since(began).Round(time.Millisecond), err)
			if _, err := in.Prepare(sample("m1", 1), make([]float64, 2)); !errors.As(err, &f) {
				t.Fatalf("a stopped instance answered: %v", err)
			}
			next, err := mod.Instantiate(context.Background(), ConfigOf(m))
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			if ready, err := next.Prepare(sample("m1", 1), make([]float64, 2)); err != nil || !ready {
				t.Fatalf("a fresh instance: %v %v", ready, err)
			}
			if mod.live.Load() != 1 {
				t.Errorf("%d live instances, want 1", mod.live.Load())
			}
		})
	}
	t.Run("decide", func(t *testing.T) {
		_, in, _ := instance(t, ", callTimeout: 20ms")
		var f *Fault
		if _, err := in.Decide("loop-decide", 1, 1, "1"); !errors.As(err, &f) || f.Reason != FaultTimeout {
			t.Fatalf("got %v", err)
		}
	})
}

func TestLoadRefuses(t *testing.T) {
	code := BuildModule(t, badGuest)
	e, _ := NewEngine("")
	defer e.Close(context.Background())
	ctx := context.Background()
	m := manifest(t, code, "")
	tampered := append([]byte(nil), code...)
	tampered[len(tampered)/2] ^= 1
	for _, c := range []struct {
		name string
		code []byte
		ms   spec.Module
		want string
	}{
		{"tampered", tampered, *m.Module, "the module was altered"},
		{"not wasm", []byte("not a module"), spec.Module{Digest: Digest([]byte("not a module")), ABI: 1, MemoryMiB: 64}, "not a valid WebAssembly module"},
		{"no exports", emptyModule, spec.Module{Digest: Digest(emptyModule), ABI: 1, MemoryMiB: 64}, `no export "modelfleet_abi"`},
		{"abi 2 in manifest", code, spec.Module{Digest: Digest(code), ABI: 2, MemoryMiB: 64}, "ABI 2 is not supported"},
		{"too little memory", code, spec.Module{Digest: Digest(code), ABI: 1, MemoryMiB: 1}, "over limit of 16 pages"},
	} {
		_, err := e.Load(ctx, &c.ms, c.code)
		if err == nil || !strings.Contains(err.Error(), c.want) || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%s: %v, want EINVALID containing %q", c.name, err, c.want)
		}
	}
	// A module that implements the exports but answers ABI 2.
	ms := spec.Module{Digest: Digest(abi2Module), ABI: 1, MemoryMiB: 1, CallTimeout: spec.Duration(time.Second)}
	mod, err := e.Load(ctx, &ms, abi2Module)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.Instantiate(ctx, ConfigOf(m)); err == nil || !strings.Contains(err.Error(), "speaks ABI 2") {
		t.Errorf("abi 2: %v", err)
	}
}

func TestCompiledOnce(t *testing.T) {
	code := BuildModule(t, badGuest)
	e, _ := NewEngine(t.TempDir())
	defer e.Close(context.Background())
	m := manifest(t, code, "")
	a, err := e.Load(context.Background(), m.Module, code)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Load(context.Background(), m.Module, code)
	if err != nil || a != b {
		t.Fatalf("a version loaded twice was compiled twice: %p %p %v", a, b, err)
	}
}

func TestCodecBounds(t *testing.T) {
	out := make([]float64, 2)
	for _, res := range [][]byte{nil, {7}, {StatusReady, 1, 2}} {
		if _, err := decodePrepare(res, out); err == nil {
			t.Errorf("%v accepted", res)
		}
	}
	if _, err := decodeAction(append([]byte{StatusOK}, strings.Repeat("a", 65)...)); err == nil {
		t.Error("a long action accepted")
	}
	if ready, err := decodePrepare(append([]byte{StatusReady}, make([]byte, 16)...), out); !ready || err != nil || math.IsNaN(out[0]) {
		t.Error(ready, err)
	}
}

// emptyModule is a valid module with nothing in it.
var emptyModule = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// abi2Module exports every ABI v1 function with the right signature and a
// memory, but modelfleet_abi returns 2.
var abi2Module = func() []byte {
	sec := func(id byte, body ...byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	name := func(s string, kind, idx byte) []byte { return append(append([]byte{byte(len(s))}, s...), kind, idx) }
	b := append([]byte(nil), emptyModule...)
	b = append(b, sec(1, 3, 0x60, 0, 1, 0x7f, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 1, 0x7e)...)
	b = append(b, sec(3, 5, 0, 1, 2, 2, 2)...)
	b = append(b, sec(5, 1, 0, 1)...)
	exports := []byte{6}
	for i, n := range []string{ExportABI, ExportAlloc, ExportInit, ExportPrepare, ExportDecide} {
		exports = append(exports, name(n, 0, byte(i))...)
	}
	exports = append(exports, name("memory", 2, 0)...)
	b = append(b, sec(7, exports...)...)
	b = append(b, sec(10, 5, 4, 0, 0x41, 2, 0x0b, 4, 0, 0x41, 0, 0x0b, 4, 0, 0x42, 0, 0x0b, 4, 0, 0x42, 0, 0x0b, 4, 0, 0x42, 0, 0x0b)...)
	return b
}()

// Validation runs a manifest's sample inputs through a module: a good one
// passes with features and actions; a loop, a trap, a refusal or features
// out of range fail with why, as does a module that is not ABI v1.
func TestValidate(t *testing.T) {
	code := BuildModule(t, badGuest)
	ctx := context.Background()
	m := manifest(t, code, ", callTimeout: 200ms")
	v, err := Validate(ctx, m, code)
	if err != nil {
		t.Fatal(err)
	}
	if v.Samples != 12 || len(v.Rows) != 12 || len(v.Actions) != 6 {
		t.Errorf("validation %+v", v)
	}
	// The model the workload is released with scores every row, and the
	// module decides on its predictions.
	var seen int
	vs, err := ValidateWith(ctx, m, code, func(row []float64) (float64, int, error) {
		if len(row) != len(m.Features) {
			return 0, 0, fmt.Errorf("%d features", len(row))
		}
		seen++
		return 0.75, 1, nil
	})
	if err != nil || vs.Scored != len(vs.Rows) || seen != len(vs.Rows) || len(vs.Actions) != len(v.Actions)+vs.Scored {
		t.Errorf("validation with a model: %+v, %v (%d scored)", vs, err, seen)
	}
	for _, c := range []struct {
		score Scorer
		want  string
	}{
		{func([]float64) (float64, int, error) { return 0, 0, errors.New("feature 3 is not a number") }, "cannot score the features it prepared on sample"},
		{func([]float64) (float64, int, error) { return math.NaN(), 0, nil }, "predicted NaN"},
	} {
		if _, err := ValidateWith(ctx, m, code, c.score); err == nil || !strings.Contains(err.Error(), c.want) || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%v, want EINVALID saying %q", err, c.want)
		}
	}
	out := *m
	hi := 0.5
	out.Features = []spec.Feature{{Name: "a", Max: &hi}, {Name: "b"}}
	if _, err := Validate(ctx, &out, code); err == nil || !strings.Contains(err.Error(), "outside its declared range") || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("features out of range: %v", err)
	}
	abi := spec.Module{Digest: Digest(abi2Module), ABI: 1, MemoryMiB: 1, CallTimeout: spec.Duration(time.Second)}
	m2 := *m
	m2.Module = &abi
	if _, err := Validate(ctx, &m2, abi2Module); err == nil || !strings.Contains(err.Error(), "speaks ABI 2") {
		t.Errorf("a module speaking ABI 2: %v", err)
	}
	m3 := *m
	m3.Module = &spec.Module{Digest: Digest(emptyModule), ABI: 1, MemoryMiB: 1}
	if _, err := Validate(ctx, &m3, emptyModule); err == nil || !strings.Contains(err.Error(), "does not implement ABI 1") {
		t.Errorf("a module without the ABI: %v", err)
	}
	junk := []byte("\x00asm\x01\x00\x00\x00\x01\xff")
	m3.Module = &spec.Module{Digest: Digest(junk), ABI: 1, MemoryMiB: 1}
	if _, err := Validate(ctx, &m3, junk); err == nil || !strings.Contains(err.Error(), "not a valid WebAssembly module") {
		t.Errorf("a malformed module: %v", err)
	}
}

// FuzzLoad loads any bytes as a module: an EINVALID error or a module,
// never a panic; a module that loads must export ABI v1.
func FuzzLoad(f *testing.F) {
	f.Add(emptyModule)
	f.Add(abi2Module)
	f.Add([]byte("not a module"))
	e, err := NewEngine("")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, code []byte) {
		ms := spec.Module{Digest: Digest(code), ABI: 1, MemoryMiB: 1, CallTimeout: spec.Duration(10 * time.Millisecond)}
		m, err := e.Load(context.Background(), &ms, code)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("not EINVALID: %v", err)
			}
			return
		}
		if err := checkExports(m.cm); err != nil {
			t.Fatalf("loaded a module without the ABI: %v", err)
		}
	})
}
