// Command module is the bearing-failure line workload as a WebAssembly
// module: the same feature preparation as the built-in reference
// (examples/bearing-failure/workload, which a test holds it to), written
// against the guest SDK and built with the standard toolchain:
//
//	make workload-module     # or:
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/bearing-failure-line.wasm ./examples/bearing-failure/workload/module
//
// Window and threshold come from the manifest (window.size,
// output.threshold); change them there, or change the code below, rebuild,
// put the module's digest in the manifest and register both as a new
// version (README, "Write your own workload").
package main

import (
	"github.com/modelfleet/modelfleet/workload/wasm/guest"
)

func init() {
	guest.Register(guest.Workload{NewMachine: newMachine, Decide: decide})
}

// main is not run: the module is a library the site calls (-buildmode=c-shared).
func main() {}

// Unit conversions from what the gateway sends to what the model was
// trained on: m/s² to g, Hz to rpm.
const (
	gPerMS2  = 1 / 9.80665
	rpmPerHz = 60
)

// machine is one machine's window of samples.
type machine struct {
	velocity, accel, temp, speed, load *guest.Rolling
}

func newMachine(cfg *guest.Config, _ string) guest.Preparer {
	n := cfg.Window
	return &machine{velocity: guest.NewRolling(n), accel: guest.NewRolling(n), temp: guest.NewRolling(n),
		speed: guest.NewRolling(n), load: guest.NewRolling(n)}
}

// Prepare adds a sample and, once the window is full, writes the six
// features in the model's order: RMS velocity, peak acceleration in g,
// mean temperature, mean speed in rpm, mean load and the latest bearing age.
func (m *machine) Prepare(s *guest.Sample, out []float64) (bool, error) {
	m.velocity.Add(s.Value("vibration_mm_s"))
	m.accel.Add(s.Value("accel_m_s2")*gPerMS2 + 0)
	m.temp.Add(s.Value("temperature_c"))
	m.speed.Add(s.Value("speed_hz")*rpmPerHz + 0)
	m.load.Add(s.Value("load_pct"))
	if !m.velocity.Full() {
		return false, nil
	}
	out[0] = m.velocity.RMS()
	out[1] = m.accel.Peak()
	out[2] = m.temp.Mean()
	out[3] = m.speed.Mean()
	out[4] = m.load.Mean()
	out[5] = s.Value("bearing_age_h")
	return true, nil
}

// decide alerts at or above the manifest's threshold.
func decide(cfg *guest.Config, p guest.Prediction) (string, error) {
	if p.Value >= cfg.Threshold {
		return "alert", nil
	}
	return "normal", nil
}
