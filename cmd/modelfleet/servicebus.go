package main

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/queue"
)

// Azure mode for edge signals is configuration (README, Azure mode):
//
//   - $MODELFLEET_SERVICEBUS_NAMESPACE, the fully qualified namespace
//     (plant-fleet.servicebus.windows.net): the process authenticates with
//     Entra ID (azidentity's DefaultAzureCredential: workload identity,
//     managed identity, or `az login` on a workstation), so no key exists
//     and the namespace keeps disableLocalAuth (deploy/bicep).
//   - $MODELFLEET_SERVICEBUS_CONNECTION_STRING, a shared key: only for the
//     Service Bus emulator (UseDevelopmentEmulator=true), or with
//     $MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY=true for a namespace that
//     has local auth on. It is read from the environment only, never a
//     flag, and never logged.
//   - $MODELFLEET_SIGNAL_QUEUE names the queue (default "signals").
//
// The gateway so configured consumes the queue (its drift monitor) and
// relays to it what sites send it over mTLS, so sites need no Service Bus
// credential. An agent so configured sends to Service Bus itself, with
// its own identity (one per site, "Azure Service Bus Data Sender" on the
// queue); either way each message is signed with the site's key.

// newServiceBusCredential is the Entra credential a namespace is reached
// with.
var newServiceBusCredential = func() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

// serviceBus returns a client for the namespace the environment names and
// the signal queue's name, or a nil client when it names none.
func serviceBus() (*azservicebus.Client, string, error) {
	ns := os.Getenv("MODELFLEET_SERVICEBUS_NAMESPACE")
	conn := os.Getenv("MODELFLEET_SERVICEBUS_CONNECTION_STRING")
	name := envOr("MODELFLEET_SIGNAL_QUEUE", agent.SignalQueue)
	switch {
	case ns != "" && conn != "":
		return nil, "", errors.New("service bus: set $MODELFLEET_SERVICEBUS_NAMESPACE (Entra ID) or $MODELFLEET_SERVICEBUS_CONNECTION_STRING (a shared key, for the emulator), not both")
	case ns != "":
		cred, err := newServiceBusCredential()
		if err != nil {
			return nil, "", err
		}
		c, err := queue.NewServiceBusNamespaceClient(ns, cred)
		return c, name, err
	case conn != "":
		if !emulator(conn) {
			allow, _ := strconv.ParseBool(os.Getenv("MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY"))
			if !allow {
				return nil, "", errors.New("service bus: $MODELFLEET_SERVICEBUS_CONNECTION_STRING holds a shared key, which a namespace with disableLocalAuth (deploy/bicep) refuses and every holder could use to send as any site: set $MODELFLEET_SERVICEBUS_NAMESPACE to authenticate with Entra ID instead; shared keys are for the emulator (UseDevelopmentEmulator=true), or set $MODELFLEET_SERVICEBUS_ALLOW_SHARED_KEY=true")
			}
		}
		c, err := queue.NewServiceBusClient(conn)
		return c, name, err
	}
	return nil, "", nil
}

// emulator reports whether a connection string is the Service Bus
// emulator's (UseDevelopmentEmulator=true).
func emulator(conn string) bool {
	for _, kv := range strings.Split(conn, ";") {
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(strings.TrimSpace(k), "UseDevelopmentEmulator") {
			b, _ := strconv.ParseBool(strings.TrimSpace(v))
			return b
		}
	}
	return false
}

// signalSender is the agent's Service Bus sender, or nil: the agent then
// sends through the gateway.
func signalSender() (queue.Sender, error) {
	c, name, err := serviceBus()
	if c == nil || err != nil {
		return nil, err
	}
	return queue.NewServiceBusSender(c, name)
}

// gatewaySignals is the gateway's Service Bus receiver (for the drift
// monitor) and sender (the relay of the sites' messages), or nils for the
// gateway's embedded queue.
func gatewaySignals() (queue.Receiver, queue.Sender, error) {
	c, name, err := serviceBus()
	if c == nil || err != nil {
		return nil, nil, err
	}
	r, err := queue.NewServiceBusReceiver(c, name)
	if err != nil {
		return nil, nil, err
	}
	s, err := queue.NewServiceBusSender(c, name)
	if err != nil {
		return nil, nil, err
	}
	return r, s, nil
}
