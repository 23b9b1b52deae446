package drift

import (
	"encoding/json"
	"math"
)

// MarshalJSON writes the metrics with non-finite values (a chi-squared
// statistic is +Inf when the window fills a bin the reference never saw)
// as null, since JSON has no infinity.
func (m Metrics) MarshalJSON() ([]byte, error) {
	finite := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		NormalizedWasserstein *float64 `json:"normalizedWasserstein"`
		JensenShannon         *float64 `json:"jensenShannon"`
		PSI                   *float64 `json:"psi"`
		ChiSquared            *float64 `json:"chiSquared"`
		ChiSquaredP           *float64 `json:"chiSquaredP"`
	}{finite(m.NormalizedWasserstein), finite(m.JensenShannon), finite(m.PSI), finite(m.ChiSquared), finite(m.ChiSquaredP)})
}

// UnmarshalJSON reads what MarshalJSON writes (null as 0).
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var p struct {
		NormalizedWasserstein, JensenShannon, PSI, ChiSquared, ChiSquaredP *float64
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	get := func(v *float64) float64 {
		if v == nil {
			return 0
		}
		return *v
	}
	*m = Metrics{get(p.NormalizedWasserstein), get(p.JensenShannon), get(p.PSI), get(p.ChiSquared), get(p.ChiSquaredP)}
	return nil
}
