// Package workload runs the edge workload around a model: it subscribes to a
// site's factory data over MQTT, prepares the features the model declares
// (windows, units, scaling), calls the site's inference router and acts on
// the prediction (a decision message, a bounded local record). Bad data is
// counted and dead-lettered with its reason, never fatal.
//
// A workload is versioned like a model: a Manifest (workload.yaml) says what
// it consumes and produces, and a Program pairs the manifest with the
// customer's feature preparation code. Compatible checks a workload against
// a model's feature schema before a release pairs them. The Supervisor runs
// one workload at a site: start, health, restart with backoff, and version
// swaps that lose no message (one persistent MQTT session, QoS 1, acknowledged
// only once the decision is published). See docs/workloads.md.
package workload
