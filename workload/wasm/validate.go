package wasm

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// maxValidationWindow bounds the samples validation feeds one machine.
const maxValidationWindow = 1024

// validationMachines are the machines validation's samples come from.
var validationMachines = []string{"validation-1", "validation-2"}

// Validation is what Validate ran: the feature rows the module prepared
// (in the manifest's order) and the actions it decided.
type Validation struct {
	Samples int
	Rows    [][]float64
	Actions []string
	// Scored counts the rows the paired model scored (ValidateWith).
	Scored int
}

// Scorer is the model a workload's features feed, as validation scores
// them: its prediction for a row in the manifest's feature order and the
// label the router would answer with it (-1 for a regressor).
type Scorer func(row []float64) (prediction float64, label int, err error)

// SampleInputs are the inputs validation runs through a module: for each
// of two machines, window.size + 4 samples (at most 1028) 100 ms apart,
// every declared input field present and inside its declared range — the
// middle of it, rippling over a fifth of its width (an unbounded side
// ripples around 0 or the bound it has).
func SampleInputs(m *spec.Manifest) []Input {
	n := min(m.Window.Size, maxValidationWindow) + 4
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []Input
	for i := range n {
		for k, machine := range validationMachines {
			in := Input{Machine: machine, Time: base.Add(time.Duration(i) * 100 * time.Millisecond), Seq: int64(i), HasSeq: true}
			for j, f := range m.Input.Fields {
				mid, width := 0.0, 10.0
				switch {
				case f.Min != nil && f.Max != nil:
					mid, width = (*f.Min+*f.Max)/2, *f.Max-*f.Min
				case f.Min != nil:
					mid = *f.Min + 5
				case f.Max != nil:
					mid = *f.Max - 5
				}
				in.Values = append(in.Values, mid+0.1*width*math.Sin(float64(i+j+k)))
			}
			out = append(out, in)
		}
	}
	return out
}

// Validate instantiates the module of manifest m (code, checked against
// m.Module) as a site would, and runs SampleInputs through it: every
// sample must be taken without a fault or a refusal, each machine must
// produce features once its window is full, every feature must be finite
// and inside its declared range, and the module must decide an action on
// predictions across [0, 1]. Everything wrong is EINVALID and says what.
func Validate(ctx context.Context, m *spec.Manifest, code []byte) (Validation, error) {
	return ValidateWith(ctx, m, code, nil)
}

// ValidateWith is Validate, and with score the model the workload is
// released with scores every row the module prepares and the module decides
// on each of those predictions too, as at a site: a model that cannot score
// the module's features, or a module that faults on the model's own
// predictions, fails validation before any site changes.
func ValidateWith(ctx context.Context, m *spec.Manifest, code []byte, score Scorer) (Validation, error) {
	var v Validation
	if m.Module == nil {
		return v, modelfleet.Errorf(modelfleet.EINVALID, "workload %s names no module", m.Ref())
	}
	bad := func(format string, args ...any) (Validation, error) {
		return v, modelfleet.Errorf(modelfleet.EINVALID, "workload %s: module %s: "+format, append([]any{m.Ref(), m.Module.Digest}, args...)...)
	}
	e, err := NewEngine("")
	if err != nil {
		return v, err
	}
	defer e.Close(context.Background())
	mod, err := e.Load(ctx, m.Module, code)
	if err != nil {
		return v, err
	}
	in, err := mod.Instantiate(ctx, ConfigOf(m))
	if err != nil {
		return bad("does not start: %v", err)
	}
	defer in.Close()
	ready := map[string]bool{}
	row := make([]float64, len(m.Features))
	for i, s := range SampleInputs(m) {
		if err := ctx.Err(); err != nil {
			return v, err
		}
		ok, err := in.Prepare(s, row)
		var f *Fault
		switch {
		case errors.As(err, &f):
			return bad("sample %d of the manifest's sample inputs (machine %q): %v", i, s.Machine, err)
		case err != nil:
			return bad("refused sample %d of the manifest's sample inputs (machine %q), all fields inside their declared ranges: %v", i, s.Machine, err)
		}
		v.Samples++
		if !ok {
			continue
		}
		ready[s.Machine] = true
		for j, f := range m.Features {
			x := row[j]
			if math.IsNaN(x) || math.IsInf(x, 0) || (f.Min != nil && x < *f.Min) || (f.Max != nil && x > *f.Max) {
				return bad("prepared feature %s = %v on sample %d, outside its declared range or not finite", f.Name, x, i)
			}
		}
		v.Rows = append(v.Rows, append([]float64(nil), row...))
		if score == nil {
			continue
		}
		p, label, err := score(row)
		if err != nil {
			return bad("the model it is released with cannot score the features it prepared on sample %d: %v", i, err)
		}
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return bad("the model it is released with predicted %v on the features it prepared on sample %d", p, i)
		}
		a, err := in.Decide(s.Machine, p, label, "validation")
		if err != nil {
			return bad("deciding on the model's prediction %v for sample %d: %v", p, i, err)
		}
		v.Actions = append(v.Actions, a)
		v.Scored++
	}
	for _, machine := range validationMachines {
		if !ready[machine] {
			return bad("produced no features for machine %q in %d samples (window.size is %d)", machine, v.Samples/len(validationMachines), m.Window.Size)
		}
	}
	preds := []float64{0, 0.25, 0.5, 0.75, 1}
	if m.Output.Threshold != nil {
		preds = append(preds, *m.Output.Threshold)
	}
	for _, p := range preds {
		a, err := in.Decide(validationMachines[0], p, int(math.Round(p)), "validation")
		if err != nil {
			return bad("deciding on prediction %v: %v", p, err)
		}
		v.Actions = append(v.Actions, a)
	}
	return v, nil
}
