package queue

import (
	"context"
	"strconv"
	"testing"
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
