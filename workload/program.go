package workload

import (
	"fmt"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// Program is a workload version as its author writes it: the manifest and
// the code that turns a machine's samples into the model's features.
type Program struct {
	Manifest spec.Manifest
	// NewPreparer returns the feature state of one machine. The runtime
	// calls it the first time it sees the machine and then feeds that
	// machine's samples to it in order, from one goroutine at a time.
	NewPreparer func(m *spec.Manifest, machine string) Preparer
	// Decide turns a prediction into an action ("alert", "normal", or any
	// word the consumers of the decision topic understand). Nil means: at
	// or above output.threshold is "alert", else "normal".
	Decide func(m *spec.Manifest, p Prediction) string
	// Module, when set, is the code instead of NewPreparer and Decide: a
	// sandboxed module the manifest names (Manifest.Module).
	Module Module
}

// Preparer folds one machine's samples into features.
type Preparer interface {
	// Prepare adds s to the machine's state and, once it has enough
	// history, writes the features into out (ordered as Manifest.Features)
	// and returns true. An error dead-letters the sample with its message;
	// the state must stay usable for the next one.
	Prepare(s *Sample, out []float64) (ready bool, err error)
}

// Prediction is the router's answer for one feature row.
type Prediction struct {
	Model   string  `json:"model"`
	Version string  `json:"version"`
	Value   float64 `json:"prediction"`
	Label   int     `json:"label"`
}

// Actions of the default Decide, and of a sample that fills the window.
const (
	ActionAlert   = "alert"
	ActionNormal  = "normal"
	ActionWarming = "warming" // not scored yet: the machine's window is filling
)

// Validate checks the program before it runs.
func (p *Program) Validate() error {
	if err := p.Manifest.Validate(); err != nil {
		return err
	}
	if p.Module != nil {
		if p.Manifest.Module == nil {
			return fmt.Errorf("workload %s: the manifest names no module", p.Manifest.Ref())
		}
		return nil
	}
	if p.NewPreparer == nil {
		return fmt.Errorf("workload %s: NewPreparer is required", p.Manifest.Ref())
	}
	return nil
}

func (p *Program) decide(pred Prediction) string {
	if p.Decide != nil {
		return p.Decide(&p.Manifest, pred)
	}
	if pred.Value >= *p.Manifest.Output.Threshold {
		return ActionAlert
	}
	return ActionNormal
}

// prepare runs the author's code, turning a panic into a dead letter: one
// bad sample must not take the stream down.
func prepare(pr Preparer, s *Sample, out []float64) (ready bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			ready, err = false, fmt.Errorf("preparer panicked: %v", v)
		}
	}()
	return pr.Prepare(s, out)
}

// Decision is the action Decide (or the default rule) takes on pred: what
// the built-in reference decides, for tests that hold a module to it.
func (p *Program) Decision(pred Prediction) string { return p.decide(pred) }
