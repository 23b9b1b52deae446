package main

import (
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/queue"
)

// Azure mode for edge signals is configuration: with a Service Bus
// connection string in $MODELFLEET_SERVICEBUS_CONNECTION_STRING, agents send
// their signal messages to the Service Bus queue $MODELFLEET_SIGNAL_QUEUE
// (default "signals") and the gateway's drift monitor consumes it, instead
// of the gateway's embedded queue. The string holds a key: it is read from
// the environment only, never a flag, and never logged.

// serviceBus returns a client for $MODELFLEET_SERVICEBUS_CONNECTION_STRING
// and the signal queue's name, or a nil client when none is set.
func serviceBus() (*azservicebus.Client, string, error) {
	conn := os.Getenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING")
	if conn == "" {
		return nil, "", nil
	}
	c, err := queue.NewServiceBusClient(conn)
	return c, envOr("MODELFLEET_SIGNAL_QUEUE", agent.SignalQueue), err
}

// signalSender is the agent's Service Bus sender, or nil for the embedded
// queue at the gateway.
func signalSender() (queue.Sender, error) {
	c, name, err := serviceBus()
	if c == nil || err != nil {
		return nil, err
	}
	return queue.NewServiceBusSender(c, name)
}

// signalReceiver is the monitor's Service Bus receiver, or nil for the
// gateway's embedded queue.
func signalReceiver() (queue.Receiver, error) {
	c, name, err := serviceBus()
	if c == nil || err != nil {
		return nil, err
	}
	return queue.NewServiceBusReceiver(c, name)
}
