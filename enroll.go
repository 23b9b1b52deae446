package modelfleet

import "time"

// EnrollRequest is what an agent sends to enrol (POST /api/enroll) or
// renew (POST /api/sites/{id}/renew): a join token (enrol only) and a
// certificate request for the key it generated, which never leaves it.
type EnrollRequest struct {
	Token string `json:"token,omitempty"`
	CSR   string `json:"csr"` // PEM
}

// EnrollResponse is the site's identity: its certificate, the CA bundle
// to verify the gateway with, and the control plane's signing keys.
type EnrollResponse struct {
	Site        string            `json:"site"`
	Certificate string            `json:"certificate"` // PEM
	CABundle    string            `json:"caBundle"`    // PEM
	NotAfter    time.Time         `json:"notAfter"`
	Labels      map[string]string `json:"labels,omitempty"`
	ControlKeys []TrustedKey      `json:"controlKeys"`
	// ReleaseKeys are the keys the site pins to verify release statements
	// with (and the revoked ones): a site loads only what they signed.
	ReleaseKeys *Trust `json:"releaseKeys,omitempty"`
}
