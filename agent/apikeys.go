package agent

import (
	"github.com/modelfleet/modelfleet"
)

// applyAPIKeys makes the router ask for the API keys of the desired state.
// A site that pinned release keys takes them only with a statement a key it
// trusts signed for this site, for exactly this set, and not older than the
// set in force (modelfleet.APIKeysStatement): whoever can write its desired
// state cannot replace its keys. A set refused, or one that does not
// validate, leaves the keys in force; the reason is logged once and
// reported (Actual.APIKeysError). A site without pinned keys takes the set
// as it comes.
func (s *Site) applyAPIKeys(ds modelfleet.Desired) {
	err := s.takeAPIKeys(ds)
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	if reason != "" && reason != s.apiKeysError {
		s.log.Error("api keys of the desired state not applied; keeping the keys in force", "revision", ds.Revision, "error", err)
	}
	s.apiKeysError = reason
}

func (s *Site) takeAPIKeys(ds modelfleet.Desired) error {
	trust := s.Edge.Trust()
	if trust == nil {
		return s.Edge.SetDesiredKeys(ds.APIKeys)
	}
	inForce, signedAt := s.Edge.DesiredKeys()
	if ds.APIKeysStatement == nil && ds.APIKeys.Empty() && inForce.Empty() {
		return nil // the control plane sets none, and none it set is in force
	}
	st, err := trust.VerifyAPIKeys(ds.APIKeysStatement, s.cfg.SiteID)
	if err != nil {
		return err
	}
	switch {
	case !st.Vouches(ds.APIKeys):
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "api keys of the desired state: the signed statement is for another key set")
	case st.SignedAt.Before(signedAt):
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "api keys of the desired state: signed at %s, before the set in force (%s)", st.SignedAt.Format("2006-01-02T15:04:05Z07:00"), signedAt.Format("2006-01-02T15:04:05Z07:00"))
	}
	return s.Edge.SetSignedDesiredKeys(ds.APIKeys, st.SignedAt)
}
