// Package auth is who may do what at the gateway: identities (sites by
// their mTLS client certificate, people and services by OIDC bearer
// tokens), the role model and its bindings, the route table that says
// which permission every endpoint needs, the audit log, the site CA with
// its enrolment, and the control-plane keys that sign what the gateway
// vouches for. docs/security.md describes the whole.
package auth

import (
	"slices"
	"sort"
)

// A Permission is one thing an endpoint may need.
type Permission string

// Permissions. Reads first, then what each role adds.
const (
	ReleasesRead  Permission = "releases.read"
	SitesRead     Permission = "sites.read"
	PoliciesRead  Permission = "policies.read"
	MonitorRead   Permission = "monitor.read"
	QueuesRead    Permission = "queues.read"
	WorkloadsRead Permission = "workloads.read"

	ModelsRegister    Permission = "models.register"
	WorkloadsRegister Permission = "workloads.register"
	ReleasesStart     Permission = "releases.start"
	ReleasesAbortOwn  Permission = "releases.abort-own"

	PoliciesWrite   Permission = "policies.write"
	ReleasesControl Permission = "releases.control" // pause, resume, abort, rollback, skip-bake any release
	QueuesManage    Permission = "queues.manage"    // re-drive dead letters

	ReleasesApprove Permission = "releases.approve" // approve/reject a gate, within the binding's scope

	SiteSelf Permission = "site.self" // a site's own desired state, reports, baselines, artifacts, signals

	FleetSteps Permission = "fleet.steps" // the cloud worker: rollout steps, baselines, artifacts, driver sites' reports

	SitesWrite    Permission = "sites.write" // register or relabel a site
	SitesEnroll   Permission = "sites.enroll"
	SitesRevoke   Permission = "sites.revoke"
	BindingsWrite Permission = "bindings.write"
	KeysManage    Permission = "keys.manage"
)

// Roles, as docs/security.md's table lists them.
const (
	RoleViewer         = "viewer"
	RoleMLEngineer     = "ml-engineer"
	RoleReleaseManager = "release-manager"
	RoleApprover       = "approver"
	RoleSite           = "site"
	RoleAdmin          = "admin"
	RoleWorker         = "cloud-worker"
)

var reads = []Permission{ReleasesRead, SitesRead, PoliciesRead, MonitorRead, QueuesRead, WorkloadsRead}

// rolePermissions is the role model. Every person's role includes the
// reads; a site and the worker get only what they need.
var rolePermissions = map[string][]Permission{
	RoleViewer:         reads,
	RoleMLEngineer:     append(slices.Clone(reads), ModelsRegister, WorkloadsRegister, ReleasesStart, ReleasesAbortOwn),
	RoleReleaseManager: append(slices.Clone(reads), PoliciesWrite, ReleasesControl, QueuesManage),
	RoleApprover:       append(slices.Clone(reads), ReleasesApprove),
	RoleSite:           {SiteSelf},
	RoleAdmin:          append(slices.Clone(reads), SitesWrite, SitesEnroll, SitesRevoke, BindingsWrite, KeysManage, QueuesManage),
	RoleWorker:         {FleetSteps, ReleasesRead, SitesRead, PoliciesRead, WorkloadsRead, ModelsRegister}, // retraining registers challengers
}

// Roles lists every role, sorted.
func Roles() []string {
	var out []string
	for r := range rolePermissions {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// PermissionsOf lists what a role may do.
func PermissionsOf(role string) []Permission { return rolePermissions[role] }

// knownRole reports whether role is in the model.
func knownRole(role string) bool { _, ok := rolePermissions[role]; return ok }
