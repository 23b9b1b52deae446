package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// consume runs Consume until the test ends and reports its result on the
// returned channel.
func consume(t *testing.T, r Receiver, handle func(context.Context, Delivery) error, opts ConsumeOptions) <-chan error {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, r, handle, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consume returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("consume did not return after cancel")
		}
	})
	return done
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConsumeCompletes(t *testing.T) {
	q := openTemp(t, Options{})
	send(t, q, "a", `{"ok":true}`)
	var got atomic.Value
	consume(t, q, func(ctx context.Context, d Delivery) error {
		got.Store(string(d.Body))
		return nil
	}, ConsumeOptions{})
	eventually(t, "completion", func() bool { return stats(t, q).Completed == 1 })
	if got.Load() != `{"ok":true}` {
		t.Errorf("handler saw %v", got.Load())
	}
	if s := stats(t, q); s.Active != 0 || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A transient error abandons: the message comes back with DeliveryCount+1.
func TestConsumeAbandonsTransientErrors(t *testing.T) {
	q := openTemp(t, Options{})
	send(t, q, "a", "1")
	var mu sync.Mutex
	var counts []int
	consume(t, q, func(ctx context.Context, d Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		counts = append(counts, d.DeliveryCount)
		if len(counts) < 3 {
			return errors.New("database briefly unavailable")
		}
		return nil
	}, ConsumeOptions{})
	eventually(t, "completion", func() bool { return stats(t, q).Completed == 1 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(counts) != "[1 2 3]" {
		t.Errorf("delivery counts %v, want [1 2 3]", counts)
	}
}

// A handler that never succeeds ends in the dead-letter queue after
// MaxDeliveryCount deliveries; a panic counts as a transient failure.
func TestConsumeTransientUntilMaxDeliveryCount(t *testing.T) {
	q := openTemp(t, Options{MaxDeliveryCount: 3})
	send(t, q, "a", "1")
	var calls atomic.Int32
	consume(t, q, func(ctx context.Context, d Delivery) error {
		if calls.Add(1) == 2 {
			panic("boom")
		}
		return errors.New("always fails")
	}, ConsumeOptions{})
	eventually(t, "dead-lettering", func() bool { return stats(t, q).DeadLettered == 1 })
	dead, err := q.Peek(0, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if dead[0].DeadLetterReason != ReasonMaxDeliveryCountExceeded || dead[0].DeliveryCount != 3 || calls.Load() != 3 {
		t.Errorf("dead letter %+v after %d calls", dead[0], calls.Load())
	}
}

func TestConsumeDeadLettersPermanentErrors(t *testing.T) {
	q := openTemp(t, Options{})
	send(t, q, "malformed", "{")
	send(t, q, "unknown", `{"schema":9}`)
	consume(t, q, func(ctx context.Context, d Delivery) error {
		if d.ID == "malformed" {
			return fmt.Errorf("decode signal: %w", PermanentReason("MalformedJSON", errors.New("unexpected end of JSON input")))
		}
		return Permanent(fmt.Errorf("schema version %d is not supported", 9))
	}, ConsumeOptions{})
	eventually(t, "dead-lettering", func() bool { return stats(t, q).DeadLettered == 2 })
	dead, err := q.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if dead[0].DeadLetterReason != "MalformedJSON" || dead[0].DeadLetterErrorDescription != "decode signal: unexpected end of JSON input" || dead[0].DeliveryCount != 1 {
		t.Errorf("malformed dead letter %+v", dead[0])
	}
	if dead[1].DeadLetterReason != DefaultDeadLetterReason || dead[1].DeadLetterErrorDescription != "schema version 9 is not supported" {
		t.Errorf("unknown-schema dead letter %+v", dead[1])
	}
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil || PermanentReason("r", nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	base := errors.New("bad")
	err := fmt.Errorf("wrapped: %w", Permanent(base))
	var pe *PermanentError
	if !errors.As(err, &pe) || !errors.Is(err, base) || pe.reason() != DefaultDeadLetterReason {
		t.Errorf("Permanent chain %v", err)
	}
	if (&PermanentError{}).Error() != DefaultDeadLetterReason {
		t.Error("an empty PermanentError has no text")
	}
}

// A handler slower than the lock keeps its message: the lock is renewed at
// half its duration, so it is neither redelivered meanwhile nor lost.
func TestConsumeRenewsLockForSlowHandler(t *testing.T) {
	q := openTemp(t, Options{LockDuration: 300 * time.Millisecond})
	send(t, q, "slow", "1")
	var calls atomic.Int32
	consume(t, q, func(ctx context.Context, d Delivery) error {
		calls.Add(1)
		time.Sleep(1 * time.Second) // over three lock durations
		return nil
	}, ConsumeOptions{Concurrency: 2}) // a free slot would take a redelivery
	eventually(t, "completion", func() bool { return stats(t, q).Completed == 1 })
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// The counter-test: without renewal the lock lapses, Complete fails with
// lock lost, and the message is delivered again.
func TestConsumeWithoutRenewalLosesLock(t *testing.T) {
	q := openTemp(t, Options{LockDuration: 100 * time.Millisecond})
	send(t, q, "slow", "1")
	var calls atomic.Int32
	consume(t, q, func(ctx context.Context, d Delivery) error {
		if calls.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	}, ConsumeOptions{Concurrency: 2, RenewEvery: time.Hour})
	eventually(t, "completion", func() bool { return stats(t, q).Completed == 1 })
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (once under a lost lock)", n)
	}
}

func TestConsumeConcurrency(t *testing.T) {
	q := openTemp(t, Options{})
	for i := range 8 {
		send(t, q, fmt.Sprint(i), "x")
	}
	var running, peak atomic.Int32
	release := make(chan struct{})
	consume(t, q, func(ctx context.Context, d Delivery) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return nil
	}, ConsumeOptions{Concurrency: 4})
	eventually(t, "4 handlers running", func() bool { return running.Load() == 4 })
	time.Sleep(30 * time.Millisecond)
	if s := stats(t, q); s.Locked != 4 {
		t.Errorf("%d messages locked while 4 handlers run, want 4 (no lock taken without a free handler)", s.Locked)
	}
	close(release)
	eventually(t, "all completed", func() bool { return stats(t, q).Completed == 8 })
	if peak.Load() != 4 {
		t.Errorf("peak concurrency %d, want 4", peak.Load())
	}
}

func TestConsumeStopsOnClosedQueue(t *testing.T) {
	q := openTemp(t, Options{})
	done := make(chan error, 1)
	go func() {
		done <- Consume(context.Background(), q, func(context.Context, Delivery) error { return nil }, ConsumeOptions{Logger: quiet})
	}()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("consume on a closed queue: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consume did not return when the queue closed")
	}
}

// flakyReceiver fails its first receives, then delivers one message once.
type flakyReceiver struct {
	Receiver
	fails     atomic.Int32
	delivered atomic.Bool
	completed chan Delivery
}

func (f *flakyReceiver) Receive(ctx context.Context, max int) ([]Delivery, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("connection reset")
	}
	if f.delivered.CompareAndSwap(false, true) {
		return []Delivery{{Message: Message{ID: "a"}, LockToken: "t", LockedUntil: time.Now().Add(time.Minute)}}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *flakyReceiver) Complete(ctx context.Context, d Delivery) error {
	f.completed <- d
	return nil
}

func TestConsumeRetriesReceiveErrors(t *testing.T) {
	f := &flakyReceiver{completed: make(chan Delivery, 1)}
	f.fails.Store(2)
	consume(t, f, func(context.Context, Delivery) error { return nil }, ConsumeOptions{})
	select {
	case d := <-f.completed:
		if d.ID != "a" {
			t.Errorf("completed %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consume gave up after transient receive errors")
	}
}

func TestFatalReceive(t *testing.T) {
	for err, want := range map[error]bool{
		ErrClosed:                      true,
		fmt.Errorf("x: %w", ErrClosed): true,
		modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "no"):    true,
		modelfleet.Errorf(modelfleet.ENOTFOUND, "no queue"):  true,
		modelfleet.Errorf(modelfleet.ECONFLICT, "lock lost"): false,
		errors.New("connection reset"):                       false,
		fmt.Errorf("%w", context.DeadlineExceeded):           false,
		modelfleet.Errorf(modelfleet.EINVALID, "bad max"):    true,
	} {
		if got := fatalReceive(err); got != want {
			t.Errorf("fatalReceive(%v) = %v, want %v", err, got, want)
		}
	}
}

// Prefetch receives that many messages beyond the running handlers, never
// more, and still runs no more than Concurrency handlers.
func TestConsumePrefetch(t *testing.T) {
	q := openTemp(t, Options{})
	for i := range 10 {
		send(t, q, fmt.Sprint(i), "x")
	}
	var running, peak atomic.Int32
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	consume(t, q, func(ctx context.Context, d Delivery) error {
		n := running.Add(1)
		defer running.Add(-1)
		if n > peak.Load() {
			peak.Store(n)
		}
		mu.Lock()
		order = append(order, d.ID)
		mu.Unlock()
		<-release
		return nil
	}, ConsumeOptions{Concurrency: 1, Prefetch: 2})
	eventually(t, "1 running and 2 prefetched", func() bool { return running.Load() == 1 && stats(t, q).Locked == 3 })
	time.Sleep(30 * time.Millisecond)
	if s := stats(t, q); s.Locked != 3 {
		t.Errorf("%d messages locked with 1 handler and prefetch 2, want 3", s.Locked)
	}
	close(release)
	eventually(t, "all completed", func() bool { return stats(t, q).Completed == 10 })
	if peak.Load() != 1 {
		t.Errorf("peak concurrency %d, want 1", peak.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, id := range order {
		if id != fmt.Sprint(i) {
			t.Fatalf("handled in order %v, want the order received", order)
		}
	}
}

// At shutdown, prefetched messages no handler took are abandoned: delivered
// again at once, not after their lock.
func TestConsumeAbandonsPrefetchedOnShutdown(t *testing.T) {
	q := openTemp(t, Options{})
	for i := range 4 {
		send(t, q, fmt.Sprint(i), "x")
	}
	started, release := make(chan struct{}, 4), make(chan struct{})
	var handled atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Consume(ctx, q, func(context.Context, Delivery) error {
			handled.Add(1)
			started <- struct{}{}
			<-release
			return nil
		}, ConsumeOptions{Concurrency: 1, Prefetch: 3, Logger: quiet})
	}()
	<-started
	eventually(t, "3 prefetched", func() bool { return stats(t, q).Locked == 4 })
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := handled.Load(); n != 1 {
		t.Errorf("%d handled after shutdown began, want only the running one", n)
	}
	if s := stats(t, q); s.Completed != 1 || s.Active != 3 || s.Locked != 0 {
		t.Errorf("stats %+v, want 1 completed and 3 unlocked", s)
	}
	ds := receive(t, q, 10)
	if len(ds) != 3 || ds[0].DeliveryCount != 2 {
		t.Errorf("after shutdown received %v (first delivery count %d), want the 3 prefetched, counted", ids(ds), ds[0].DeliveryCount)
	}
}

// A prefetched message whose lock ran out while it waited is not handled
// (the handler's effect could not be settled); it comes back, counted.
func TestConsumeSkipsPrefetchedWithExpiredLock(t *testing.T) {
	q := openTemp(t, Options{LockDuration: 50 * time.Millisecond})
	send(t, q, "slow", "x")
	send(t, q, "waits", "x")
	var mu sync.Mutex
	seen := map[string][]int{}
	consume(t, q, func(ctx context.Context, d Delivery) error {
		mu.Lock()
		seen[d.ID] = append(seen[d.ID], d.DeliveryCount)
		mu.Unlock()
		if d.ID == "slow" {
			time.Sleep(150 * time.Millisecond) // its lock is renewed; the prefetched one's is not
		}
		return nil
	}, ConsumeOptions{Concurrency: 1, Prefetch: 1})
	eventually(t, "both completed", func() bool { return stats(t, q).Completed == 2 })
	mu.Lock()
	defer mu.Unlock()
	if got := seen["waits"]; len(got) != 1 || got[0] != 2 {
		t.Errorf("the prefetched message was handled with delivery counts %v, want only its second delivery", got)
	}
}

// Settling does not hold a handler slot: the next handler runs while the
// previous message's Complete is still in progress.
func TestConsumeSettlesAhead(t *testing.T) {
	r := &slowCompleter{Receiver: openTemp(t, Options{}), completing: make(chan struct{}), unblock: make(chan struct{})}
	q := r.Receiver.(*Queue)
	send(t, q, "a", "x")
	send(t, q, "b", "x")
	handled := make(chan string, 2)
	consume(t, r, func(ctx context.Context, d Delivery) error {
		handled <- d.ID
		return nil
	}, ConsumeOptions{Concurrency: 1})
	<-r.completing // a's Complete is blocked
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("a was not handled")
	}
	select {
	case id := <-handled:
		if id != "b" {
			t.Errorf("handled %q, want b", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b waited for a's Complete")
	}
	close(r.unblock)
	eventually(t, "both completed", func() bool { return stats(t, q).Completed == 2 })
}

// slowCompleter blocks its first Complete until unblock is closed.
type slowCompleter struct {
	Receiver
	once       sync.Once
	completing chan struct{}
	unblock    chan struct{}
}

func (s *slowCompleter) Complete(ctx context.Context, d Delivery) error {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.completing)
		<-s.unblock
	}
	return s.Receiver.Complete(ctx, d)
}
