package app

import (
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet/agent"
)

// A site pins the gateway's release keys at enrolment: what the embedded
// stack's sites verify every version with.
func TestSitesPinTheReleaseKeysAtEnrolment(t *testing.T) {
	s := newAuthzStack(t)
	pinned, err := agent.LoadTrust(filepath.Join(s.dir, site1, "release-keys.json"))
	if err != nil || pinned == nil {
		t.Fatalf("no release keys pinned at enrolment (%v)", err)
	}
	want := s.gw.ReleaseSigner().(*ReleaseKeys).Trust()
	if len(pinned.Keys) != 1 || pinned.Keys[0].ID != want.Keys[0].ID {
		t.Fatalf("pinned %+v, want the gateway's release key %s", pinned.Keys, want.Keys[0].ID)
	}
	// The key set every desired state carries verifies with them.
	if _, ok, err := pinned.Update(s.gw.sec.release.KeySet()); err != nil || ok {
		t.Fatalf("the gateway's key set: taken %v, %v; want verified and not newer than the pinned one", ok, err)
	}
}
