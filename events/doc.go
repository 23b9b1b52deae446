// Package events receives Azure Machine Learning system events from Azure
// Event Grid, pushed to a webhook (NewHandler, wrapped in Authenticate) or
// pulled from an Event Grid namespace (Puller), and turns them into workflow
// starts and signals through a modelfleet.Orchestrator (TemporalDispatcher;
// package orchestrator talks to Temporal): a release per registered
// model version, a coalesced retraining per model on drift, run statuses to
// the retraining that waits for them. docs/events.md is the contract.
//
// # Delivery contract
//
// Event Grid delivers at least once: it retries a delivery it did not see
// acknowledged (any answer but 2xx, 400, 401, 403 or 413, or no answer within
// 30 seconds) for up to 24 hours, and it may deliver the same event twice
// even after an acknowledgement. So the handler:
//
//   - acknowledges (200) a delivery only after every event in it was
//     dispatched, and a Dispatcher returns only once its effect is durable
//     (for the TemporalDispatcher: Temporal accepted the workflow start);
//   - answers 503 when any event failed for a reason that may pass (Temporal
//     unreachable, a timeout), so Event Grid retries the whole delivery;
//   - answers 400 for an event that can never succeed (malformed envelope,
//     ModelRegistered data without a model name, ...), which Event Grid does
//     not retry but dead-letters, if the subscription has a dead-letter
//     destination;
//   - relies on idempotent effects to make retries and duplicates harmless:
//     a release's workflow ID is derived from the model reference
//     (modelfleet.ReleaseWorkflowID), and Temporal refuses a second workflow
//     with the same ID, whether the first is still running or has closed;
//     a retraining trigger or run status goes to the model's one retraining
//     workflow, which drops event IDs it has seen.
//
// The Puller keeps the same contract with a namespace subscription:
// acknowledge after success, release with a delay on a transient failure,
// reject (dead-letter) an invalid event, renew locks while dispatching.
//
// Events of types the dispatcher does not act on are acknowledged, not
// rejected: a rejection would only make Event Grid retry or dead-letter them.
//
// # Schemas and handshakes
//
// Decode accepts the Event Grid schema (a JSON array of events) and the
// CloudEvents 1.0 JSON format, single or batched. The handler answers Event
// Grid's subscription validation event (Event Grid schema) and the
// CloudEvents webhook abuse-protection handshake (an OPTIONS request) used by
// CloudEvents subscriptions.
package events
