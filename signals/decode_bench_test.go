package signals

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/inference"
)

func benchMessage(b *testing.B) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := &inference.Dataset{}
	for j := range 50 {
		ds.Features = append(ds.Features, fmt.Sprintf("f%02d", j))
	}
	for range 2000 {
		row := make([]float64, 50)
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		ds.X, ds.Y = append(ds.X, row), append(ds.Y, 0)
	}
	base, err := BuildBaseline(ds, 20)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAggregator(AggregatorOptions{Site: "s"})
	a.SetBaseline("m", "1", ds.Features, base)
	row := make([]float64, 50)
	for range 1000 {
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		a.Observe("m", "1", row, 0.5, time.Millisecond, nil)
	}
	msgs := a.Flush(time.Now().Add(time.Hour))
	body, _ := json.Marshal(msgs[0])
	return body
}

func BenchmarkDecode(b *testing.B) {
	body := benchMessage(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAnyBatch decodes a batch of 32 messages as the edge Sender
// writes a backlog; the figure is per signal message.
func BenchmarkDecodeAnyBatch(b *testing.B) {
	one := benchMessage(b)
	raw := make([]json.RawMessage, 32)
	for i := range raw {
		raw[i] = one
	}
	body, err := json.Marshal(struct {
		SchemaVersion string            `json:"schemaVersion"`
		Messages      []json.RawMessage `json:"messages"`
	}{BatchSchemaVersion, raw})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		msgs, err := DecodeAny(body)
		if err != nil || len(msgs) != len(raw) {
			b.Fatal(len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(raw)), "ns/signal")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(raw)), "cpu-ns/signal")
}

// cpuTime is the process's CPU time: on a shared machine the wall clock
// measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
