package app

import (
	"net/http"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/ui"
)

// gatewayRules is the gateway's route table: what every endpoint needs.
// A request no rule covers is refused, so an endpoint added without a
// rule here is closed; TestAuthorisationMatrix walks this table.
func gatewayRules() []auth.Rule {
	p := func(perms ...auth.Permission) []auth.Permission { return perms }
	// The dashboard's pages (/ui/) are in ui.Rules.
	return append([]auth.Rule{
		{Pattern: "GET /healthz", Public: true},
		{Pattern: "GET /readyz", Public: true},
		{Pattern: "GET /metrics", Public: true},
		// Event Grid deliveries authenticate themselves (keys or Entra
		// tokens, events.Authenticate).
		{Pattern: "/api/events", Public: true},
		{Pattern: "GET /oidc/", Public: true},
		// Enrolment: the join token is the credential.
		{Pattern: "GET /api/enroll/ca", Public: true},
		{Pattern: "POST /api/enroll", Public: true},

		{Pattern: "GET /api/whoami", Any: p(auth.ReleasesRead, auth.SiteSelf, auth.FleetSteps)},

		{Pattern: "GET /api/sites", Any: p(auth.SitesRead)},
		{Pattern: "GET /api/sites/{id}", Any: p(auth.SitesRead, auth.SiteSelf), SiteParam: "id"},
		{Pattern: "PUT /api/sites/{id}", Any: p(auth.SitesWrite)},
		{Pattern: "GET /api/sites/{id}/desired", Any: p(auth.SitesRead, auth.SiteSelf), SiteParam: "id"},
		// The worker reports for the sites its drivers reconcile (amlarc,
		// gitops), which run no agent.
		{Pattern: "PUT /api/sites/{id}/actual", Any: p(auth.SiteSelf, auth.FleetSteps), SiteParam: "id"},
		{Pattern: "POST /api/sites/{id}/renew", Any: p(auth.SiteSelf), SiteParam: "id"},
		{Pattern: "POST /api/sites/{id}/enroll", Any: p(auth.SitesEnroll)},
		{Pattern: "POST /api/sites/{id}/revoke", Any: p(auth.SitesRevoke)},

		{Pattern: "POST /api/rollouts/step", Any: p(auth.FleetSteps)},
		{Pattern: "POST /api/rollouts/rollback", Any: p(auth.FleetSteps)},
		{Pattern: "POST /api/rollouts/finish", Any: p(auth.FleetSteps)},
		{Pattern: "POST /api/rollouts/progress", Any: p(auth.FleetSteps)},

		{Pattern: "GET /api/policies/{model}", Any: p(auth.PoliciesRead)},
		{Pattern: "PUT /api/policies/{model}", Any: p(auth.PoliciesWrite)},

		// Router API key hashes in sites' desired state (admin, release
		// manager); the hashes are read with the desired state.
		{Pattern: "PUT /api/apikeys", Any: p(auth.KeysManage, auth.PoliciesWrite)},

		{Pattern: "GET /api/baselines/{model}/{version}", Any: p(auth.ReleasesRead, auth.SiteSelf)},
		{Pattern: "PUT /api/baselines/{model}/{version}", Any: p(auth.FleetSteps)},
		{Pattern: "GET /api/artifacts/{digest}", Any: p(auth.SiteSelf, auth.FleetSteps, auth.ReleasesRead)},
		{Pattern: "PUT /api/artifacts/{digest}", Any: p(auth.FleetSteps)},

		{Pattern: "GET /api/workloads", Any: p(auth.WorkloadsRead, auth.SiteSelf)},
		{Pattern: "GET /api/workloads/{name}/{version}", Any: p(auth.WorkloadsRead, auth.SiteSelf)},
		{Pattern: "POST /api/workloads", Any: p(auth.WorkloadsRegister)},
		{Pattern: "PUT /api/workloads/modules/{digest}", Any: p(auth.WorkloadsRegister)},
		{Pattern: "POST /api/workloads/pairings", Any: p(auth.FleetSteps, auth.WorkloadsRegister)},

		{Pattern: "GET /api/queues/{name}/stats", Any: p(auth.QueuesRead)},
		{Pattern: "GET /api/queues/{name}/messages", Any: p(auth.QueuesRead)},
		// Sites send their signals; the gateway stamps each message with
		// the site its certificate names (signalStamp).
		{Pattern: "POST /api/queues/{name}/messages", Any: p(auth.SiteSelf)},
		{Pattern: "POST /api/queues/{name}/redrive", Any: p(auth.QueuesManage)},

		{Pattern: "GET /api/monitor", Any: p(auth.MonitorRead)},

		// Release controls: the handler checks the action against the
		// caller's roles (and an approver's scope), then signs.
		{Pattern: "POST /api/workload-releases", Any: p(auth.ReleasesStart)},
		{Pattern: "POST /api/controls", Any: p(auth.ReleasesApprove, auth.ReleasesControl, auth.ReleasesAbortOwn)},
	}, ui.Rules()...)
}

// registryRules guard the embedded model registry (a stand-in for Azure
// ML's, which has its own access control) when authentication is on.
// Registering a model starts its release, so it needs models.register; the
// registry records the caller as the version's owner (registeredBy).
func registryRules() []auth.Rule {
	p := func(perms ...auth.Permission) []auth.Permission { return perms }
	return []auth.Rule{
		{Pattern: "GET /healthz", Public: true},
		{Pattern: "GET /metrics", Public: true},
		{Pattern: "POST /api/models", Any: p(auth.ModelsRegister)},
		{Pattern: "GET /api/models", Any: p(auth.ReleasesRead, auth.FleetSteps)},
		{Pattern: "GET /api/models/{name}/versions/{version}", Any: p(auth.ReleasesRead, auth.FleetSteps)},
		{Pattern: "GET /api/blobs/{digest}", Any: p(auth.FleetSteps)},
	}
}

// registeredBy is the registry's Subject: the caller the guard verified.
func registeredBy(r *http.Request) string {
	if p := auth.From(r.Context()); p != nil {
		return p.Subject
	}
	return ""
}
