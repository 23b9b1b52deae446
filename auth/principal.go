package auth

import (
	"context"
	"maps"
	"slices"
)

// Kinds of principal.
const (
	KindPerson  = "person"  // an OIDC user
	KindService = "service" // an OIDC client (client credentials, workload identity)
	KindSite    = "site"    // a site agent, by its client certificate
)

// Principal is an authenticated caller.
type Principal struct {
	Kind    string   `json:"kind"`
	Subject string   `json:"subject"`          // user name, client ID or site ID
	Site    string   `json:"site,omitempty"`   // KindSite: the site the certificate names
	Groups  []string `json:"groups,omitempty"` // from the token's groups claim
	// AppRoles are the token's roles claim (Entra app roles).
	AppRoles []string `json:"appRoles,omitempty"`
	// Grants are the roles the bindings give it, each with its scope.
	Grants []Grant `json:"grants"`
}

// Grant is one role a principal holds, within a scope: a site label
// selector (empty: everywhere). Only the approver role is scoped today.
type Grant struct {
	Role  string            `json:"role"`
	Scope map[string]string `json:"scope,omitempty"`
}

// Has reports whether a grant of p carries perm, and returns the grants
// that do (an approver's scopes are checked against the sites involved).
func (p *Principal) Has(perm Permission) []Grant {
	if p == nil {
		return nil
	}
	var out []Grant
	for _, g := range p.Grants {
		if slices.Contains(rolePermissions[g.Role], perm) {
			out = append(out, g)
		}
	}
	return out
}

// InScope reports whether every one of sites' labels is within one of
// grants' scopes (a grant without a scope covers every site).
func InScope(grants []Grant, sites []map[string]string) bool {
	for _, labels := range sites {
		ok := false
		for _, g := range grants {
			if matches(g.Scope, labels) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return len(grants) > 0
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// RoleNames lists p's roles, for audit and the signed statements.
func (p *Principal) RoleNames() []string {
	seen := map[string]bool{}
	for _, g := range p.Grants {
		seen[g.Role] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the principal the gateway authenticated for ctx's request,
// or nil.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
