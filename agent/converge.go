package agent

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/registry"
)

// converge is the site's pull loop: take the desired state from src (a
// long poll of the gateway, outbound only, or a mounted file), apply it,
// report what is served. Offline, the site keeps serving what it has and
// retries with backoff; when it returns it converges on whatever the
// orchestrator decided meanwhile — including a rollback — with no operator
// action. It returns when ctx is done.
//
// The report is also the site's heartbeat: it carries the site's directory
// record (router URL, labels, what it serves), which the directory stores
// in the same transaction, so an agent writes once per interval; and a site
// the directory does not know yet registers itself with its first report.
func (s *Site) converge(ctx context.Context, src DesiredSource) {
	dl := &registry.Client{HTTPClient: s.downloadClient(), AllowedHosts: s.cfg.ArtifactHosts}
	applied := int64(-1)
	backoff := time.Second
	wait := func() {
		_ = modelfleet.Sleep(ctx, backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	failing := false
	var retryAt time.Time // a failed apply's next try (applyFailed)
	retryWait := s.cfg.HeartbeatInterval
	report := func(actual modelfleet.Actual) bool {
		rec := s.Record()
		rec.APIKeysError = actual.APIKeysError
		actual.SiteRecord = &rec
		for ctx.Err() == nil {
			err := src.Report(ctx, actual)
			switch code := modelfleet.ErrorCode(err); {
			case err == nil:
				if failing {
					s.log.Info("site directory reachable again")
					failing = false
				}
				return true
			case code == modelfleet.EINVALID || code == modelfleet.ETOOLARGE:
				// The same report would be refused again; the next
				// interval sends a fresh one.
				s.log.Error("site directory refused the report", "error", err)
				return false
			case !failing:
				s.log.Warn("site directory unreachable", "error", err)
				failing = true
			}
			wait()
		}
		return false
	}
	for ctx.Err() == nil {
		// The long poll doubles as the report interval: when it ends with no
		// change the site re-reports, so the router's live figures reach
		// the release's criteria checks within one interval.
		ds, err := src.Next(ctx, applied)
		if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			// Not in the directory yet: this report registers the site.
			if !report(s.report(modelfleet.Desired{})) {
				wait()
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("desired state unreachable; serving what we have", "error", err, "retry_in", backoff)
				wait()
			}
			continue
		}
		backoff = time.Second
		s.learnKeys(ds.ReleaseKeys)
		// API keys before models: a model the desired state protects is
		// not served without its keys. A bad set keeps the keys in force.
		s.applyAPIKeys(ds)
		// A model that failed to apply (a full disk, a download cut) is
		// tried again, at polls backing off from one to 16 intervals, so
		// the site converges once the fault is gone, not only at the next
		// revision.
		retry := ds.Revision == applied && s.applyFailed(ds) && !time.Now().Before(retryAt)
		changed := ds.Revision > applied || retry
		var actual modelfleet.Actual
		if changed {
			actual = s.apply(ctx, ds, dl)
			if !retry {
				retryWait = s.cfg.HeartbeatInterval
			} else if retryWait < 16*s.cfg.HeartbeatInterval {
				retryWait *= 2
			}
			retryAt = time.Now().Add(retryWait)
			applied, s.lastApplied = ds.Revision, ds.Revision
			s.log.Info("desired state applied", "revision", ds.Revision, "models", len(ds.Models), "workloads", len(ds.Workloads))
		} else {
			actual = s.report(ds) // no change: refresh the figures only
		}
		s.convergeWorkloads(ctx, ds, &actual)
		actual.APIKeysError = s.apiKeysError
		report(actual)
	}
}

// apply makes the router serve each model's desired split, model by model;
// one model failing does not stop the others, and is reported with why.
func (s *Site) apply(ctx context.Context, ds modelfleet.Desired, dl *registry.Client) modelfleet.Actual {
	actual := modelfleet.Actual{Site: s.cfg.SiteID, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}}
	for name, dm := range ds.Models {
		fetch := func(v modelfleet.DesiredVersion) edge.FetchFunc { return s.fetchArtifact(dl, v) }
		am := modelfleet.ActualModel{}
		// Continue the release's trace: registration event -> workflow ->
		// step activity -> this apply at the site.
		tctx := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": dm.TraceParent})
		tctx, span := otel.Tracer("modelfleet/edge").Start(tctx, "edge.apply", trace.WithAttributes(
			attribute.String("modelfleet.site", s.cfg.SiteID), attribute.String("modelfleet.model", name),
			attribute.Int64("modelfleet.revision", ds.Revision), attribute.String("modelfleet.split", modelfleet.SplitString(dm.Versions))))
		err := s.Edge.Apply(tctx, name, dm.Versions, fetch)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		if err != nil {
			am.Error = err.Error()
			s.log.Warn("apply desired state failed", "model", name, "revision", ds.Revision, "error", err)
		} else {
			s.sig.track(ctx, name, dm.Versions)
		}
		s.lastError[name] = am.Error
		am.Versions = s.Edge.Stats(name)
		actual.Models[name] = am
	}
	return actual
}

// applyFailed reports whether a model of ds failed at its last apply.
func (s *Site) applyFailed(ds modelfleet.Desired) bool {
	for name := range ds.Models {
		if s.lastError[name] != "" {
			return true
		}
	}
	return false
}

// report is the actual state without applying anything.
func (s *Site) report(ds modelfleet.Desired) modelfleet.Actual {
	actual := modelfleet.Actual{Site: s.cfg.SiteID, Revision: s.lastApplied, Models: map[string]modelfleet.ActualModel{}}
	for name := range ds.Models {
		actual.Models[name] = modelfleet.ActualModel{Versions: s.Edge.Stats(name), Error: s.lastError[name]}
	}
	return actual
}
