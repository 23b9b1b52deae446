package main

import (
	"strings"
	"testing"
)

func TestSignalQueueSelection(t *testing.T) {
	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "")
	if s, err := signalSender(); s != nil || err != nil {
		t.Fatalf("no connection string: sender %v %v, want the embedded queue (nil)", s, err)
	}
	if r, err := signalReceiver(); r != nil || err != nil {
		t.Fatalf("no connection string: receiver %v %v, want the embedded queue (nil)", r, err)
	}

	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "SharedAccessKey=hunter2-not-a-string")
	_, err := signalSender()
	if err == nil || !strings.Contains(err.Error(), "connection string is invalid") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad connection string: err = %v, want it refused without showing the key", err)
	}

	// The SDK dials lazily: a well-formed string builds both ends offline.
	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "Endpoint=sb://plant-fleet.servicebus.windows.net/;SharedAccessKeyName=modelfleet;SharedAccessKey=c2VjcmV0")
	t.Setenv("MODELFLEET_SIGNAL_QUEUE", "edge-signals")
	if s, err := signalSender(); s == nil || err != nil {
		t.Errorf("sender: %v %v", s, err)
	}
	if r, err := signalReceiver(); r == nil || err != nil {
		t.Errorf("receiver: %v %v", r, err)
	}
}
