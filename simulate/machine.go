// Package simulate is a factory-line simulator for the bearing-failure
// example: motors whose rolling-element bearings wear as the example's
// trainer models them (examples/bearing-failure/train), streaming raw sensor
// samples over MQTT at a configurable rate. A failure can be injected on any
// machine, and a drift knob shifts the input distribution at run time (what
// `modelfleet simulate drift` turns), so monitoring has something to find.
package simulate

import (
	"math"
	"math/rand/v2"
	"time"
)

// gravity converts g to m/s².
const gravity = 9.80665

// Reading is one raw sample as a machine's edge gateway publishes it:
// instantaneous vibration velocity and acceleration at the bearing housing,
// housing temperature, shaft frequency from the encoder, load and the
// bearing's operating hours from the PLC.
type Reading struct {
	Machine     string  `json:"machine"`
	TS          string  `json:"ts"` // RFC 3339, milliseconds
	Seq         int64   `json:"seq"`
	VibrationMM float64 `json:"vibration_mm_s"`
	AccelMS2    float64 `json:"accel_m_s2"`
	Temperature float64 `json:"temperature_c"`
	SpeedHz     float64 `json:"speed_hz"`
	LoadPct     float64 `json:"load_pct"`
	BearingAgeH float64 `json:"bearing_age_h"`
}

// Machine is one motor and its bearing. Its hidden state follows the
// trainer's generator: rated life falls with the cube of load and with speed
// (ISO 281), degradation grows with the share of life consumed, and shows
// in vibration and temperature.
type Machine struct {
	ID      string
	rng     *rand.Rand
	rpm     float64 // nominal shaft speed
	load    float64 // nominal load, %
	age0    float64 // bearing hours at start
	spread  float64 // unit-to-unit life spread
	ambient float64 // °C offset of the machine's surroundings
	phase   float64 // shaft angle of the first vibration sample, radians
	cycle   int64   // the sample of each process cycle its impact falls on
	started time.Time
	seq     int64
	// failing, when set, is when an injected failure began: degradation
	// then ramps to 1 over FailRamp.
	failing time.Time
}

// ImpactEvery is the length of the line's process cycle in samples of a
// machine: once a cycle the process (not the bearing) knocks each
// machine's housing with a shock of 1 to 3 g, the machines in turn (a
// Line spreads their turns evenly over the cycle). The workload's peak
// over its 16 samples then carries it on 16 rows in 320, 5%: the share of
// the trainer's rows with a process impact. (Impacts at random, 0.5% of
// samples, reached 7.7% of rows, and came in clusters: a site's first
// minutes could hold twice or half the impacts of the next, and the site's
// own reference drifted on vibration_peak_g within ten minutes at one
// site in ten.)
const ImpactEvery = 320

// FailRamp is how long an injected failure takes to reach full degradation.
const FailRamp = 60 * time.Second

// NewMachine draws a machine as the trainer draws a row's machine.
func NewMachine(id string, rng *rand.Rand, now time.Time) *Machine {
	return &Machine{
		ID:      id,
		rng:     rng,
		rpm:     []float64{990, 1485, 2975}[rng.IntN(3)],
		load:    clamp(70+15*rng.NormFloat64(), 20, 110),
		age0:    25000 * rng.Float64(),
		spread:  math.Exp(0.4 * rng.NormFloat64()),
		ambient: 5 * rng.NormFloat64(),
		phase:   2 * math.Pi * rng.Float64(),
		cycle:   rng.Int64N(ImpactEvery),
		started: now,
	}
}

// Degradation is the bearing's hidden state (0 new, 1 failed) at now, when
// hoursPerSecond simulated hours pass per real second.
func (m *Machine) Degradation(now time.Time, hoursPerSecond float64) float64 {
	age := m.age(now, hoursPerSecond)
	life := 30000 * math.Pow(75/m.load, 3) * (1485 / m.rpm)
	wear := age / life * m.spread
	d := 1 - math.Exp(-wear*wear)
	if !m.failing.IsZero() {
		d = math.Max(d, math.Min(1, float64(now.Sub(m.failing))/float64(FailRamp)))
	}
	return d
}

// ReplaceAfter is the bearing's replacement interval in operating hours:
// the plant refits every bearing when it reaches it (or earlier, failed).
// The trainer's plant draws bearing ages uniformly below it, which is what
// a fleet replacing its bearings at this age looks like at any moment, so
// a simulated line running for hours never shows the model an age it was
// not trained on.
const ReplaceAfter = 40000.0

// age is the bearing's operating hours at now: the machine's first bearing
// ages from age0, and each replacement starts again from 0.
func (m *Machine) age(now time.Time, hoursPerSecond float64) float64 {
	return math.Mod(m.age0+now.Sub(m.started).Seconds()*hoursPerSecond, ReplaceAfter)
}

// Next samples the machine at now. shift is the drift knob: 0 is the
// training distribution; each unit adds 8 °C, 10 % load and 30 % vibration.
func (m *Machine) Next(now time.Time, hoursPerSecond, shift float64) Reading {
	n := m.rng.NormFloat64
	d := m.Degradation(now, hoursPerSecond)
	speed := m.rpm * (1 + 0.002*n())
	load := clamp(m.load+10*shift+2*n(), 0, 150)
	// Vibration as the trainer's snapshot figures. The velocity is
	// sampled order-tracked: the gateway triggers on the shaft encoder,
	// each sample a quarter revolution on from the last, so any two
	// consecutive samples of the dominant (shaft-frequency) component see
	// sin² and cos² of one angle, and the RMS of an even number of them is
	// the RMS of their rms values exactly: always within the trainer's
	// range. (At a random phase per sample, the RMS of the workload's 16
	// samples scatters ±9% around rms and leaves that range on about 1% of
	// rows, which the monitor reports as out of bounds.) The acceleration
	// is sampled at a random phase: the largest magnitude of many samples
	// is close to peak, and once a process cycle an impact adds to it.
	rms := (0.8 + 0.6*speed/1485 + 6*d*d + 0.4*math.Abs(n())) * (1 + 0.3*shift)
	peak := 0.2 + 0.1*speed/1485 + 3*math.Pow(d, 1.5) + 0.15*math.Abs(n())
	accel := peak * math.Sin(2*math.Pi*m.rng.Float64())
	if (m.seq+m.cycle)%ImpactEvery == 0 {
		// A process impact: the shock's peak is what the sample reads.
		accel = (peak + 1 + 2*m.rng.Float64()) * math.Copysign(1, accel)
	}
	phase := m.phase + float64(m.seq)*math.Pi/2
	temp := 25 + m.ambient + 0.3*load + 18*d*d + 8*shift + 0.5*n()
	m.seq++
	return Reading{
		Machine:     m.ID,
		TS:          now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Seq:         m.seq,
		VibrationMM: round(rms*math.Sqrt2*math.Sin(phase), 3),
		AccelMS2:    round(accel*gravity, 3),
		Temperature: round(temp, 2),
		SpeedHz:     round(speed/60, 3),
		LoadPct:     round(load, 1),
		BearingAgeH: round(m.age(now, hoursPerSecond), 1),
	}
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
