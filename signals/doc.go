// Package signals is the edge half of modelfleet's monitoring loop: what an
// edge agent measures about each model version it serves, and how that
// reaches the cloud.
//
//   - Message (message.go) is the versioned JSON document one site sends per
//     model version and window: counts, a latency histogram, per-feature and
//     prediction histograms over the fixed bins of the model's training
//     Baseline (baseline.go), and data-quality counts. docs/signals.md is its
//     contract; Decode (decode.go) is the only way the cloud reads one.
//   - Aggregator (aggregator.go) is fed by the router for every scored
//     request and closes one Message per model version every interval.
//   - Buffer (buffer.go) keeps closed messages on local disk (bbolt) until
//     they are sent, bounded, dropping the oldest when full.
//   - Sender (sender.go) drains the buffer, in order, into a queue.Sender:
//     the gateway's embedded queue over HTTP, or Service Bus in Azure mode.
//   - Collector (collector.go) exposes the same figures in Prometheus format
//     on the agent's /metrics, so plant staff see them with no cloud link.
//
// The drift metrics and the cloud monitor that reads these messages live in
// package drift.
package signals
