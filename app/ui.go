package app

import (
	"context"
	"errors"
	"net/http"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/ui"
)

// mountUI serves the dashboard at /ui/ behind the guard (its rules are
// ui.Rules, in gatewayRules): only with Auth, since its pages act as the
// signed-in person.
func (g *Gateway) mountUI(cfg GatewayConfig, mux *http.ServeMux, o modelfleet.Orchestrator) error {
	var q ui.Queue
	if g.Signals != nil {
		q = g.Signals
	}
	h, err := ui.New(ui.Config{
		Sites: g.Directory, Releases: o, Queue: q,
		Control: func(ctx context.Context, p *auth.Principal, release, action, reason string) error {
			_, err := g.sec.sendControl(ctx, p, ControlRequest{Release: release, Action: action, Reason: reason}, g.Directory, o)
			return err
		},
		Verify: g.sec.guard.VerifyToken,
		Audit:  g.sec.guard.RecentAudit,
		Monitor: func() (drift.Stats, []drift.Verdict) {
			m := g.monitor.Load() // the UI samples before the monitor is built
			if m == nil {
				return drift.Stats{}, nil
			}
			return m.Stats(), m.Verdicts()
		},
		Retraining: func(ctx context.Context, model string) (*ui.RetrainView, error) {
			return retrainView(ctx, cfg.Temporal, model)
		},
		TemporalUI: cfg.TemporalUI,
		Logger:     orDefault(cfg.Logger).With("component", "ui"),
	})
	if err != nil {
		return err
	}
	g.ui = h
	g.sec.guard.Pages = h.Refuse
	mux.Handle(ui.Prefix, h)
	return nil
}

// sendControl authorises, signs and (unless req.PrintSignal) sends a
// control: POST /api/controls and the dashboard's buttons.
func (s *security) sendControl(ctx context.Context, p *auth.Principal, req ControlRequest, dir *fleet.Directory, o modelfleet.Orchestrator) (ControlResponse, error) {
	res, err := s.control(ctx, p, req, dir, o.ReleaseStatus)
	if err != nil {
		return res, err
	}
	if !req.PrintSignal {
		if err := o.SignalControl(ctx, req.Release, req.Action, res.Signal); err != nil {
			return res, err
		}
		res.Sent = true
	}
	return res, nil
}

// DashboardLink returns a one-time sign-in link to the dashboard as one
// of the embedded issuer's identities (a credentials file name, e.g.
// "token"): what `modelfleet dev` prints.
func (g *Gateway) DashboardLink(identity string) (string, error) {
	if g.ui == nil || g.sec.issuer == nil {
		return "", errors.New("gateway: no dashboard, or no embedded issuer to sign in with")
	}
	tok, err := g.sec.devToken(identity)
	if err != nil {
		return "", err
	}
	return g.ui.LoginLink(g.URL(), tok)
}

// retrainView is the retraining workflow's status query of model, as the
// dashboard shows it; nil when the model was never retrained (or there is
// no Temporal client).
func retrainView(ctx context.Context, c client.Client, model string) (*ui.RetrainView, error) {
	if c == nil {
		return nil, nil
	}
	v, err := c.QueryWorkflow(ctx, modelfleet.RetrainWorkflowID(model), "", modelfleet.StatusQuery)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st ui.RetrainView
	if err := v.Get(&st); err != nil {
		return nil, err
	}
	return &st, nil
}
