package modelfleet

import "fmt"

// Desired is what a site should serve: for each model, the versions and
// their traffic weights. The orchestrator writes it (a release step, a
// rollback); the site's agent pulls it over an outbound connection and
// converges, also after being offline. Revision increases on every change,
// so an agent knows whether it has caught up.
type Desired struct {
	Site     string                  `json:"site"`
	Revision int64                   `json:"revision"`
	Models   map[string]DesiredModel `json:"models"`
}

// DesiredModel is one model's desired versions at a site, and which release
// holds the site's lease on it: one release at a time changes a (site,
// model), so two releases can never interleave their steps there.
type DesiredModel struct {
	Versions []DesiredVersion `json:"versions"`
	Release  string           `json:"release,omitempty"` // lease holder, "" when free
	// Previous is what the site served before Release touched it, kept so a
	// rollback restores exactly that.
	Previous []DesiredVersion `json:"previous,omitempty"`
	// TraceParent is the W3C trace context of the change, so the site's
	// apply joins the trace that began with the registration event.
	TraceParent string `json:"traceparent,omitempty"`
}

// DesiredVersion is one version in a site's traffic split.
type DesiredVersion struct {
	Version     string   `json:"version"`
	Digest      string   `json:"digest"`
	Format      string   `json:"format"`
	ArtifactURL string   `json:"artifactUrl"`
	Features    []string `json:"features,omitempty"`
	Weight      int      `json:"weight"`
}

// ValidateSplit checks a traffic split: distinct versions, weights 0..100
// summing to 100 (or an empty split: the model is not served).
func ValidateSplit(vs []DesiredVersion) error {
	if len(vs) == 0 {
		return nil
	}
	sum := 0
	seen := map[string]bool{}
	for _, v := range vs {
		if err := ValidateName("model version", v.Version); err != nil {
			return err
		}
		if seen[v.Version] {
			return Errorf(EINVALID, "version %q appears twice in the traffic split", v.Version)
		}
		seen[v.Version] = true
		if v.Weight < 0 || v.Weight > 100 {
			return Errorf(EINVALID, "version %q weight %d is out of range 0..100", v.Version, v.Weight)
		}
		if !ValidDigest(v.Digest) {
			return Errorf(EINVALID, "version %q digest %q is invalid", v.Version, v.Digest)
		}
		sum += v.Weight
	}
	if sum != 100 {
		return Errorf(EINVALID, "traffic weights sum to %d, want 100", sum)
	}
	return nil
}

// Actual is what a site's agent reports after applying a Desired revision.
type Actual struct {
	Site     string                 `json:"site"`
	Revision int64                  `json:"revision"` // the Desired revision applied
	Models   map[string]ActualModel `json:"models"`
}

// ActualModel is one model as the site serves it, with the outcome of the
// last apply and the router's per-version figures since the version loaded.
type ActualModel struct {
	Versions []ServedVersion `json:"versions"`
	Error    string          `json:"error,omitempty"` // why the last apply failed, if it did
}

// ServedVersion is one loaded version with its weight and live figures.
type ServedVersion struct {
	Version      string  `json:"version"`
	Digest       string  `json:"digest"`
	Weight       int     `json:"weight"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	P99LatencyMs float64 `json:"p99LatencyMs,omitempty"`
}

// SplitString renders a split as "2:10,1:90" for logs and status lines.
func SplitString(vs []DesiredVersion) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s:%d", v.Version, v.Weight)
	}
	return s
}
