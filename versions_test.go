package modelfleet_test

import (
	"slices"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func TestCompareVersions(t *testing.T) {
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"2", "10", -1}, {"10", "2", 1}, {"1", "1", 0}, {"0", "0", 0},
		{"007", "7", -1}, {"7", "007", 1}, {"000", "0", 1}, {"0", "000", -1},
		{"99999999999999999999999", "100000000000000000000000", -1},
		{"9", "1a", -1}, {"1a", "9", 1}, {"a", "b", -1}, {"v2", "v10", 1},
		{"", "1", 1}, {"1", "", -1}, {"", "", 0}, {"", "a", -1},
	} {
		if got := modelfleet.CompareVersions(tt.a, tt.b); sign(got) != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want sign of %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// Sorting with it is deterministic whatever the input order: 0 only for
// equal strings.
func TestCompareVersionsSorts(t *testing.T) {
	want := []string{"0", "01", "1", "2", "010", "10", "99999999999999999999", "", "1.0", "a", "v10", "v2"}
	in := slices.Clone(want)
	slices.Reverse(in)
	slices.SortFunc(in, modelfleet.CompareVersions)
	if !slices.Equal(in, want) {
		t.Errorf("sorted %q, want %q", in, want)
	}
}
