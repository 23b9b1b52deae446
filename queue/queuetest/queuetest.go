// Package queuetest is the conformance suite every queue.Store passes: the
// same tests, unchanged, against the embedded queue and PostgreSQL.
package queuetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/queue"
)

// Open returns a new, empty queue with opts, closed at t's cleanup.
type Open func(t *testing.T, opts queue.Options) queue.Store

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Run runs the conformance suite against the queues open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		run  func(*testing.T, Open)
	}{
		{"SendReceiveComplete", testSendReceiveComplete},
		{"DuplicateDetection", testDuplicates},
		{"MaxDeliveryDeadLetterRedrive", testMaxDelivery},
		{"LockExpiryAndLostLock", testLockExpiry},
		{"DeadLetterExplicit", testDeadLetter},
		{"BadInput", testBadInput},
		{"ConcurrentReceiversEachMessageOnce", testConcurrent},
		{"ReceiveWakesOnSend", testWake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

func clocked(t *testing.T, open Open, opts queue.Options) (queue.Store, *Clock) {
	c := &Clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Name, opts.Now = "signals", c.Now
	return open(t, opts), c
}

func send(t *testing.T, q queue.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		m := queue.Message{ID: id, Body: []byte("body of " + id), ContentType: "application/json", Properties: map[string]string{"k": id}}
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func receive(t *testing.T, q queue.Store, max int) []queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := q.Receive(ctx, max)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func ids(ds []queue.Delivery) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s#%d", d.ID, d.DeliveryCount))
	}
	return strings.Join(out, ",")
}

func stats(t *testing.T, q queue.Store) queue.Stats {
	t.Helper()
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testSendReceiveComplete(t *testing.T, open Open) {
	q, _ := clocked(t, open, queue.Options{})
	send(t, q, "a", "b", "c")
	ds := receive(t, q, 10)
	if got, want := ids(ds), "a#1,b#1,c#1"; got != want {
		t.Fatalf("received %s, want %s", got, want)
	}
	d := ds[0]
	if string(d.Body) != "body of a" || d.ContentType != "application/json" || d.Properties["k"] != "a" || d.LockToken == "" || d.EnqueuedAt.IsZero() {
		t.Errorf("delivery = %+v", d)
	}
	if s := stats(t, q); s.Active != 3 || s.Locked != 3 || s.Sent != 3 {
		t.Errorf("stats = %+v", s)
	}
	for _, d := range ds {
		if err := q.Complete(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Complete(context.Background(), d); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("second complete: %v, want conflict (lock lost)", err)
	}
	if s := stats(t, q); s.Active != 0 || s.Completed != 3 {
		t.Errorf("stats = %+v", s)
	}
}

func testDuplicates(t *testing.T, open Open) {
	q, clock := clocked(t, open, queue.Options{DuplicateDetectionWindow: time.Minute})
	send(t, q, "a", "a")
	if s := stats(t, q); s.Sent != 1 || s.Duplicates != 1 || s.Active != 1 {
		t.Errorf("stats = %+v; want one sent, one duplicate", s)
	}
	clock.Add(2 * time.Minute)
	send(t, q, "a")
	if s := stats(t, q); s.Sent != 2 || s.Active != 2 {
		t.Errorf("after the window: stats = %+v; want the ID accepted again", s)
	}
}

func testMaxDelivery(t *testing.T, open Open) {
	q, _ := clocked(t, open, queue.Options{MaxDeliveryCount: 2})
	ctx := context.Background()
	send(t, q, "a")
	d := receive(t, q, 1)[0]
	if err := q.Abandon(ctx, d); err != nil {
		t.Fatal(err)
	}
	d = receive(t, q, 1)[0]
	if d.DeliveryCount != 2 {
		t.Errorf("delivery count %d, want 2", d.DeliveryCount)
	}
	if err := q.Abandon(ctx, d); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Peek(0, 10, true)
	if err != nil || len(dead) != 1 || dead[0].DeadLetterReason != queue.ReasonMaxDeliveryCountExceeded || dead[0].ID != "a" || string(dead[0].Body) != "body of a" {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if s := stats(t, q); s.Active != 0 || s.DeadLettered != 1 {
		t.Errorf("stats = %+v", s)
	}
	if n, err := q.Redrive(ctx, 10); err != nil || n != 1 {
		t.Fatalf("redrive = %d, %v", n, err)
	}
	if d := receive(t, q, 1)[0]; d.ID != "a" || d.DeliveryCount != 1 || d.Properties["k"] != "a" {
		t.Errorf("redriven = %+v", d)
	}
}

func testLockExpiry(t *testing.T, open Open) {
	q, clock := clocked(t, open, queue.Options{LockDuration: 10 * time.Second})
	ctx := context.Background()
	send(t, q, "a")
	first := receive(t, q, 1)[0]
	if err := q.RenewLock(ctx, &first); err != nil {
		t.Fatal(err)
	}
	clock.Add(11 * time.Second)
	if err := q.RenewLock(ctx, &first); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("renew of an expired lock: %v, want conflict", err)
	}
	second := receive(t, q, 1)[0]
	if second.DeliveryCount != 2 || second.LockToken == first.LockToken {
		t.Errorf("redelivery = %+v", second)
	}
	if err := q.Complete(ctx, first); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("complete with the superseded lock: %v, want conflict", err)
	}
	peek, err := q.Peek(0, 10, false)
	if err != nil || len(peek) != 1 || peek[0].LockedUntil.IsZero() || peek[0].DeliveryCount != 2 {
		t.Errorf("peek = %+v, %v", peek, err)
	}
	if err := q.Complete(ctx, second); err != nil {
		t.Fatal(err)
	}
}

func testDeadLetter(t *testing.T, open Open) {
	q, _ := clocked(t, open, queue.Options{})
	send(t, q, "a", "b")
	ds := receive(t, q, 2)
	if err := q.DeadLetter(context.Background(), ds[1], "BadSignal", "not a signal"); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Peek(0, 10, true)
	if err != nil || len(dead) != 1 || dead[0].ID != "b" || dead[0].DeadLetterReason != "BadSignal" || dead[0].DeadLetterErrorDescription != "not a signal" || dead[0].DeadLetteredAt.IsZero() {
		t.Errorf("dead letters = %+v, %v", dead, err)
	}
	if err := q.Complete(context.Background(), ds[1]); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("complete of a dead-lettered message: %v", err)
	}
}

func testBadInput(t *testing.T, open Open) {
	q, _ := clocked(t, open, queue.Options{MaxMessageBytes: 1024})
	ctx := context.Background()
	if err := q.Send(ctx, queue.Message{Body: []byte("x")}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("no id: %v", err)
	}
	if err := q.Send(ctx, queue.Message{ID: "big", Body: make([]byte, 2048)}); modelfleet.ErrorCode(err) != modelfleet.ETOOLARGE {
		t.Errorf("oversize: %v", err)
	}
	if err := q.Send(ctx, queue.Message{ID: "bad\xff"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad utf-8: %v", err)
	}
	if _, err := q.Receive(ctx, 0); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("receive 0: %v", err)
	}
	if _, err := q.Peek(-1, 1, false); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("peek -1: %v", err)
	}
	if _, err := q.Redrive(ctx, 0); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("redrive 0: %v", err)
	}
	if err := q.Complete(ctx, queue.Delivery{Message: queue.Message{ID: "x"}, SequenceNumber: 99, LockToken: "00112233445566778899aabbccddeeff"}); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("complete of an unknown message: %v", err)
	}
	if s := stats(t, q); s.Sent != 0 || s.Active != 0 {
		t.Errorf("bad input was stored: %+v", s)
	}
}

func testConcurrent(t *testing.T, open Open) {
	q := open(t, queue.Options{Name: "signals"})
	const n = 60
	for i := range n {
		send(t, q, fmt.Sprintf("m%03d", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 4 {
		wg.Go(func() {
			for {
				mu.Lock()
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				rctx, c := context.WithTimeout(ctx, 300*time.Millisecond)
				ds, err := q.Receive(rctx, 7)
				c()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					continue
				}
				for _, d := range ds {
					mu.Lock()
					seen[d.ID]++
					mu.Unlock()
					if err := q.Complete(ctx, d); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d of %d messages received", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
}

func testWake(t *testing.T, open Open) {
	q := open(t, queue.Options{Name: "signals"})
	got := make(chan []queue.Delivery, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds, _ := q.Receive(ctx, 1)
		got <- ds
	}()
	send(t, q, "late")
	if ds := <-got; len(ds) != 1 || ds[0].ID != "late" {
		t.Errorf("blocked receive got %+v", ds)
	}
}
