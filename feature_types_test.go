package modelfleet

import "testing"

func TestFeatureTypeTakes(t *testing.T) {
	for _, c := range []struct {
		model, produced string
		want            bool
	}{
		{FeatureDouble, FeatureLong, true},
		{FeatureFloat, FeatureDouble, true},
		{FeatureDouble, FeatureBoolean, false},
		{FeatureLong, FeatureInteger, true},
		{FeatureInteger, FeatureLong, true},
		{FeatureLong, FeatureDouble, false},
		{FeatureLong, FeatureBoolean, false},
		{FeatureBoolean, FeatureBoolean, true},
		{FeatureBoolean, FeatureInteger, false},
		{FeatureLong, "", true},
		{"", FeatureBoolean, true},
	} {
		if got := FeatureTypeTakes(c.model, c.produced); got != c.want {
			t.Errorf("FeatureTypeTakes(%q, %q) = %v, want %v", c.model, c.produced, got, c.want)
		}
	}
}
