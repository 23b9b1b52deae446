package main

import (
	"os"

	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/queue"
)

// Azure mode for edge signals is configuration: with a Service Bus
// connection string in $MODELFLEET_SERVICEBUS_CONNECTION_STRING, agents send
// their signal messages to the Service Bus queue $MODELFLEET_SIGNAL_QUEUE
// (default "signals") and the gateway's drift monitor consumes it, instead
// of the gateway's embedded queue. The string holds a key: it is read from
// the environment only, never a flag, and never logged.

func serviceBusQueue() (connection, name string) {
	return os.Getenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING"), envOr("MODELFLEET_SIGNAL_QUEUE", app.SignalQueue)
}

// signalSender is the agent's Service Bus sender, or nil for the embedded
// queue at the gateway.
func signalSender() (queue.Sender, error) {
	conn, name := serviceBusQueue()
	if conn == "" {
		return nil, nil
	}
	c, err := queue.NewServiceBusClient(conn)
	if err != nil {
		return nil, err
	}
	return queue.NewServiceBusSender(c, name)
}

// signalReceiver is the monitor's Service Bus receiver, or nil for the
// gateway's embedded queue.
func signalReceiver() (queue.Receiver, error) {
	conn, name := serviceBusQueue()
	if conn == "" {
		return nil, nil
	}
	c, err := queue.NewServiceBusClient(conn)
	if err != nil {
		return nil, err
	}
	return queue.NewServiceBusReceiver(c, name)
}
