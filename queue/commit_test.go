package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// holdWrites starts a write that blocks until the returned release is
// called, so that the writes issued meanwhile wait and commit as one group.
func holdWrites(t *testing.T, q *Queue) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- q.update(func(*bbolt.Tx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitPending waits until n writes wait for the transaction in progress.
func waitPending(t *testing.T, q *Queue, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d writes pending", n), func() bool {
		q.wmu.Lock()
		defer q.wmu.Unlock()
		return len(q.pending) == n
	})
}

// Completes that arrive while a commit is in progress commit together, each
// with its own outcome: a lost lock fails that settlement alone.
func TestGroupCommitSettlesTogether(t *testing.T) {
	q := openTemp(t, Options{})
	for i := range 10 {
		send(t, q, fmt.Sprint(i), "x")
	}
	ds := receive(t, q, 10)
	if len(ds) != 10 {
		t.Fatalf("received %d, want 10", len(ds))
	}
	stale := ds[0]
	stale.LockToken = "00000000000000000000000000000000"

	release := holdWrites(t, q)
	errs := make([]error, len(ds)+1)
	var wg sync.WaitGroup
	for i, d := range append(ds, stale) {
		wg.Go(func() { errs[i] = q.Complete(context.Background(), d) })
	}
	waitPending(t, q, len(ds)+1)
	before := q.commits.Load()
	release()
	wg.Wait()
	if got := q.commits.Load() - before; got != 1 {
		t.Errorf("%d transactions after the held one, want 1 for all the completes", got)
	}
	for i, err := range errs[:len(ds)] {
		if err != nil {
			t.Errorf("complete %d: %v", i, err)
		}
	}
	if code := modelfleet.ErrorCode(errs[len(ds)]); code != modelfleet.ECONFLICT {
		t.Errorf("complete with a stale token in the group: %v, want conflict", errs[len(ds)])
	}
	if s := stats(t, q); s.Active != 0 || s.Completed != 10 {
		t.Errorf("stats %+v, want all 10 completed", s)
	}
}

// A write that fails after writing rolls its group back; the others are
// then committed one by one, and only the failed write is lost.
func TestGroupCommitFailureIsolated(t *testing.T) {
	q := openTemp(t, Options{})
	for i := range 3 {
		send(t, q, fmt.Sprint(i), "x")
	}
	ds := receive(t, q, 3)

	release := holdWrites(t, q)
	boom := errors.New("boom")
	errs := make([]error, len(ds))
	var failed error
	var wg sync.WaitGroup
	wg.Go(func() {
		failed = q.update(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketCounters).Put([]byte("scribble"), []byte("x")); err != nil {
				return err
			}
			return boom
		})
	})
	for i, d := range ds {
		wg.Go(func() { errs[i] = q.Complete(context.Background(), d) })
	}
	waitPending(t, q, len(ds)+1)
	release()
	wg.Wait()
	if !errors.Is(failed, boom) {
		t.Errorf("failing write returned %v, want its own error", failed)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("complete %d grouped with a failing write: %v", i, err)
		}
	}
	err := q.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketCounters).Get([]byte("scribble")) != nil {
			return errors.New("the failed write's change was committed")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if s := stats(t, q); s.Active != 0 || s.Completed != 3 {
		t.Errorf("stats %+v, want all 3 completed", s)
	}
}

// What a grouped Complete acknowledged survives a restart, and what was
// received in a group and not settled is delivered again, counted.
func TestGroupCommitDurableAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	clk := newClock()
	q, err := Open(path, Options{Now: clk.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		send(t, q, fmt.Sprint(i), "x")
	}
	release := holdWrites(t, q)
	var wg sync.WaitGroup
	var ds []Delivery
	wg.Go(func() { ds = receive(t, q, 6) })
	waitPending(t, q, 1)
	release()
	wg.Wait()

	release = holdWrites(t, q)
	for _, d := range ds[:4] {
		wg.Go(func() {
			if err := q.Complete(context.Background(), d); err != nil {
				t.Errorf("complete %s: %v", d.ID, err)
			}
		})
	}
	waitPending(t, q, 4)
	release()
	wg.Wait()
	// Gone without settling ds[4:]: a consumer that crashed.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openAt(t, path, Options{Now: clk.Now})
	receiveNone(t, q) // their locks outlive the restart until they expire
	clk.Add(31 * time.Second)
	again := receive(t, q, 10)
	if got := ids(again); len(got) != 2 || got[0] != "4" || got[1] != "5" {
		t.Fatalf("after restart received %v, want [4 5]", got)
	}
	for _, d := range again {
		if d.DeliveryCount != 2 {
			t.Errorf("%s delivered with count %d, want 2", d.ID, d.DeliveryCount)
		}
	}
	if s := stats(t, q); s.Completed != 4 || s.Active != 2 {
		t.Errorf("stats after restart %+v, want 4 completed, 2 active", s)
	}
}
