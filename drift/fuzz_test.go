package drift

import (
	"context"
	"errors"
	"testing"

	"github.com/modelfleet/modelfleet/queue"
)

// FuzzProcess: whatever a queue message holds, the monitor neither panics
// nor asks for a redelivery that cannot help: it evaluates the body or
// refuses it for good with a reason.
func FuzzProcess(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.window(50, 0))
	f.Add(fx.window(50, 40))
	f.Add([]byte(`{"schemaVersion":"modelfleet.signal-batch/v1","messages":[{}]}`))
	f.Add([]byte(`{"schemaVersion":"modelfleet.signal/v1"}`))
	m := fx.monitor(nil, Options{MinRows: 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		err := m.Process(context.Background(), body)
		var pe *queue.PermanentError
		if err != nil && (!errors.As(err, &pe) || pe.Reason == "") {
			t.Fatalf("err = %v, want nil or a permanent error with a reason", err)
		}
	})
}
