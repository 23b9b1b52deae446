package workload

import (
	"context"
	"errors"
	"math"

	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

// WasmModule runs a compiled WebAssembly module (package workload/wasm)
// as a workload's code.
func WasmModule(m *wasm.Module) Module { return wasmModule{m} }

type wasmModule struct{ m *wasm.Module }

func (w wasmModule) Instantiate(ctx context.Context, man *spec.Manifest) (Instance, error) {
	in, err := w.m.Instantiate(ctx, wasm.ConfigOf(man))
	if err != nil {
		return nil, faultOf(err)
	}
	names := make([]string, len(man.Input.Fields))
	for i, f := range man.Input.Fields {
		names[i] = f.Name
	}
	return &wasmInstance{in: in, inputs: names, vals: make([]float64, len(names))}, nil
}

type wasmInstance struct {
	in     *wasm.Instance
	inputs []string
	vals   []float64
}

func (w *wasmInstance) Prepare(s *Sample, out []float64) (bool, error) {
	for i, n := range w.inputs {
		v, ok := s.Values[n]
		if !ok {
			v = math.NaN() // an optional field the message did not carry
		}
		w.vals[i] = v
	}
	ready, err := w.in.Prepare(wasm.Input{Machine: s.Machine, Time: s.Time, Seq: s.Seq, HasSeq: s.HasSeq, Values: w.vals}, out)
	return ready, faultOf(err)
}

func (w *wasmInstance) Decide(p Prediction, machine string) (string, error) {
	a, err := w.in.Decide(machine, p.Value, p.Label, p.Version)
	return a, faultOf(err)
}

func (w *wasmInstance) Close() { w.in.Close() }

var faultReasons = map[string]string{wasm.FaultTimeout: ReasonModuleTimeout, wasm.FaultMemory: ReasonModuleMemory, wasm.FaultTrap: ReasonModuleTrap}

// faultOf turns the sandbox's fault into a *ModuleFault; other errors (the
// module's refusals) pass.
func faultOf(err error) error {
	var f *wasm.Fault
	if errors.As(err, &f) {
		return &ModuleFault{Reason: faultReasons[f.Reason], Message: f.Message}
	}
	return err
}
