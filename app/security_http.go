package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// JoinTokenRequest is POST /api/sites/{id}/enroll's body.
type JoinTokenRequest struct {
	Labels map[string]string `json:"labels,omitempty"`
	TTL    string            `json:"ttl,omitempty"` // default 1h, at most 168h
}

// JoinTokenResponse carries the one-time token.
type JoinTokenResponse struct {
	Site    string    `json:"site"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// RevokeResponse says how many certificates were revoked.
type RevokeResponse struct {
	Site    string `json:"site"`
	Revoked int    `json:"revoked"`
}

func (s *security) routes(mux *http.ServeMux, dir *fleet.Directory, o modelfleet.Orchestrator) {
	mux.HandleFunc("POST /api/workload-releases", func(w http.ResponseWriter, r *http.Request) {
		var in modelfleet.WorkloadReleaseInput
		if err := httpjson.DecodeJSON(w, r, 256<<10, &in); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		if len(in.Resume) > 0 || len(in.ControlKeys) > 0 {
			httpjson.WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "resume and controlKeys are the release's own to set"))
			return
		}
		// Who asked is who the token says, whatever the body claims.
		in.By = auth.From(r.Context()).Subject
		run, err := o.StartWorkloadRelease(r.Context(), in)
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.Write(w, http.StatusCreated, run)
	})
	mux.HandleFunc("GET /api/enroll/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.ca.Bundle)
	})
	mux.HandleFunc("POST /api/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.EnrollRequest
		if err := httpjson.DecodeJSON(w, r, 32<<10, &req); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		t, err := auth.ParseJoinToken(req.Token)
		if err != nil {
			s.guard.Audit(nil, "enroll", "", false, err.Error())
			httpjson.WriteError(w, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "%v", err))
			return
		}
		// Check the request before spending the token on it.
		if _, err := auth.ParseCSR([]byte(req.CSR)); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		labels, err := s.enrol.Redeem(r.Context(), t)
		if err != nil {
			s.guard.Audit(&auth.Principal{Subject: t.Site}, "enroll", t.Site, false, err.Error())
			httpjson.WriteError(w, err)
			return
		}
		if _, err := dir.Get(t.Site); modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			if _, err := dir.Put(modelfleet.Site{ID: t.Site, TaskQueue: modelfleet.SiteTaskQueue(t.Site), Labels: labels}); err != nil {
				httpjson.WriteError(w, err)
				return
			}
		}
		s.issue(w, r, t.Site, req.CSR, labels, "enroll", "")
	})
	mux.HandleFunc("POST /api/sites/{id}/renew", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.EnrollRequest
		if err := httpjson.DecodeJSON(w, r, 32<<10, &req); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		// The guard named the site from its certificate: the one renewed.
		from := ""
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			from = r.TLS.VerifiedChains[0][0].SerialNumber.Text(16)
		}
		s.issue(w, r, r.PathValue("id"), req.CSR, nil, "renew", from)
	})
	mux.HandleFunc("POST /api/sites/{id}/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req JoinTokenRequest
		if err := httpjson.DecodeJSON(w, r, 16<<10, &req); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		ttl := time.Duration(0)
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil {
				httpjson.WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "ttl %q: %v", req.TTL, err))
				return
			}
			ttl = d
		}
		for k, v := range req.Labels {
			if err := modelfleet.ValidateName("label", k); err != nil || len(v) > 255 {
				httpjson.WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "label %s=%q: want a name and a value of at most 255 characters", k, v))
				return
			}
		}
		p := auth.From(r.Context())
		t, exp, err := s.enrol.NewJoinToken(r.Context(), r.PathValue("id"), req.Labels, ttl, p.Subject, s.ca.Fingerprint())
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.Write(w, http.StatusCreated, JoinTokenResponse{Site: t.Site, Token: t.String(), Expires: exp})
	})
	mux.HandleFunc("POST /api/sites/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		site := r.PathValue("id")
		if err := modelfleet.ValidateName("site id", site); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		n, err := s.enrol.Revoke(r.Context(), site)
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, RevokeResponse{Site: site, Revoked: n})
	})
	mux.HandleFunc("GET /api/whoami", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, auth.From(r.Context()))
	})
	mux.HandleFunc("POST /api/controls", func(w http.ResponseWriter, r *http.Request) {
		var req ControlRequest
		if err := httpjson.DecodeJSON(w, r, 16<<10, &req); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		res, err := s.sendControl(r.Context(), auth.From(r.Context()), req, dir, o)
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, res)
	})
	if s.issuer != nil {
		mux.Handle("GET /oidc/", http.StripPrefix("/oidc", s.issuer.Handler()))
	}
}

// issue issues site a certificate for csr: at enrolment (renewedFrom
// empty) or renewing the certificate renewedFrom, which the enrolments
// check is not revoked as they record the new one.
func (s *security) issue(w http.ResponseWriter, r *http.Request, site, csr string, labels map[string]string, how, renewedFrom string) {
	certPEM, cert, err := s.ca.IssueSite(site, []byte(csr), s.lifetime)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if err := s.enrol.Issued(r.Context(), site, cert.SerialNumber.Text(16), renewedFrom); err != nil {
		if modelfleet.ErrorCode(err) == modelfleet.EUNAUTHORIZED { // a revoked certificate's renewal
			s.guard.Audit(&auth.Principal{Subject: site}, how, site, false, err.Error())
		}
		httpjson.WriteError(w, err)
		return
	}
	s.guard.Audit(&auth.Principal{Subject: site}, how, site, true, "certificate "+cert.SerialNumber.Text(16)+" until "+cert.NotAfter.Format(time.RFC3339))
	httpjson.Write(w, http.StatusOK, modelfleet.EnrollResponse{Site: site, Certificate: string(certPEM), CABundle: string(s.ca.Bundle), NotAfter: cert.NotAfter, Labels: labels, ControlKeys: s.ControlKeys(), ReleaseKeys: s.release.Trust()})
}

// ControlRequest is POST /api/controls's body: a control for a release.
type ControlRequest struct {
	Release string `json:"release"` // workflow ID, e.g. release/bearing-failure/2
	Action  string `json:"action"`  // approve, reject, pause, resume, abort, rollback, skip-bake
	Reason  string `json:"reason,omitempty"`
	// PrintSignal returns the signed signal payload instead of sending
	// it, for an operator to paste into the Temporal UI or `temporal
	// workflow signal` (the release accepts it once).
	PrintSignal bool `json:"printSignal,omitempty"`
}

// ControlResponse says what was signed and whether it was sent.
type ControlResponse struct {
	Release string             `json:"release"`
	Action  string             `json:"action"`
	By      string             `json:"by"`
	Role    string             `json:"role"`
	Gate    string             `json:"gate,omitempty"`
	Sent    bool               `json:"sent"`
	Signal  modelfleet.Control `json:"signal"`
}

// ControlTTL is how long a signed control statement is valid: long
// enough to paste a printed one into the Temporal UI.
const ControlTTL = 15 * time.Minute

// control authorises a control for the caller and signs it.
func (s *security) control(ctx context.Context, p *auth.Principal, req ControlRequest, dir *fleet.Directory, status func(context.Context, string) (modelfleet.ReleaseStatus, error)) (ControlResponse, error) {
	if !slices.Contains(modelfleet.Signals, req.Action) {
		return ControlResponse{}, modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release control: use one of %s", req.Action, strings.Join(modelfleet.Signals, ", "))
	}
	if !strings.HasPrefix(req.Release, "release/") || len(req.Release) > 600 {
		return ControlResponse{}, modelfleet.Errorf(modelfleet.EINVALID, "release %q: want a release workflow ID (release/<model>/<version>)", req.Release)
	}
	if len(req.Reason) > 1024 {
		return ControlResponse{}, modelfleet.Errorf(modelfleet.EINVALID, "reason: at most 1024 characters")
	}
	st, err := status(ctx, req.Release)
	if err != nil {
		return ControlResponse{}, err
	}
	var role, gate string
	deny := func(why string) (ControlResponse, error) {
		s.guard.Audit(p, req.Action, req.Release, false, why)
		return ControlResponse{}, modelfleet.Errorf(modelfleet.EFORBIDDEN, "%s", why)
	}
	switch req.Action {
	case modelfleet.SignalApprove, modelfleet.SignalReject:
		grants := p.Has(auth.ReleasesApprove)
		if len(grants) == 0 {
			return deny(fmt.Sprintf("%s of %s needs permission %s (role approver); %s holds %s", req.Action, req.Release, auth.ReleasesApprove, p.Subject, strings.Join(p.RoleNames(), ", ")))
		}
		if st.Gate == nil {
			return ControlResponse{}, modelfleet.Errorf(modelfleet.ECONFLICT, "%s is not waiting at a gate (state %s): an %s now would not count", req.Release, st.State, req.Action)
		}
		gate = st.Gate.After
		sites, err := nextWaveLabels(st, dir)
		if err != nil {
			return ControlResponse{}, err
		}
		if gate == modelfleet.ChampionGateName || len(sites) == 0 {
			// Nobody knows yet which sites follow: only a fleet-wide
			// approver may answer.
			grants = slices.DeleteFunc(slices.Clone(grants), func(g auth.Grant) bool { return len(g.Scope) > 0 })
			if len(grants) == 0 {
				return deny(fmt.Sprintf("the %s gate of %s needs an approver for the whole fleet; %s's approval is scoped", gate, req.Release, p.Subject))
			}
		} else if !auth.InScope(grants, sites) {
			return deny(fmt.Sprintf("%s may approve only for sites in scope, and the wave after %s of %s has sites outside it", p.Subject, gate, req.Release))
		}
		if st.Gate.SelfApprovalForbidden && st.Owner != "" && st.Owner == p.Subject {
			return deny(fmt.Sprintf("%s owns %s (registered the version or started it), and its policy forbids self-approval", p.Subject, req.Release))
		}
		if st.Gate.Distinct && slices.Contains(st.Gate.Approvals, p.Subject) {
			return ControlResponse{}, modelfleet.Errorf(modelfleet.ECONFLICT, "%s already approved the %s gate of %s; it needs %d distinct approvers", p.Subject, gate, req.Release, max(st.Gate.Needed, 1))
		}
		role = auth.RoleApprover
	default:
		switch {
		case len(p.Has(auth.ReleasesControl)) > 0:
			role = auth.RoleReleaseManager
		case req.Action == modelfleet.SignalAbort && len(p.Has(auth.ReleasesAbortOwn)) > 0 && st.Owner != "" && st.Owner == p.Subject:
			role = modelfleet.RoleOwner
		case req.Action == modelfleet.SignalAbort && len(p.Has(auth.ReleasesAbortOwn)) > 0:
			return deny(fmt.Sprintf("%s may abort only releases they own, and %s is owned by %s; aborting it needs permission %s (role release-manager)", p.Subject, req.Release, ownerOrNobody(st.Owner), auth.ReleasesControl))
		default:
			return deny(fmt.Sprintf("%s of %s needs permission %s (role release-manager); %s holds %s", req.Action, req.Release, auth.ReleasesControl, p.Subject, strings.Join(p.RoleNames(), ", ")))
		}
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return ControlResponse{}, err
	}
	now := time.Now().UTC()
	ctl, err := s.sign(modelfleet.ControlStatement{
		Subject: p.Subject, Role: role, Action: req.Action, Release: req.Release, Gate: gate, Reason: req.Reason,
		IssuedAt: now, Expires: now.Add(ControlTTL), Nonce: hex.EncodeToString(nonce[:]),
	})
	if err != nil {
		return ControlResponse{}, err
	}
	s.guard.Audit(p, req.Action, req.Release, true, "role "+role+", gate "+gate)
	return ControlResponse{Release: req.Release, Action: req.Action, By: p.Subject, Role: role, Gate: gate, Signal: ctl}, nil
}

func ownerOrNobody(owner string) string {
	if owner == "" {
		return "nobody (the registry recorded no owner)"
	}
	return owner
}

// nextWaveLabels returns the labels of the sites of the wave after the
// open gate (the sites an approval lets the release touch next).
func nextWaveLabels(st modelfleet.ReleaseStatus, dir *fleet.Directory) ([]map[string]string, error) {
	next := ""
	for i, w := range st.Waves {
		if w.Name == st.Gate.After && i+1 < len(st.Waves) {
			next = st.Waves[i+1].Name
		}
	}
	if next == "" {
		return nil, nil
	}
	var out []map[string]string
	for _, ss := range st.Sites {
		if ss.Wave != next {
			continue
		}
		site, err := dir.Get(ss.Site)
		if err != nil {
			return nil, err
		}
		out = append(out, site.Labels)
	}
	return out, nil
}
