package amlarc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Azure ML's naming rules for online endpoints and deployments (the
// "Azure Machine Learning online endpoints and batch endpoints" limits in
// how-to-manage-quotas): begin with a letter, 3-32 characters, letters and
// digits with single dashes; on Kubernetes, endpoint plus deployment name
// 6-62 characters together. Our names are derived and always fit; the
// check is what makes that a tested claim rather than a hope.
var azureNameRE = regexp.MustCompile(`^[A-Za-z](?:-?[A-Za-z0-9])*$`)

func checkName(what, name string) error {
	if len(name) < 3 || len(name) > 32 || !azureNameRE.MatchString(name) {
		return fmt.Errorf("amlarc: %s name %q breaks Azure ML's rule: begin with a letter, 3-32 letters, digits and single dashes", what, name)
	}
	return nil
}

func checkNames(endpoint, deployment string) error {
	if err := checkName("endpoint", endpoint); err != nil {
		return err
	}
	if err := checkName("deployment", deployment); err != nil {
		return err
	}
	if n := len(endpoint) + len(deployment); n < 6 || n > 62 {
		return fmt.Errorf("amlarc: endpoint %q plus deployment %q is %d characters; Kubernetes endpoints allow 6-62", endpoint, deployment, n)
	}
	return nil
}

// EndpointName is the endpoint of one model at one site: readable prefixes
// of both, and a hash of the pair so truncation never makes two collide
// (endpoint names are unique per workspace and region).
func EndpointName(site, model string) string {
	h := sha256.Sum256([]byte(site + "\x00" + model))
	name := "e" + trim(slug(site), 9) + "-" + trim(slug(model), 12) + "-" + hex.EncodeToString(h[:4])
	return strings.ReplaceAll(name, "--", "-")
}

// DeploymentName is the deployment of one version: its name, and its digest
// so that re-registered bytes (never accepted by the registry, but Azure ML
// might) get a new deployment rather than a silent mismatch.
func DeploymentName(version, digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	name := "v" + trim(slug(version), 16) + "-" + trim(d, 8)
	return strings.ReplaceAll(name, "--", "-")
}

// slug keeps lowercase letters and digits, turning runs of anything else
// into one dash (Azure allows single dashes only).
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

func trim(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Trim(s, "-")
}
