package workload

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/simulate"
	wl "github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

// buildModule builds ./module (this workload as a WebAssembly module) with
// the Go toolchain, as `make workload-module` does.
func buildModule(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bearing-failure-line.wasm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	digest, err := wl.BuildModule(ctx, "", "./module", out)
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if wasm.Digest(code) != digest {
		t.Fatalf("BuildModule returned %s for bytes of %s", digest, wasm.Digest(code))
	}
	return code
}

// TestModuleDecidesAsReference runs the same few hundred simulated readings
// (five machines, one of them with a failing bearing) through the module
// built from ./module and through the built-in reference code: every
// sample gives the same readiness and bit-identical features, the real
// model scores them, and both decide the same on every prediction.
func TestModuleDecidesAsReference(t *testing.T) {
	code := buildModule(t)
	ref := MustProgram()
	man := ref.Manifest
	man.Module = &spec.Module{Digest: wasm.Digest(code), ABI: spec.ABIVersion}
	if err := man.Validate(); err != nil {
		t.Fatal(err)
	}
	e, err := wasm.NewEngine("")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	mod, err := e.Load(context.Background(), man.Module, code)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := wl.WasmModule(mod).Instantiate(context.Background(), &man)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()

	data, err := os.ReadFile("../model.txt")
	if err != nil {
		t.Fatal(err)
	}
	model, err := inference.Load(modelfleet.FormatLightGBM, data)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	line, err := simulate.New(simulate.Config{Site: "s1", Seed: 7, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	machines := line.Machines()
	if err := line.Fail(machines[1], true); err != nil {
		t.Fatal(err)
	}
	refs := map[string]wl.Preparer{}
	want, got := make([]float64, len(man.Features)), make([]float64, len(man.Features))
	decisions := map[string]int{}
	scored := 0
	for i := range 400 {
		clock = clock.Add(time.Second / 10)
		if i == 200 {
			clock = clock.Add(simulate.FailRamp) // the failing bearing is well on its way
		}
		r := line.Reading(i % len(machines))
		s, rj := wl.ParseSample(&man.Input, "factory/s1/line-1/"+r.Machine+"/telemetry", mustJSON(r), clock)
		if rj != nil {
			t.Fatalf("reading %d rejected: %v", i, rj)
		}
		pr, ok := refs[s.Machine]
		if !ok {
			pr = ref.NewPreparer(&ref.Manifest, s.Machine)
			refs[s.Machine] = pr
		}
		wantReady, err := pr.Prepare(s, want)
		if err != nil {
			t.Fatal(err)
		}
		gotReady, err := inst.Prepare(s, got)
		if err != nil {
			t.Fatalf("sample %d: module: %v", i, err)
		}
		if gotReady != wantReady {
			t.Fatalf("sample %d (%s): module ready %v, reference %v", i, s.Machine, gotReady, wantReady)
		}
		if !wantReady {
			continue
		}
		for j := range want {
			if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
				t.Fatalf("sample %d (%s): feature %s = %v, reference %v", i, s.Machine, man.Features[j].Name, got[j], want[j])
			}
		}
		p, err := model.Predict(want)
		if err != nil {
			t.Fatal(err)
		}
		pred := wl.Prediction{Model: man.Model, Version: "1", Value: p, Label: int(math.Round(p))}
		a, err := inst.Decide(pred, s.Machine)
		if err != nil {
			t.Fatal(err)
		}
		if w := ref.Decision(pred); a != w {
			t.Fatalf("sample %d (%s): prediction %.4f: module decides %q, reference %q", i, s.Machine, p, a, w)
		}
		decisions[a]++
		scored++
	}
	t.Logf("%d samples scored, decisions %v", scored, decisions)
	if scored < 300 || decisions[wl.ActionAlert] == 0 || decisions[wl.ActionNormal] == 0 {
		t.Fatalf("the run did not exercise both decisions: %d scored, %v", scored, decisions)
	}
}
