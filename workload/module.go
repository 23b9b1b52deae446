package workload

import (
	"context"
	"fmt"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// Module is a workload's feature code run in a sandbox instead of linked
// into the agent (package workload/wasm runs WebAssembly modules). The
// runtime makes one Instance per worker, so an instance is only ever used
// by one goroutine and keeps the state of that worker's machines.
type Module interface {
	// Instantiate starts an instance configured by the manifest (window,
	// threshold, inputs and features are handed in through the ABI).
	Instantiate(ctx context.Context, m *spec.Manifest) (Instance, error)
}

// Instance is one running instance of a Module.
type Instance interface {
	// Prepare is Preparer.Prepare for the sample's machine. An error that
	// is a *ModuleFault means the instance is gone (and was closed); any
	// other error is the module refusing the sample.
	Prepare(s *Sample, out []float64) (ready bool, err error)
	// Decide turns a prediction for machine into an action. Errors as
	// for Prepare.
	Decide(p Prediction, machine string) (string, error)
	Close()
}

// Module fault reasons: why a sandboxed instance was stopped. They are
// dead-letter reasons too.
const (
	ReasonModuleTimeout = "module_timeout" // a call ran past module.callTimeout
	ReasonModuleMemory  = "module_memory"  // the instance hit module.memoryMiB
	ReasonModuleTrap    = "module_trap"    // a trap, a panic or an exit
)

// ModuleFault is an instance stopped by its sandbox: out of time, out of
// memory, or trapped. The message that caused it is dead-lettered with the
// reason, the worker starts a fresh instance for the next one (its
// machines' windows fill again), and the runtime reports itself unhealthy
// for a while, so the supervisor restarts it with backoff if faults go on
// and a release's failure budget sees the version failing.
type ModuleFault struct {
	Reason  string // ReasonModuleTimeout, ReasonModuleMemory or ReasonModuleTrap
	Message string
}

func (f *ModuleFault) Error() string { return fmt.Sprintf("%s: %s", f.Reason, f.Message) }

// code is what one worker runs: the built-in preparers, or an instance of
// a module. Both keep the state of the worker's machines.
type code interface {
	prepare(s *Sample, out []float64) (bool, error)
	decide(p Prediction, machine string) (string, error)
	close()
}

// builtin runs Go code linked into the binary.
type builtin struct {
	prog     *Program
	machines map[string]Preparer
}

func (b *builtin) prepare(s *Sample, out []float64) (bool, error) {
	pr, ok := b.machines[s.Machine]
	if !ok {
		pr = b.prog.NewPreparer(&b.prog.Manifest, s.Machine)
		b.machines[s.Machine] = pr
	}
	return prepare(pr, s, out)
}

func (b *builtin) decide(p Prediction, _ string) (string, error) { return b.prog.decide(p), nil }
func (b *builtin) close()                                        {}

// sandboxed runs a module instance.
type sandboxed struct{ inst Instance }

func (m sandboxed) prepare(s *Sample, out []float64) (bool, error) { return m.inst.Prepare(s, out) }
func (m sandboxed) decide(p Prediction, machine string) (string, error) {
	return m.inst.Decide(p, machine)
}
func (m sandboxed) close() { m.inst.Close() }
