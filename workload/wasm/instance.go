package wasm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// Instance is one instance of a module, for one goroutine at a time.
type Instance struct {
	m       *Module
	mod     api.Module
	mem     api.Memory
	alloc   api.Function
	prepare api.Function
	decide  api.Function
	stderr  *tail
	in      []byte
	closed  bool
}

// Instantiate starts an instance: the module's own initialisation, the ABI
// version check and modelfleet_init with cfg. It fails with the module's
// reason, or a *Fault.
func (m *Module) Instantiate(ctx context.Context, cfg Config) (*Instance, error) {
	stderr := &tail{}
	// No WithFS, WithSysWalltime, WithSysNanotime, WithRandSource, args or
	// environment: the instance gets no files, wazero's fixed fake clocks
	// and a deterministic random source. WithName("") lets a version be
	// instantiated once per worker.
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithStderr(stderr)
	ctx, cancel := context.WithTimeout(ctx, instantiateTimeout)
	defer cancel()
	mod, err := m.rt.InstantiateModule(ctx, m.cm, mc)
	if err != nil {
		return nil, classify(ctx, err, nil, m.limit, stderr, "starting")
	}
	m.live.Add(1)
	in := &Instance{m: m, mod: mod, mem: mod.Memory(), alloc: mod.ExportedFunction(ExportAlloc),
		prepare: mod.ExportedFunction(ExportPrepare), decide: mod.ExportedFunction(ExportDecide), stderr: stderr}
	res, err := mod.ExportedFunction(ExportABI).Call(ctx)
	if err != nil {
		f := classify(ctx, err, in.mem, m.limit, stderr, ExportABI)
		in.Close()
		return nil, f
	}
	if v := uint32(res[0]); v != spec.ABIVersion {
		in.Close()
		return nil, fmt.Errorf("workload module %s speaks ABI %d, this release runs ABI %d", m.digest, v, spec.ABIVersion)
	}
	out, err := in.call(mod.ExportedFunction(ExportInit), encodeConfig(cfg))
	if err == nil {
		_, err = decodeAction(out)
	}
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("workload module %s refused its configuration: %w", m.digest, err)
	}
	return in, nil
}

// Prepare hands one sample to the module: ready with out filled, not
// ready (the machine's window is filling), the module's refusal, or a
// *Fault (the instance is then closed).
func (in *Instance) Prepare(s Input, out []float64) (bool, error) {
	in.in = AppendInput(in.in[:0], s)
	res, err := in.call(in.prepare, in.in)
	if err != nil {
		return false, err
	}
	ready, err := decodePrepare(res, out)
	return ready, in.outside(err)
}

// Decide hands one prediction to the module and returns its action.
func (in *Instance) Decide(machine string, value float64, label int, modelVersion string) (string, error) {
	in.in = AppendPrediction(in.in[:0], machine, value, label, modelVersion)
	res, err := in.call(in.decide, in.in)
	if err != nil {
		return "", err
	}
	a, err := decodeAction(res)
	if err == nil && a == "" {
		err = errRefused("the module decided on an empty action")
	}
	return a, in.outside(err)
}

// outside turns a result that breaks the ABI into a fault (a refusal
// stays one): a module that writes garbage is not trusted further.
func (in *Instance) outside(err error) error {
	var r errRefused
	if err == nil || errors.As(err, &r) {
		return err
	}
	in.Close()
	return &Fault{Reason: FaultTrap, Message: "result outside ABI 1: " + err.Error()}
}

// call writes payload into the module's buffer and calls fn on it, all
// within the call timeout, and returns the result's bytes (valid until the
// next call).
func (in *Instance) call(fn api.Function, payload []byte) ([]byte, error) {
	if in.closed {
		return nil, &Fault{Reason: FaultTrap, Message: "the instance was stopped"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.m.timeout)
	defer cancel()
	res, err := in.alloc.Call(ctx, uint64(len(payload)))
	if err != nil {
		return nil, in.fault(ctx, err, ExportAlloc)
	}
	ptr := uint32(res[0])
	if !in.mem.Write(ptr, payload) {
		in.Close()
		return nil, &Fault{Reason: FaultTrap, Message: fmt.Sprintf("%s returned a buffer outside memory (%d)", ExportAlloc, ptr)}
	}
	res, err = fn.Call(ctx, uint64(ptr), uint64(len(payload)))
	if err != nil {
		return nil, in.fault(ctx, err, fn.Definition().Name())
	}
	rp, rl := uint32(res[0]>>32), uint32(res[0])
	out, ok := in.mem.Read(rp, rl)
	if !ok || rl > maxResult {
		in.Close()
		return nil, &Fault{Reason: FaultTrap, Message: fmt.Sprintf("%s returned %d bytes at %d: outside memory or above %d", fn.Definition().Name(), rl, rp, maxResult)}
	}
	return out, nil
}

func (in *Instance) fault(ctx context.Context, err error, what string) error {
	f := classify(ctx, err, in.mem, in.m.limit, in.stderr, what)
	in.Close()
	return f
}

// classify says why a call failed.
func classify(ctx context.Context, err error, mem api.Memory, limit uint32, stderr *tail, what string) *Fault {
	var exit *sys.ExitError
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded)
	// A guest that allocates without bound either exits (a Go guest: "out
	// of memory") or thrashes its collector at the limit until the
	// deadline: both are the memory limit.
	full := mem != nil && uint64(mem.Size()) >= uint64(max(limit, 32)-16)*65536 // within 1 MiB of the limit
	if timedOut && !full {
		return &Fault{Reason: FaultTimeout, Message: fmt.Sprintf("%s did not return within its time limit", what)}
	}
	msg := err.Error()
	if s := stderr.String(); s != "" {
		msg += ": " + s
	}
	if full || strings.Contains(msg, "out of memory") {
		return &Fault{Reason: FaultMemory, Message: fmt.Sprintf("%s exhausted the instance's memory limit of %d MiB: %s", what, limit/16, msg)}
	}
	return &Fault{Reason: FaultTrap, Message: fmt.Sprintf("%s: %s", what, msg)}
}

// Close stops the instance; calls then fail.
func (in *Instance) Close() {
	if in.closed {
		return
	}
	in.closed = true
	in.m.live.Add(-1)
	_ = in.mod.Close(context.Background())
}

// tail keeps the last bytes a module wrote to stderr (a Go guest's panic
// message), for the fault's message.
type tail struct{ b []byte }

const tailBytes = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string([]rune(string(t.b)))) }
