// Package spec is the workload contract: the manifest a workload version
// declares (inputs, features, outputs), its parsing and validation, and the
// feature-schema check of a model/workload pair. It depends on nothing but
// the root package and YAML, so the cloud side (activities, the fleet
// directory) reads manifests without linking the MQTT runtime in package
// workload.
package spec
