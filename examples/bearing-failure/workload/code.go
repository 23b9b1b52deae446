package workload

import wl "github.com/modelfleet/modelfleet/workload"

// Code is this package's feature preparation as the site's agent links it:
// a release brings a manifest version (workload.yaml, possibly retuned —
// window, ranges, threshold, topics) and the agent pairs it with this code.
func Code() wl.Code {
	return wl.Code{Name: Name, Features: Features(), Inputs: Inputs(), NewPreparer: newMachine}
}

// Name is the workload's name in its manifest.
const Name = "bearing-failure-line"
