// Package workload is the bearing-failure line workload, written as a
// customer writes theirs against modelfleet's workload package: a manifest
// (workload.yaml, embedded) and the code that turns one machine's raw
// sensor samples into the six features the model was trained on.
//
// The model (examples/bearing-failure/train) sees one snapshot per row:
// RMS vibration velocity, peak acceleration in g, housing temperature, shaft
// speed in rpm, load and bearing age. A gateway sends raw samples instead,
// so the snapshot is computed over a sliding window of each machine's last
// window.size samples: RMS of the velocity samples, peak of the
// acceleration samples converted from m/s² to g, window means of
// temperature, speed (converted from Hz to rpm) and load, and the latest
// bearing age.
package workload

import (
	_ "embed"
	"fmt"

	wl "github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

//go:embed workload.yaml
var manifestYAML []byte

// Program returns the workload version this package builds.
func Program() (wl.Program, error) {
	m, err := spec.ParseManifest(manifestYAML)
	if err != nil {
		return wl.Program{}, err
	}
	return wl.Program{Manifest: m, NewPreparer: newMachine}, nil
}

// MustProgram is Program for binaries that embed the workload.
func MustProgram() wl.Program {
	p, err := Program()
	if err != nil {
		panic(fmt.Sprintf("bearing-failure workload: %v", err))
	}
	return p
}

// Unit conversions from what the gateway sends to what the model was
// trained on.
var (
	accelToG  = wl.MustConverter("m/s2", "g")
	hzToRPM   = wl.MustConverter("Hz", "rpm")
	features  = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}
	inputsFor = []string{"vibration_mm_s", "accel_m_s2", "temperature_c", "speed_hz", "load_pct", "bearing_age_h"}
)

// machine is one machine's window of samples.
type machine struct {
	velocity, accel, temp, speed, load *wl.Rolling
}

func newMachine(m *spec.Manifest, _ string) wl.Preparer {
	n := m.Window.Size
	return &machine{velocity: wl.NewRolling(n), accel: wl.NewRolling(n), temp: wl.NewRolling(n), speed: wl.NewRolling(n), load: wl.NewRolling(n)}
}

// Prepare adds a sample and, once the window is full, writes the features
// in the manifest's order.
func (m *machine) Prepare(s *wl.Sample, out []float64) (bool, error) {
	v := s.Values
	m.velocity.Add(v["vibration_mm_s"])
	m.accel.Add(accelToG(v["accel_m_s2"]))
	m.temp.Add(v["temperature_c"])
	m.speed.Add(hzToRPM(v["speed_hz"]))
	m.load.Add(v["load_pct"])
	if !m.velocity.Full() {
		return false, nil
	}
	out[0] = m.velocity.RMS()
	out[1] = m.accel.Peak()
	out[2] = m.temp.Mean()
	out[3] = m.speed.Mean()
	out[4] = m.load.Mean()
	out[5] = v["bearing_age_h"]
	return true, nil
}

// Features are the feature names Prepare writes, in order (the manifest's;
// a test holds the two and the model card equal).
func Features() []string { return append([]string(nil), features...) }

// Inputs are the payload fields Prepare reads.
func Inputs() []string { return append([]string(nil), inputsFor...) }
