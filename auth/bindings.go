package auth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// BindingsAPIVersion is the version of the role bindings file.
const BindingsAPIVersion = "modelfleet.dev/v1"

// MaxBindingsSize bounds a bindings file.
const MaxBindingsSize = 1 << 20

// Bindings is the role bindings file (a ConfigMap in the chart):
//
//	apiVersion: modelfleet.dev/v1
//	kind: RoleBindings
//	bindings:
//	  - role: approver
//	    groups: [plant-a-shift-leads]
//	    scope: {plant: plant-a}
//	  - role: release-manager
//	    subjects: [ana@example.com]
//	  - role: cloud-worker
//	    appRoles: [Modelfleet.Worker]
type Bindings struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Bindings   []Binding `yaml:"bindings"`
}

// Binding gives Role to every subject named, every member of a group and
// every token carrying one of the app roles.
type Binding struct {
	Role     string            `yaml:"role"`
	Subjects []string          `yaml:"subjects,omitempty"`
	Groups   []string          `yaml:"groups,omitempty"`
	AppRoles []string          `yaml:"appRoles,omitempty"`
	Scope    map[string]string `yaml:"scope,omitempty"`
}

// ParseBindings reads a bindings file strictly: unknown keys, unknown
// roles, bindings that bind nobody and scopes on unscoped roles are
// errors, so a typo never silently grants or drops access.
func ParseBindings(b []byte) (*Bindings, error) {
	if len(b) > MaxBindingsSize {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "role bindings: %d bytes, at most %d", len(b), MaxBindingsSize)
	}
	var out Bindings
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "role bindings: %v", err)
	}
	if out.APIVersion != BindingsAPIVersion || out.Kind != "RoleBindings" {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "role bindings: want apiVersion %s and kind RoleBindings, got %q and %q", BindingsAPIVersion, out.APIVersion, out.Kind)
	}
	for i, bd := range out.Bindings {
		where := fmt.Sprintf("role bindings: binding %d (%s)", i+1, bd.Role)
		switch {
		case !knownRole(bd.Role):
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: unknown role %q: use one of %s", where, bd.Role, strings.Join(Roles(), ", "))
		case len(bd.Subjects)+len(bd.Groups)+len(bd.AppRoles) == 0:
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: binds nobody: name subjects, groups or appRoles", where)
		case len(bd.Scope) > 0 && bd.Role != RoleApprover:
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: only the approver role takes a scope", where)
		case bd.Role == RoleSite:
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: the site role comes with an enrolled site's certificate, never from a binding", where)
		}
		for _, s := range slices.Concat(bd.Subjects, bd.Groups, bd.AppRoles) {
			if strings.TrimSpace(s) == "" || len(s) > 256 {
				return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: empty or over-long name %q", where, s)
			}
		}
		for k, v := range bd.Scope {
			if err := modelfleet.ValidateName("scope label", k); err != nil || v == "" {
				return nil, modelfleet.Errorf(modelfleet.EINVALID, "%s: scope %s=%q: want label=value", where, k, v)
			}
		}
	}
	return &out, nil
}

// LoadBindings reads a bindings file.
func LoadBindings(path string) (*Bindings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("role bindings %s: no such file (see docs/security.md for its format)", path)
		}
		return nil, err
	}
	bd, err := ParseBindings(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bd, nil
}

// Grants returns what the bindings give a person or service.
func (b *Bindings) Grants(p *Principal) []Grant {
	if b == nil || p == nil {
		return nil
	}
	var out []Grant
	for _, bd := range b.Bindings {
		if slices.Contains(bd.Subjects, p.Subject) || intersects(bd.Groups, p.Groups) || intersects(bd.AppRoles, p.AppRoles) {
			out = append(out, Grant{Role: bd.Role, Scope: bd.Scope})
		}
	}
	return out
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
