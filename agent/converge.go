package agent

import (
	"context"
	"io"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/registry"
)

// converge is the site's pull loop: fetch the desired state (long poll,
// outbound only), apply it, report what is served. Offline, the site keeps
// serving what it has and retries with backoff; when it returns it converges
// on whatever the orchestrator decided meanwhile — including a rollback —
// with no operator action.
//
// The report is also the site's heartbeat: it carries the site's directory
// record (router URL, labels, what it serves), which the directory stores
// in the same transaction, so an agent writes once per interval; and a site
// the directory does not know yet registers itself with its first report.
func (e *Edge) converge(ctx context.Context) {
	dir := &fleet.Client{BaseURL: e.cfg.GatewayURL}
	dl := &registry.Client{}
	applied := int64(-1)
	backoff := time.Second
	failing := false
	report := func(actual modelfleet.Actual) bool {
		rec := e.Site()
		actual.SiteRecord = &rec
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := dir.ReportActual(rctx, actual)
			cancel()
			switch code := modelfleet.ErrorCode(err); {
			case err == nil:
				if failing {
					e.log.Info("site directory reachable again")
					failing = false
				}
				return true
			case code == modelfleet.EINVALID || code == modelfleet.ETOOLARGE:
				// The same report would be refused again; the next
				// interval sends a fresh one.
				e.log.Error("site directory refused the report", "error", err)
				return false
			case !failing:
				e.log.Warn("site directory unreachable", "error", err)
				failing = true
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
		}
		return false
	}
	for ctx.Err() == nil {
		// The long poll doubles as the report interval: when it ends with no
		// change the site re-reports, so the router's live figures reach
		// the release's criteria checks within one interval.
		ds, err := dir.Desired(ctx, e.cfg.SiteID, applied, e.cfg.HeartbeatInterval)
		if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			// Not in the directory yet: this report registers the site.
			if !report(e.report(modelfleet.Desired{})) {
				sleep(ctx, backoff)
				backoff = min(2*backoff, 30*time.Second)
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				e.log.Debug("desired state unreachable; serving what we have", "error", err, "retry_in", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 30*time.Second)
			}
			continue
		}
		backoff = time.Second
		var actual modelfleet.Actual
		if ds.Revision <= applied {
			actual = e.report(ds) // no change: refresh the figures only
		} else {
			actual = e.apply(ctx, ds, dl)
		}
		e.convergeWorkloads(ctx, ds, ds.Revision > applied, &actual)
		report(actual)
		if ds.Revision > applied {
			applied, e.lastApplied = ds.Revision, ds.Revision
		}
	}
}

// apply makes the router serve each model's desired split, model by model;
// one model failing does not stop the others, and is reported with why.
func (e *Edge) apply(ctx context.Context, ds modelfleet.Desired, dl *registry.Client) modelfleet.Actual {
	actual := modelfleet.Actual{Site: e.cfg.SiteID, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}}
	for name, dm := range ds.Models {
		fetch := func(v modelfleet.DesiredVersion) edge.FetchFunc {
			return func(ctx context.Context, w io.Writer) error {
				_, err := dl.Download(ctx, v.ArtifactURL, v.Digest, w)
				return err
			}
		}
		am := modelfleet.ActualModel{}
		// Continue the release's trace: registration event -> workflow ->
		// step activity -> this apply at the site.
		tctx := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": dm.TraceParent})
		tctx, span := otel.Tracer("modelfleet/edge").Start(tctx, "edge.apply", trace.WithAttributes(
			attribute.String("modelfleet.site", e.cfg.SiteID), attribute.String("modelfleet.model", name),
			attribute.Int64("modelfleet.revision", ds.Revision), attribute.String("modelfleet.split", modelfleet.SplitString(dm.Versions))))
		err := e.Agent.Apply(tctx, name, dm.Versions, fetch)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		if err != nil {
			am.Error = err.Error()
			e.log.Warn("apply desired state failed", "model", name, "revision", ds.Revision, "error", err)
		} else {
			e.sig.track(ctx, name, dm.Versions)
		}
		e.lastError[name] = am.Error
		am.Versions = e.Agent.Stats(name)
		actual.Models[name] = am
	}
	return actual
}

// report is the actual state without applying anything.
func (e *Edge) report(ds modelfleet.Desired) modelfleet.Actual {
	actual := modelfleet.Actual{Site: e.cfg.SiteID, Revision: e.lastApplied, Models: map[string]modelfleet.ActualModel{}}
	for name := range ds.Models {
		actual.Models[name] = modelfleet.ActualModel{Versions: e.Agent.Stats(name), Error: e.lastError[name]}
	}
	return actual
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
