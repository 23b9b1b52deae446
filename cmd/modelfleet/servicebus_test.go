package main

import (
	"strings"
	"testing"
)

func TestSignalQueueSelection(t *testing.T) {
	t.Setenv("MODELFLEET_SERVICEBUS_NAMESPACE", "")
	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "")
	t.Setenv("MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY", "")
	if s, err := signalSender(); s != nil || err != nil {
		t.Fatalf("nothing set: sender %v %v, want the gateway (nil)", s, err)
	}
	if r, s, err := gatewaySignals(); r != nil || s != nil || err != nil {
		t.Fatalf("nothing set: receiver %v relay %v %v, want the embedded queue (nil)", r, s, err)
	}

	// Entra ID: the SDK dials lazily, so both ends build offline.
	t.Setenv("MODELFLEET_SERVICEBUS_NAMESPACE", "plant-fleet.servicebus.windows.net")
	t.Setenv("MODELFLEET_SIGNAL_QUEUE", "edge-signals")
	if s, err := signalSender(); s == nil || err != nil {
		t.Errorf("sender: %v %v", s, err)
	}
	if r, s, err := gatewaySignals(); r == nil || s == nil || err != nil {
		t.Errorf("gateway: receiver %v relay %v %v", r, s, err)
	}
	t.Setenv("MODELFLEET_SERVICEBUS_NAMESPACE", "sb://plant-fleet.servicebus.windows.net/")
	if _, err := signalSender(); err == nil || !strings.Contains(err.Error(), "fully qualified namespace") {
		t.Errorf("a URL for a namespace: %v", err)
	}

	// A shared key is refused unless it is the emulator's or allowed.
	const key = "Endpoint=sb://plant-fleet.servicebus.windows.net/;SharedAccessKeyName=modelfleet;SharedAccessKey=aHVudGVyMg=="
	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", key)
	if _, err := signalSender(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("namespace and connection string: %v", err)
	}
	t.Setenv("MODELFLEET_SERVICEBUS_NAMESPACE", "")
	for _, get := range []func() error{
		func() error { _, err := signalSender(); return err },
		func() error { _, _, err := gatewaySignals(); return err },
	} {
		if err := get(); err == nil || !strings.Contains(err.Error(), "MODELFLEET_SERVICEBUS_NAMESPACE") || strings.Contains(err.Error(), "aHVudGVyMg") {
			t.Errorf("shared key without opt-in: %v", err)
		}
	}
	t.Setenv("MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY", "true")
	if s, err := signalSender(); s == nil || err != nil {
		t.Errorf("shared key allowed: %v %v", s, err)
	}
	t.Setenv("MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY", "")
	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")
	if r, s, err := gatewaySignals(); r == nil || s == nil || err != nil {
		t.Errorf("emulator: %v %v %v", r, s, err)
	}

	t.Setenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING", "SharedAccessKey=hunter2-not-a-string;UseDevelopmentEmulator=true")
	_, err := signalSender()
	if err == nil || !strings.Contains(err.Error(), "connection string is invalid") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad connection string: err = %v, want it refused without showing the key", err)
	}
}
