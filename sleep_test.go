package modelfleet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func TestSleepWaits(t *testing.T) {
	start := time.Now()
	if err := modelfleet.Sleep(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("returned after %s, want at least 20ms", el)
	}
	for _, d := range []time.Duration{0, -time.Second} {
		if err := modelfleet.Sleep(context.Background(), d); err != nil {
			t.Errorf("Sleep(%s) = %v, want nil", d, err)
		}
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	if err := modelfleet.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("returned after %s, want soon after the cancel", el)
	}
	// Already done: the context's error, whatever d, every time.
	for _, d := range []time.Duration{0, -1, time.Nanosecond, time.Hour} {
		for range 100 {
			if err := modelfleet.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
				t.Fatalf("Sleep(done, %s) = %v, want context.Canceled", d, err)
			}
		}
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer dcancel()
	if err := modelfleet.Sleep(dctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sleep past the deadline = %v, want context.DeadlineExceeded", err)
	}
}
