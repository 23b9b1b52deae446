package app

import (
	"net/http"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// apiKeysHandler answers PUT /api/apikeys: an admin or a release manager
// sets the hashes of one scope's router API keys (a model's, or
// site-wide) in the desired state of the sites listed, selected by
// labels, or all (modelfleet.APIKeysRequest). Only hashes are accepted:
// the CLI hashes the keys, which never reach the control plane.
func apiKeysHandler(dir *fleet.Directory) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.APIKeysRequest
		if err := httpjson.DecodeJSON(w, r, modelfleet.MaxAPIKeysRequestBody, &req); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		res, err := dir.SetAPIKeys(req)
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, res)
	}
}
