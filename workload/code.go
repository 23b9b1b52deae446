package workload

import (
	"fmt"
	"slices"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// Code is the compiled half of a workload: the feature preparation its
// author wrote, built into the site's agent. A release brings the other
// half, a manifest version; Program pairs them after checking that the
// manifest describes what this code does, so a manifest the code cannot
// serve is refused at the site instead of producing wrong features.
type Code struct {
	// Name is the workload the code implements (the manifest's name).
	Name string
	// Features are what NewPreparer writes, in order.
	Features []string
	// Inputs are the payload fields the code reads; the manifest must
	// declare each (it may declare more).
	Inputs      []string
	NewPreparer func(m *spec.Manifest, machine string) Preparer
	Decide      func(m *spec.Manifest, p Prediction) string
}

// Program pairs the code with a manifest version.
func (c Code) Program(m spec.Manifest) (Program, error) {
	bad := func(format string, args ...any) (Program, error) {
		return Program{}, modelfleet.Errorf(modelfleet.EINVALID, "workload %s: "+format, append([]any{m.Ref()}, args...)...)
	}
	if err := m.Validate(); err != nil {
		return Program{}, err
	}
	if m.Module != nil {
		// Running built-in code for a manifest that names a module would
		// run other code than the release vouched for.
		return bad("the manifest names WebAssembly module %s: it runs that module (workload.Modules), not code built into this binary", m.Module.Digest)
	}
	if m.Name != c.Name {
		return bad("this agent has code for workload %q, not %q", c.Name, m.Name)
	}
	if got := m.FeatureNames(); !slices.Equal(got, c.Features) {
		return bad("the manifest declares features %q but the agent's code writes %q", got, c.Features)
	}
	declared := make(map[string]bool, len(m.Input.Fields))
	for _, f := range m.Input.Fields {
		declared[f.Name] = true
	}
	for _, in := range c.Inputs {
		if !declared[in] {
			return bad("the agent's code reads input field %q, which the manifest does not declare", in)
		}
	}
	p := Program{Manifest: m, NewPreparer: c.NewPreparer, Decide: c.Decide}
	if err := p.Validate(); err != nil {
		return Program{}, fmt.Errorf("workload %s: %w", m.Ref(), err)
	}
	return p, nil
}
