package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

func TestSendReceiveComplete(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now})
	if q.Name() != "signals" {
		t.Errorf("name = %q, want the file name without extension", q.Name())
	}
	m := Message{ID: "a", Body: []byte(`{"x":1}`), ContentType: "application/json", Properties: map[string]string{"site": "s1"}}
	if err := q.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	send(t, q, "b", "2")

	ds := receive(t, q, 10)
	if got := ids(ds); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("received %v, want [a b] in enqueue order", got)
	}
	d := ds[0]
	if !bytes.Equal(d.Body, m.Body) || d.ContentType != m.ContentType || d.Properties["site"] != "s1" {
		t.Errorf("delivery %+v does not carry the message sent", d)
	}
	if d.DeliveryCount != 1 || d.SequenceNumber != 1 || len(d.LockToken) != 32 {
		t.Errorf("delivery count %d, sequence %d, token %q; want 1, 1, 32 hex digits", d.DeliveryCount, d.SequenceNumber, d.LockToken)
	}
	if !d.EnqueuedAt.Equal(clk.Now()) || !d.LockedUntil.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("enqueued %v locked until %v; want now and now+30s", d.EnqueuedAt, d.LockedUntil)
	}
	if ds[0].LockToken == ds[1].LockToken {
		t.Error("two deliveries share a lock token")
	}
	receiveNone(t, q) // both locked
	for _, d := range ds {
		if err := q.Complete(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	receiveNone(t, q)
	if s := stats(t, q); s != (Stats{Sent: 2, Completed: 2}) {
		t.Errorf("stats %+v", s)
	}
}

func TestSendValidates(t *testing.T) {
	q := openTemp(t, Options{MaxMessageBytes: 100})
	for _, tc := range []struct {
		m    Message
		code string
	}{
		{Message{Body: []byte("x")}, modelfleet.EINVALID},
		{Message{ID: strings.Repeat("i", 129)}, modelfleet.EINVALID},
		{Message{ID: "bad\xff"}, modelfleet.EINVALID},
		{Message{ID: "p", Properties: map[string]string{"": "v"}}, modelfleet.EINVALID},
		{Message{ID: "big", Body: make([]byte, 101)}, modelfleet.ETOOLARGE},
		{Message{ID: "props", Body: make([]byte, 50), Properties: map[string]string{"k": strings.Repeat("v", 50)}}, modelfleet.ETOOLARGE},
	} {
		if err := q.Send(context.Background(), tc.m); modelfleet.ErrorCode(err) != tc.code {
			t.Errorf("send %q: %v, want code %s", tc.m.ID, err, tc.code)
		}
	}
	if s := stats(t, q); s.Sent != 0 || s.Active != 0 {
		t.Errorf("rejected messages were stored: %+v", s)
	}
}

// Sent and not completed survives Close/Open and is delivered again; a
// completed message does not come back.
func TestDurableAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	clk := newClock()
	q, err := Open(path, Options{Now: clk.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "done", "1")
	send(t, q, "pending", "2")
	send(t, q, "locked", "3")
	ds := receive(t, q, 3)
	if err := q.Complete(context.Background(), ds[0]); err != nil {
		t.Fatal(err)
	}
	if err := q.Abandon(context.Background(), ds[1]); err != nil {
		t.Fatal(err)
	}
	// ds[2] stays locked across the restart: a crashed consumer.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openAt(t, path, Options{Now: clk.Now})
	d := receiveOne(t, q, "pending")
	if d.DeliveryCount != 2 {
		t.Errorf("pending delivered with count %d, want 2", d.DeliveryCount)
	}
	if err := q.Complete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	receiveNone(t, q) // "locked" keeps its persisted lock until it expires
	clk.Add(31 * time.Second)
	d = receiveOne(t, q, "locked")
	if d.DeliveryCount != 2 {
		t.Errorf("locked delivered with count %d, want 2", d.DeliveryCount)
	}
	if s := stats(t, q); s.Sent != 3 || s.Completed != 2 || s.Active != 1 || s.Locked != 1 {
		t.Errorf("stats after restart %+v", s)
	}
	// The old lock token is stale after the restart too.
	if err := q.Complete(context.Background(), ds[2]); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("complete with a pre-restart token: %v, want conflict", err)
	}
}

func TestDuplicateDetection(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, DuplicateDetectionWindow: time.Minute})
	send(t, q, "a", "first")
	clk.Add(59 * time.Second)
	send(t, q, "a", "second within the window") // accepted, dropped
	d := receiveOne(t, q, "a")
	if string(d.Body) != "first" {
		t.Errorf("body %q, want the first send's", d.Body)
	}
	if err := q.Complete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	send(t, q, "a", "still within the window after completion")
	receiveNone(t, q)

	clk.Add(time.Second) // the window runs from the first acceptance: now it has passed
	send(t, q, "a", "after the window")
	d = receiveOne(t, q, "a")
	if string(d.Body) != "after the window" {
		t.Errorf("body %q, want the send after the window", d.Body)
	}
	if s := stats(t, q); s.Sent != 2 || s.Duplicates != 2 {
		t.Errorf("stats %+v, want 2 sent and 2 duplicates", s)
	}
}

// Old IDs are forgotten, so the history does not grow without bound.
func TestDuplicateHistoryPruned(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, DuplicateDetectionWindow: time.Minute})
	for i := range 10 {
		send(t, q, string(rune('a'+i)), "x")
	}
	clk.Add(2 * time.Minute)
	send(t, q, "z", "x")
	err := q.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketDedup).Stats().KeyN; n != 1 {
			t.Errorf("%d ids remembered, want 1", n)
		}
		if n := tx.Bucket(bucketDedupAge).Stats().KeyN; n != 1 {
			t.Errorf("%d age entries, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLockExpiryRedelivers(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, LockDuration: 10 * time.Second})
	send(t, q, "a", "1")
	first := receiveOne(t, q, "a")
	clk.Add(9 * time.Second)
	receiveNone(t, q)
	clk.Add(time.Second)
	second := receiveOne(t, q, "a")
	if second.DeliveryCount != first.DeliveryCount+1 || second.LockToken == first.LockToken {
		t.Fatalf("redelivery count %d token %q after %d %q", second.DeliveryCount, second.LockToken, first.DeliveryCount, first.LockToken)
	}
	// Every settlement with the stale token is Service Bus's MessageLockLost.
	ctx := context.Background()
	for name, err := range map[string]error{
		"complete":    q.Complete(ctx, first),
		"abandon":     q.Abandon(ctx, first),
		"dead-letter": q.DeadLetter(ctx, first, "r", "d"),
		"renew":       q.RenewLock(ctx, &first),
	} {
		if modelfleet.ErrorCode(err) != modelfleet.ECONFLICT || !strings.Contains(err.Error(), "lock lost") {
			t.Errorf("%s with a stale token: %v, want conflict (lock lost)", name, err)
		}
	}
	if err := q.Complete(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, second); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("second complete: %v, want conflict", err)
	}
}

// Like Service Bus, an expired lock is lost even if nobody took the message.
func TestExpiredLockIsLost(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, LockDuration: 10 * time.Second})
	send(t, q, "a", "1")
	d := receiveOne(t, q, "a")
	clk.Add(10 * time.Second)
	if err := q.Complete(context.Background(), d); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("complete after expiry: %v, want conflict", err)
	}
	if err := q.Complete(context.Background(), Delivery{Message: Message{ID: "a"}, SequenceNumber: 1, LockToken: "nothex"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("complete with a malformed token: %v, want invalid", err)
	}
}

func TestRenewLock(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, LockDuration: 10 * time.Second})
	send(t, q, "a", "1")
	d := receiveOne(t, q, "a")
	clk.Add(8 * time.Second)
	if err := q.RenewLock(context.Background(), &d); err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(10 * time.Second); !d.LockedUntil.Equal(want) {
		t.Errorf("locked until %v, want %v", d.LockedUntil, want)
	}
	clk.Add(8 * time.Second) // past the first lock, within the renewed one
	receiveNone(t, q)
	if err := q.Complete(context.Background(), d); err != nil {
		t.Fatalf("complete under the renewed lock: %v", err)
	}
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now, MaxDeliveryCount: 3, LockDuration: time.Second})
	send(t, q, "poison", "1")
	send(t, q, "expires", "2")
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		ds := receive(t, q, 10)
		if len(ds) != 2 || ds[0].DeliveryCount != i {
			t.Fatalf("delivery %d: %v count %d", i, ids(ds), ds[0].DeliveryCount)
		}
		// "poison" is abandoned every time; "expires" just lets its lock lapse.
		if err := q.Abandon(ctx, ds[0]); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	// The third abandon dead-lettered "poison" at once, as Service Bus does;
	// "expires" goes on the next Receive instead of a fourth delivery.
	if s := stats(t, q); s.DeadLettered != 1 || s.Active != 1 {
		t.Errorf("after 3 abandons: %+v", s)
	}
	receiveNone(t, q)
	dead, err := q.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("dead letters %+v", dead)
	}
	for _, p := range dead {
		if p.DeadLetterReason != ReasonMaxDeliveryCountExceeded || p.DeliveryCount != 3 ||
			!strings.Contains(p.DeadLetterErrorDescription, "3 delivery attempts") || p.DeadLetteredAt.IsZero() {
			t.Errorf("dead letter %+v", p)
		}
	}
	if dead[0].ID != "poison" || string(dead[0].Body) != "1" || dead[0].SequenceNumber != 1 {
		t.Errorf("first dead letter %+v", dead[0])
	}
}

func TestDeadLetterAndRedrive(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now})
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		send(t, q, id, id)
	}
	for _, d := range receive(t, q, 10) {
		if err := q.DeadLetter(ctx, d, "MalformedJSON", "invalid character 'x' "+d.ID); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := q.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 || dead[1].DeadLetterReason != "MalformedJSON" || dead[1].DeadLetterErrorDescription != "invalid character 'x' b" || dead[1].DeliveryCount != 1 {
		t.Fatalf("dead letters %+v", dead)
	}

	waiting := make(chan []Delivery)
	go func() {
		ds, _ := q.Receive(context.Background(), 10)
		waiting <- ds
	}()
	n, err := q.Redrive(ctx, 2)
	if err != nil || n != 2 {
		t.Fatalf("redrive 2 = %d, %v", n, err)
	}
	// The redrive woke the blocked Receive; redriven IDs bypass duplicate
	// detection (they were first sent within the window).
	var ds []Delivery
	select {
	case ds = <-waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("redrive did not wake a blocked receive")
	}
	if got := ids(ds); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("after redrive received %v, want [a b]", got)
	}
	if ds[0].DeliveryCount != 1 || ds[0].SequenceNumber != 4 || string(ds[0].Body) != "a" {
		t.Errorf("redriven delivery %+v: want count reset, a new sequence number, the same body", ds[0])
	}
	if n, err := q.Redrive(ctx, 100); err != nil || n != 1 {
		t.Errorf("redrive rest = %d, %v; want 1", n, err)
	}
	if n, err := q.Redrive(ctx, 100); err != nil || n != 0 {
		t.Errorf("redrive empty = %d, %v; want 0", n, err)
	}
	if _, err := q.Redrive(ctx, 0); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("redrive 0: %v", err)
	}
	if s := stats(t, q); s.DeadLettered != 0 || s.Active != 3 || s.Locked != 2 || s.Sent != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestRedriveManyInBatches(t *testing.T) {
	q := openTemp(t, Options{})
	ctx := context.Background()
	const n = redriveBatch*2 + 5
	// Dead-letter n messages in one transaction: n sends would cost n fsyncs.
	err := q.db.Update(func(tx *bbolt.Tx) error {
		for i := range n {
			if err := appendActive(tx, Message{ID: fmt.Sprintf("m%d", i)}); err != nil {
				return err
			}
			if err := moveToDeadLetter(tx, seqKey(uint64(i+1)), lockState{deliveries: 1}, "r", "", time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if moved, err := q.Redrive(ctx, n+100); err != nil || moved != n {
		t.Fatalf("redrive = %d, %v; want %d", moved, err, n)
	}
	if s := stats(t, q); s.Active != n || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
	ps, err := q.Peek(0, 1, false)
	if err != nil || len(ps) != 1 || ps[0].ID != "m0" || ps[0].DeliveryCount != 0 {
		t.Errorf("first redriven message %+v, %v", ps, err)
	}
}

func TestPeek(t *testing.T) {
	clk := newClock()
	q := openTemp(t, Options{Now: clk.Now})
	for _, id := range []string{"a", "b", "c", "d"} {
		send(t, q, id, id)
	}
	ds := receive(t, q, 1) // locks "a"
	ps, err := q.Peek(0, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 || ps[0].ID != "a" || ps[0].SequenceNumber != 1 || ps[0].DeliveryCount != 1 || !ps[0].LockedUntil.Equal(ds[0].LockedUntil) {
		t.Fatalf("peek %+v", ps)
	}
	if !ps[1].LockedUntil.IsZero() || ps[1].DeliveryCount != 0 || string(ps[1].Body) != "b" {
		t.Errorf("unlocked message peeked as %+v", ps[1])
	}
	ps, err = q.Peek(2, 2, false)
	if err != nil || len(ps) != 2 || ps[0].SequenceNumber != 2 || ps[1].SequenceNumber != 3 {
		t.Errorf("peek from 2 max 2 = %+v, %v", ps, err)
	}
	// Peeking locks nothing and counts no delivery.
	if got := receive(t, q, 10); len(got) != 3 || got[0].DeliveryCount != 1 {
		t.Errorf("after peeks received %v", ids(got))
	}
	if ps, err := q.Peek(100, 10, false); err != nil || len(ps) != 0 || ps == nil {
		t.Errorf("peek past the end = %#v, %v; want an empty list", ps, err)
	}
	for _, bad := range [][2]int64{{-1, 10}, {0, 0}, {0, -5}} {
		if _, err := q.Peek(bad[0], int(bad[1]), false); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("peek(%d, %d): %v, want invalid", bad[0], bad[1], err)
		}
	}
}

func TestReceiveBlocksUntilSend(t *testing.T) {
	q := openTemp(t, Options{})
	got := make(chan []Delivery)
	go func() {
		ds, _ := q.Receive(context.Background(), 5)
		got <- ds
	}()
	select {
	case ds := <-got:
		t.Fatalf("receive returned %v on an empty queue", ids(ds))
	case <-time.After(50 * time.Millisecond):
	}
	send(t, q, "a", "1")
	select {
	case ds := <-got:
		if len(ds) != 1 || ds[0].ID != "a" {
			t.Fatalf("received %v", ids(ds))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("send did not wake the receive")
	}
}

// A blocked Receive wakes when the earliest lock expires, with no Send.
func TestReceiveWakesOnLockExpiry(t *testing.T) {
	q := openTemp(t, Options{LockDuration: 100 * time.Millisecond})
	send(t, q, "a", "1")
	first := receiveOne(t, q, "a")
	start := time.Now()
	second := receiveOne(t, q, "a")
	if waited := time.Since(start); waited < 50*time.Millisecond || waited > 3*time.Second {
		t.Errorf("redelivered after %v, want about the lock duration", waited)
	}
	if second.DeliveryCount != 2 || first.LockToken == second.LockToken {
		t.Errorf("redelivery %+v", second)
	}
}

func TestReceiveAbandonWakes(t *testing.T) {
	q := openTemp(t, Options{})
	send(t, q, "a", "1")
	d := receiveOne(t, q, "a")
	got := make(chan []Delivery)
	go func() {
		ds, _ := q.Receive(context.Background(), 5)
		got <- ds
	}()
	time.Sleep(20 * time.Millisecond)
	if err := q.Abandon(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	select {
	case ds := <-got:
		if len(ds) != 1 || ds[0].DeliveryCount != 2 {
			t.Fatalf("received %+v", ds)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abandon did not wake the receive")
	}
}

func TestCloseUnblocksReceive(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		_, err := q.Receive(context.Background(), 1)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("receive after close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not unblock receive")
	}
	if err := q.Send(context.Background(), Message{ID: "a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if _, err := q.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("stats after close: %v", err)
	}
}

func TestReceiveInvalidMax(t *testing.T) {
	q := openTemp(t, Options{})
	if _, err := q.Receive(context.Background(), 0); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("receive 0: %v", err)
	}
}

func TestOpenRejectsBadName(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Name: "no/slash"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("open with a bad name: %v", err)
	}
}

// Concurrent receivers never get the same message at once.
func TestConcurrentReceiversDisjoint(t *testing.T) {
	q := openTemp(t, Options{})
	const n = 100
	for i := range n {
		send(t, q, fmt.Sprintf("m%d", i), "x")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				ds, err := q.Receive(ctx, 7)
				cancel()
				if err != nil {
					return
				}
				for _, d := range ds {
					mu.Lock()
					seen[d.ID]++
					mu.Unlock()
					if err := q.Complete(context.Background(), d); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("saw %d messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
}
