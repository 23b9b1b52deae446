package fleet_test

import (
	"testing"

	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/fleet/fleettest"
)

func TestConformanceBolt(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) *fleet.Directory {
		d, err := fleet.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}
