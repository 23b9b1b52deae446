package queue

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSendReceiveComplete measures one message's round trip through
// the embedded queue: Send, Receive, Complete (three bbolt commits, each
// with an fsync, which dominates).
func BenchmarkSendReceiveComplete(b *testing.B) {
	q := openTemp(b, Options{})
	ctx := context.Background()
	body := []byte(`{"site":"s1","model":"bearing-failure","version":"1","drift":0.12}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	i := 0
	for b.Loop() {
		i++
		if err := q.Send(ctx, Message{ID: strconv.Itoa(i), Body: body}); err != nil {
			b.Fatal(err)
		}
		ds, err := q.Receive(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Complete(ctx, ds[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumeLarge drains signal-batch-sized messages (190 KiB) with
// Consume and a handler that does nothing: what the queue itself costs per
// message, commits included, when many deliveries settle at once.
func BenchmarkConsumeLarge(b *testing.B) {
	q := openTemp(b, Options{})
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 190<<10)
	n := 0
	for b.Loop() {
		b.StopTimer()
		const batch = 200
		for range batch {
			n++
			if err := q.Send(ctx, Message{ID: strconv.Itoa(n), Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cctx, cancel := context.WithCancel(ctx)
		var done atomic.Int64
		go func() {
			for done.Load() < batch {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		err := Consume(cctx, q, func(context.Context, Delivery) error { done.Add(1); return nil }, ConsumeOptions{Concurrency: 4, Prefetch: 8, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
