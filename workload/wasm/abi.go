package wasm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// ABI v1 names and status bytes (docs/workloads.md, "ABI").
const (
	ExportABI     = "modelfleet_abi"
	ExportAlloc   = "modelfleet_alloc"
	ExportInit    = "modelfleet_init"
	ExportPrepare = "modelfleet_prepare"
	ExportDecide  = "modelfleet_decide"

	StatusOK      = 0    // init, decide: done; prepare: warming (no features yet)
	StatusReady   = 1    // prepare: features follow
	StatusRefused = 0xFF // a UTF-8 message follows
)

// maxResult bounds what the host reads back from one call.
const maxResult = 64 << 10

// Config is what modelfleet_init receives, as JSON: the manifest's view of
// the instance's job.
type Config struct {
	ABI       int      `json:"abi"`
	Workload  string   `json:"workload"`
	Version   string   `json:"version"`
	Model     string   `json:"model"`
	Window    int      `json:"window"`
	Threshold float64  `json:"threshold"`
	Inputs    []string `json:"inputs"`   // input.fields, in order: the values of a sample
	Features  []string `json:"features"` // what prepare writes, in order
}

// ConfigOf is the configuration a manifest hands an instance.
func ConfigOf(m *spec.Manifest) Config {
	c := Config{ABI: spec.ABIVersion, Workload: m.Name, Version: m.Version, Model: m.Model, Window: m.Window.Size,
		Features: m.FeatureNames()}
	if m.Output.Threshold != nil {
		c.Threshold = *m.Output.Threshold
	}
	for _, f := range m.Input.Fields {
		c.Inputs = append(c.Inputs, f.Name)
	}
	return c
}

func encodeConfig(c Config) []byte {
	b, _ := json.Marshal(c) // strings and finite numbers only
	return b
}

// Input is one sample as modelfleet_prepare receives it. Values are the
// manifest's input fields in order; NaN marks an optional field absent.
type Input struct {
	Machine string
	Time    time.Time
	Seq     int64
	HasSeq  bool
	Values  []float64
}

// AppendInput encodes in: u32 machine length, machine, i64 Unix
// nanoseconds, i64 seq, u8 has-seq, u32 count, count f64 values.
func AppendInput(b []byte, in Input) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(in.Machine)))
	b = append(b, in.Machine...)
	b = binary.LittleEndian.AppendUint64(b, uint64(in.Time.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, uint64(in.Seq))
	if in.HasSeq {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(in.Values)))
	for _, v := range in.Values {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// AppendPrediction encodes what modelfleet_decide receives: u32 machine
// length, machine, f64 prediction, i64 label, u32 model version length,
// model version.
func AppendPrediction(b []byte, machine string, value float64, label int, modelVersion string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(machine)))
	b = append(b, machine...)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(value))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(label)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(modelVersion)))
	return append(b, modelVersion...)
}

// errRefused is a module's own refusal (status 0xFF): the message is its.
type errRefused string

func (e errRefused) Error() string { return string(e) }

// decodePrepare reads a prepare result into out.
func decodePrepare(res []byte, out []float64) (bool, error) {
	if len(res) == 0 {
		return false, errors.New("empty result")
	}
	switch res[0] {
	case StatusOK:
		return false, nil
	case StatusReady:
		if len(res) != 1+8*len(out) {
			return false, fmt.Errorf("result has %d bytes of features, want %d features", len(res)-1, len(out))
		}
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(res[1+8*i:]))
		}
		return true, nil
	case StatusRefused:
		return false, errRefused(message(res[1:]))
	}
	return false, fmt.Errorf("result status %d is not one of ABI %d", res[0], spec.ABIVersion)
}

// decodeAction reads a decide (or init) result.
func decodeAction(res []byte) (string, error) {
	if len(res) == 0 {
		return "", errors.New("empty result")
	}
	switch res[0] {
	case StatusOK:
		a := res[1:]
		if !utf8.Valid(a) || len(a) > 64 {
			return "", errors.New("the action must be UTF-8 of at most 64 bytes")
		}
		return string(a), nil
	case StatusRefused:
		return "", errRefused(message(res[1:]))
	}
	return "", fmt.Errorf("result status %d is not one of ABI %d", res[0], spec.ABIVersion)
}

func message(b []byte) string {
	if len(b) > 1024 {
		b = b[:1024]
	}
	return string([]rune(string(b))) // invalid UTF-8 becomes U+FFFD
}
