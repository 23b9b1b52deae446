package signals

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/queue"
)

// flaky is the link to the cloud: down while down is set; with loseAck,
// a send reaches the queue but its answer is lost once.
type flaky struct {
	q       *queue.Queue
	down    atomic.Bool
	loseAck atomic.Bool
	refuse  string // a message ID the queue refuses for good
	mu      sync.Mutex
	bodies  int
}

func (f *flaky) Send(ctx context.Context, m queue.Message) error {
	if f.down.Load() {
		return errors.New("dial tcp: connection refused")
	}
	if m.ID == f.refuse {
		return modelfleet.Errorf(modelfleet.EINVALID, "message %q refused", m.ID)
	}
	if err := f.q.Send(ctx, m); err != nil {
		return err
	}
	f.mu.Lock()
	f.bodies++
	f.mu.Unlock()
	if f.loseAck.CompareAndSwap(true, false) {
		return errors.New("read tcp: connection reset by peer")
	}
	return nil
}

// drain receives everything in the queue and returns the signal messages'
// IDs in order, and how many queue messages carried them.
func drain(t *testing.T, q *queue.Queue) (ids []string, queueMsgs int) {
	t.Helper()
	for {
		st, _ := q.Stats()
		if st.Active == 0 {
			return ids, queueMsgs
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ds, err := q.Receive(ctx, 100)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			msgs, err := DecodeAny(d.Body)
			if err != nil {
				t.Fatalf("queue message %q: %v", d.ID, err)
			}
			for _, m := range msgs {
				ids = append(ids, m.MessageID)
			}
			queueMsgs++
			if err := q.Complete(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSenderOfflineThenInOrderOnce(t *testing.T) {
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "signals.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	link := &flaky{q: q}
	link.down.Store(true)
	buf := openBuffer(t, filepath.Join(dir, "buffer.db"), BufferOptions{})
	defer buf.Close()
	s := &Sender{Buffer: buf, Queue: link, MaxBatch: 4, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	var want []string
	for i := range 10 { // offline: everything stays on disk
		m := windowMessage("s", i)
		want = append(want, m.MessageID)
		if err := buf.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "failed attempts", func() bool { return s.Stats().Failures >= 3 })
	if st, _ := buf.Stats(); st.Messages != 10 || s.Stats().Connected {
		t.Fatalf("offline: buffer %+v, sender %+v", st, s.Stats())
	}
	link.loseAck.Store(true) // the first send after reconnecting arrives, its answer does not
	link.down.Store(false)
	waitFor(t, "the buffer to empty", func() bool { st, _ := buf.Stats(); return st.Messages == 0 })
	cancel()
	<-done

	got, batches := drain(t, q)
	if !slices.Equal(got, want) {
		t.Errorf("received %v, want each once in order %v", got, want)
	}
	qs, _ := q.Stats()
	if qs.Duplicates != 1 || batches != 3 || s.Stats().Sent != 10 {
		t.Errorf("queue duplicates %d (want the re-sent batch, 1), %d queue messages (want 3 batches of <= 4), sender %+v", qs.Duplicates, batches, s.Stats())
	}
}

// TestSenderCrashAfterSend: a send that reached the queue before the agent
// died is sent again after restart, and the queue drops the copy.
func TestSenderCrashAfterSend(t *testing.T) {
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "signals.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	path := filepath.Join(dir, "buffer.db")
	buf := openBuffer(t, path, BufferOptions{})
	for i := range 3 {
		if err := buf.Add(windowMessage("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	items, _ := buf.Peek(1, 1<<20)
	if err := q.Send(context.Background(), queue.Message{ID: items[0].ID, Body: items[0].Body}); err != nil {
		t.Fatal(err)
	}
	buf.Close() // crashed before Remove

	buf = openBuffer(t, path, BufferOptions{})
	defer buf.Close()
	s := &Sender{Buffer: buf, Queue: q, MaxBatch: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "the buffer to empty", func() bool { st, _ := buf.Stats(); return st.Messages == 0 })
	cancel()
	<-done
	got, n := drain(t, q)
	qs, _ := q.Stats()
	if len(got) != 3 || n != 3 || qs.Duplicates != 1 {
		t.Errorf("received %v in %d queue messages, %d duplicates dropped", got, n, qs.Duplicates)
	}
}

func TestSenderDropsRefusedMessage(t *testing.T) {
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "signals.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	buf := openBuffer(t, filepath.Join(dir, "buffer.db"), BufferOptions{})
	defer buf.Close()
	bad := windowMessage("s", 1)
	link := &flaky{q: q, refuse: bad.MessageID}
	for i := range 3 {
		_ = buf.Add(windowMessage("s", i))
	}
	s := &Sender{Buffer: buf, Queue: link, MaxBatch: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "the buffer to empty", func() bool { st, _ := buf.Stats(); return st.Messages == 0 })
	cancel()
	<-done
	got, _ := drain(t, q)
	if len(got) != 2 || s.Stats().Rejected != 1 || slices.Contains(got, bad.MessageID) {
		t.Errorf("received %v, sender %+v", got, s.Stats())
	}
}
