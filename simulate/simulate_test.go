package simulate

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/workload"
)

func TestDriftShiftsInputs(t *testing.T) {
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	l, err := New(Config{Site: "s1", Machines: 4, Seed: 1, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	mean := func() (temp, load float64) {
		for i := range 400 {
			r := l.Reading(i % 4)
			temp += r.Temperature / 400
			load += r.LoadPct / 400
		}
		return
	}
	t0, l0 := mean()
	l.SetDrift(1)
	t1, l1 := mean()
	if t1-t0 < 9 || t1-t0 > 13 || l1-l0 < 8 || l1-l0 > 12 {
		t.Errorf("drift 1 moved temperature %.1f -> %.1f and load %.1f -> %.1f", t0, t1, l0, l1)
	}
}

func TestControlAPI(t *testing.T) {
	l, err := New(Config{Site: "s1", Machines: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx := context.Background()
	if err := c.SetDrift(ctx, Model, 0.5); err != nil || l.Drift() != 0.5 {
		t.Fatalf("drift: %v, %v", err, l.Drift())
	}
	if err := c.SetDrift(ctx, "other-model", 1); err == nil || !strings.Contains(err.Error(), `not "other-model"`) {
		t.Errorf("drift for another model: %v", err)
	}
	if err := c.SetDrift(ctx, "", 99); err == nil || l.Drift() != 0.5 {
		t.Errorf("out-of-range drift: %v", err)
	}
	if err := c.Fail(ctx, "line-1-m02", true); err != nil || l.Stats().Failing[0] != "line-1-m02" {
		t.Errorf("fail: %v %+v", err, l.Stats())
	}
	if err := c.Fail(ctx, "nope", true); err == nil || !strings.Contains(err.Error(), "line-1-m01, line-1-m02") {
		t.Errorf("fail unknown machine: %v", err)
	}
}

// TestRunPublishes runs a line against a real broker at 200 readings/s with
// some bad data and checks the rate and the payloads.
func TestRunPublishes(t *testing.T) {
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n, bad atomic.Int64
	l, err := New(Config{Site: "s1", Broker: b.URL(), Machines: 4, Rate: 200, BadRate: 0.1,
		OnPublish: func(r *Reading, _ time.Time) {
			n.Add(1)
			if _, err := json.Marshal(r); err != nil {
				bad.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	// The rate is loose: under -race on two cores publishing is slow; the
	// benchmark measures the rate for real.
	if st.Sent < 40 || st.Sent > 230 || st.Sent != n.Load() || st.SentBad == 0 || st.SentBad > st.Sent/4 {
		t.Errorf("stats %+v, OnPublish %d", st, n.Load())
	}
}

// TestVibrationRMSWithinTrainingRange: the RMS of any 16 consecutive
// velocity samples (the workload's window) never falls below the
// trainer's floor for the shaft speed, 0.8 + 0.6 speed/1485 mm/s (the
// least its rms figure can be), nor rises above its ceiling for a failed
// bearing plus four standard deviations of noise. At a random phase per
// sample, 0.5% of windows fell below the floor.
func TestVibrationRMSWithinTrainingRange(t *testing.T) {
	const window = 16
	below := 0
	for seed := range uint64(40) {
		clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
		l, err := New(Config{Site: "s1", Machines: 5, Seed: seed + 1, Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			var v, rpm []float64
			for range 300 {
				clock = clock.Add(100 * time.Millisecond)
				r := l.Reading(i)
				v, rpm = append(v, r.VibrationMM), append(rpm, r.SpeedHz*60)
			}
			for k := window; k <= len(v); k++ {
				var ss, lo, hi = 0.0, math.Inf(1), math.Inf(-1)
				for _, x := range v[k-window : k] {
					ss += x * x
				}
				for _, s := range rpm[k-window : k] {
					lo, hi = min(lo, s), max(hi, s)
				}
				rms := math.Sqrt(ss / window)
				if floor := 0.8 + 0.6*lo/1485; rms < floor-0.01 {
					below++
					if below < 5 {
						t.Errorf("seed %d machine %d: window RMS %.3f below the trainer's floor %.3f", seed+1, i, rms, floor)
					}
				}
				if ceiling := 0.8 + 0.6*hi/1485 + 6 + 0.4*4; rms > ceiling {
					t.Errorf("seed %d machine %d: window RMS %.3f above %.3f", seed+1, i, rms, ceiling)
				}
			}
		}
	}
	if below > 0 {
		t.Errorf("%d windows below the floor", below)
	}
}

// TestBearingsReplaced: bearings are refitted at ReplaceAfter hours, so a
// line running for days shows ages inside the trainer's range, and a new
// bearing is healthy.
func TestBearingsReplaced(t *testing.T) {
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	l, err := New(Config{Site: "s1", Machines: 3, Seed: 5, HoursPerSecond: 100, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := false
	last := make([]float64, 3)
	for range 2000 { // 2000 steps of 10 s at 100 h/s: 2 million hours
		clock = clock.Add(10 * time.Second)
		for i := range 3 {
			r := l.Reading(i)
			if r.BearingAgeH < 0 || r.BearingAgeH >= ReplaceAfter {
				t.Fatalf("machine %d: bearing age %v outside [0, %v)", i, r.BearingAgeH, ReplaceAfter)
			}
			if r.BearingAgeH < last[i] {
				wrapped = true
				if d := l.machines[i].Degradation(clock, 100); d > 0.1 {
					t.Errorf("machine %d: a new bearing (age %v) has degradation %.2f", i, r.BearingAgeH, d)
				}
			}
			last[i] = r.BearingAgeH
		}
	}
	if !wrapped {
		t.Error("no bearing was replaced in two million hours")
	}
}

// TestImpactsOncePerCycle: a process impact lands once every ImpactEvery
// samples of a machine, so 5% of the workload's 16-sample windows hold
// one, as 5% of the trainer's rows do, and the line's machines take their
// turns evenly, so a minute of the line holds as many as the next.
func TestImpactsOncePerCycle(t *testing.T) {
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	l, err := New(Config{Site: "s1", Machines: 40, Seed: 9, HoursPerSecond: 1e-9, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	healthy := 0
	firsts := map[int]bool{}
	for i, m := range l.machines {
		if m.Degradation(clock, 0) > 0.05 {
			continue // a worn bearing's own peaks reach an impact's
		}
		healthy++
		var at []int
		for k := range 10 * ImpactEvery {
			// A healthy bearing peaks under 1.2 g; an impact adds 1 to 3 g.
			if r := l.Reading(i); math.Abs(r.AccelMS2)/gravity > 1.2 {
				at = append(at, k)
			}
		}
		if len(at) != 10 {
			t.Errorf("machine %d: %d impacts in %d samples at %v, want 10", i, len(at), 10*ImpactEvery, at)
			continue
		}
		for j := 1; j < len(at); j++ {
			if at[j]-at[j-1] != ImpactEvery {
				t.Errorf("machine %d: impacts at %v, want %d apart", i, at, ImpactEvery)
				break
			}
		}
		// Forty machines: their turns are ImpactEvery/40 samples apart.
		if firsts[at[0]] || (at[0]-(ImpactEvery-int(l.machines[0].cycle))%ImpactEvery)%(ImpactEvery/40) != 0 {
			t.Errorf("machine %d: first impact at sample %d, not its own turn of the line's cycle", i, at[0])
		}
		firsts[at[0]] = true
	}
	if healthy < 10 {
		t.Errorf("only %d healthy machines of 40", healthy)
	}
}
