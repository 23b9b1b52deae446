package signals

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
