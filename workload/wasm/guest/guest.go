// Package guest is the SDK for workload code written as a WebAssembly
// module: the guest side of ABI v1 (package workload/wasm is the host). A
// workload imports it, registers its code in init, and is built with the
// standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o workload.wasm .
//
// The module then exports modelfleet_abi, modelfleet_alloc,
// modelfleet_init, modelfleet_prepare and modelfleet_decide (exports_wasip1.go)
// and the site's runtime calls them, one instance per worker, one call at a
// time. Nothing else reaches the module: no files, network, environment or
// real clock; a sample's time is the message's. See docs/workloads.md.
package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ABI is the ABI version this SDK implements.
const ABI = 1

// Status bytes of a result.
const (
	statusOK      = 0
	statusReady   = 1
	statusRefused = 0xFF
)

// Config is what the manifest hands the instance (modelfleet_init).
type Config struct {
	ABI       int      `json:"abi"`
	Workload  string   `json:"workload"`
	Version   string   `json:"version"`
	Model     string   `json:"model"`
	Window    int      `json:"window"`    // window.size
	Threshold float64  `json:"threshold"` // output.threshold
	Inputs    []string `json:"inputs"`    // input.fields, in order
	Features  []string `json:"features"`  // what Prepare writes, in order
}

// Sample is one validated message of one machine: the host has checked
// its fields against the manifest (types, ranges, clock skew) already.
type Sample struct {
	Machine string
	Time    time.Time // the sample's own time, from the message
	Seq     int64
	HasSeq  bool
	values  []float64
	index   map[string]int
}

// Value is input field name's value, NaN if the field is optional and was
// absent or is not declared in the manifest.
func (s *Sample) Value(name string) float64 {
	if i, ok := s.index[name]; ok {
		return s.values[i]
	}
	return math.NaN()
}

// Preparer folds one machine's samples into features (as the host's
// workload.Preparer): once it has enough history it writes the features
// into out, ordered as Config.Features, and returns true. An error
// dead-letters the sample with its message.
type Preparer interface {
	Prepare(s *Sample, out []float64) (ready bool, err error)
}

// Prediction is the model's answer for a machine's features.
type Prediction struct {
	Machine      string
	Value        float64
	Label        int
	ModelVersion string
}

// Workload is the code of a workload version.
type Workload struct {
	// NewMachine returns the state of one machine; required.
	NewMachine func(cfg *Config, machine string) Preparer
	// Decide turns a prediction into the action to publish. Nil: "alert"
	// at or above cfg.Threshold, else "normal".
	Decide func(cfg *Config, p Prediction) (string, error)
}

// Register installs the workload's code; call it from init.
func Register(w Workload) { registered = w }

var (
	registered Workload
	cfg        Config
	index      map[string]int
	machines   = map[string]Preparer{}
	sample     Sample
	features   []float64
	result     []byte
)

// DefaultDecide is the decision when Workload.Decide is nil.
func DefaultDecide(cfg *Config, p Prediction) (string, error) {
	if p.Value >= cfg.Threshold {
		return "alert", nil
	}
	return "normal", nil
}

func refused(err error) []byte {
	result = append(result[:0], statusRefused)
	return append(result, err.Error()...)
}

// handleInit reads the configuration.
func handleInit(in []byte) []byte {
	var c Config
	if err := json.Unmarshal(in, &c); err != nil {
		return refused(fmt.Errorf("configuration: %v", err))
	}
	if c.ABI != ABI {
		return refused(fmt.Errorf("the host runs ABI %d, this module was built for ABI %d", c.ABI, ABI))
	}
	if registered.NewMachine == nil {
		return refused(errors.New("no workload registered: call guest.Register in init"))
	}
	cfg = c
	index = make(map[string]int, len(c.Inputs))
	for i, n := range c.Inputs {
		index[n] = i
	}
	features = make([]float64, len(c.Features))
	clear(machines)
	return append(result[:0], statusOK)
}

var errShort = errors.New("input shorter than ABI 1 says")

type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() int {
	if v := r.next(4); v != nil {
		return int(binary.LittleEndian.Uint32(v))
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.next(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// handlePrepare decodes a sample and runs the machine's preparer.
func handlePrepare(in []byte) []byte {
	r := &reader{b: in}
	machine := string(r.next(r.u32()))
	t := int64(r.u64())
	seq := int64(r.u64())
	hasSeq := r.next(1)
	n := r.u32()
	if r.err == nil && n != len(cfg.Inputs) {
		return refused(fmt.Errorf("%d input values, the configuration declares %d", n, len(cfg.Inputs)))
	}
	values := make([]float64, 0, n)
	for range n {
		values = append(values, math.Float64frombits(r.u64()))
	}
	if r.err != nil {
		return refused(r.err)
	}
	sample = Sample{Machine: machine, Time: time.Unix(0, t).UTC(), Seq: seq, HasSeq: hasSeq[0] == 1, values: values, index: index}
	pr, ok := machines[machine]
	if !ok {
		pr = registered.NewMachine(&cfg, machine)
		machines[machine] = pr
	}
	ready, err := pr.Prepare(&sample, features)
	if err != nil {
		return refused(err)
	}
	if !ready {
		return append(result[:0], statusOK)
	}
	result = append(result[:0], statusReady)
	for _, f := range features {
		result = binary.LittleEndian.AppendUint64(result, math.Float64bits(f))
	}
	return result
}

// handleDecide decodes a prediction and decides.
func handleDecide(in []byte) []byte {
	r := &reader{b: in}
	p := Prediction{Machine: string(r.next(r.u32()))}
	p.Value = math.Float64frombits(r.u64())
	p.Label = int(int64(r.u64()))
	p.ModelVersion = string(r.next(r.u32()))
	if r.err != nil {
		return refused(r.err)
	}
	decide := registered.Decide
	if decide == nil {
		decide = DefaultDecide
	}
	a, err := decide(&cfg, p)
	if err != nil {
		return refused(err)
	}
	result = append(result[:0], statusOK)
	return append(result, a...)
}
