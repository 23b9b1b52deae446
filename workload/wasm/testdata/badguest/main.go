// Command badguest is a module for the sandbox's tests: what it does
// depends on the machine it is handed.
package main

import (
	"errors"

	"github.com/modelfleet/modelfleet/workload/wasm/guest"
)

func init() { guest.Register(guest.Workload{NewMachine: newMachine, Decide: decide}) }

func main() {}

var hold [][]byte

type machine struct{ name string }

func newMachine(_ *guest.Config, name string) guest.Preparer { return &machine{name} }

func (m *machine) Prepare(s *guest.Sample, out []float64) (bool, error) {
	switch m.name {
	case "loop":
		for i := 0; ; i++ {
			_ = i
		}
	case "bomb":
		for {
			b := make([]byte, 1<<20)
			b[0] = 1
			hold = append(hold, b)
		}
	case "panic":
		var p *machine
		return p.name == "", nil // nil dereference: a Go panic, the module exits
	case "refuse":
		return false, errors.New("refused: this machine is not ours")
	}
	for i := range out {
		out[i] = s.Value("x") + float64(i)
	}
	return true, nil
}

func decide(cfg *guest.Config, p guest.Prediction) (string, error) {
	if p.Machine == "loop-decide" {
		for {
		}
	}
	return guest.DefaultDecide(cfg, p)
}
