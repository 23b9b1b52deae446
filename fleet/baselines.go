package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

// A model version's baseline is the binned distribution of its validation
// data and of its predictions on it (signals.Baseline): the fixed bins the
// site agents count their inputs into, and the reference the cloud monitor
// measures drift against. The release's validation step builds it and
// stores it here, beside the sites that use it, so it exists whichever
// registry (embedded or Azure ML) holds the model.

// maxBaselineBody bounds a stored baseline: MaxFeatures features of MaxBins
// bins is well under it.
const maxBaselineBody = 8 << 20

// BaselineRecord is a stored baseline with its digest.
type BaselineRecord struct {
	Model    string            `json:"model"`
	Version  string            `json:"version"`
	Digest   string            `json:"digest"`
	Baseline *signals.Baseline `json:"baseline"`
}

// PutBaseline stores a model version's baseline, replacing any earlier one
// (a re-validation builds the same bytes, so the digest is stable).
func (d *Directory) PutBaseline(model, version string, b *signals.Baseline) (string, error) {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return "", err
	}
	if err := modelfleet.ValidateName("model version", version); err != nil {
		return "", err
	}
	if b == nil {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "baseline of %s:%s is empty", model, version)
	}
	buf, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	if err := d.store.PutBaseline(context.Background(), model, version, buf); err != nil {
		return "", modelfleet.Errorf(modelfleet.EINTERNAL, "fleet: store baseline of %s:%s: %v", model, version, err)
	}
	return b.Digest(), nil
}

// Baseline returns a model version's baseline; ENOTFOUND if none was stored.
func (d *Directory) Baseline(model, version string) (BaselineRecord, error) {
	buf, err := d.store.Baseline(context.Background(), model, version)
	if err != nil {
		return BaselineRecord{}, err
	}
	if len(buf) == 0 {
		return BaselineRecord{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no baseline for model %q version %q", model, version)
	}
	b, err := signals.DecodeBaseline(buf)
	if err != nil {
		return BaselineRecord{}, modelfleet.Errorf(modelfleet.EINTERNAL, "stored baseline of %s:%s: %v", model, version, err)
	}
	return BaselineRecord{Model: model, Version: version, Digest: b.Digest(), Baseline: b}, nil
}

// baselineRoutes adds the baseline endpoints:
//
//	PUT /api/baselines/{model}/{version}   store (body: a signals.Baseline)
//	GET /api/baselines/{model}/{version}   read (a BaselineRecord)
func (d *Directory) baselineRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /api/baselines/{model}/{version}", func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if !decodeBody(w, r, maxBaselineBody, "baseline", &raw) {
			return
		}
		b, err := signals.DecodeBaseline(raw)
		if err != nil {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "%v", err))
			return
		}
		model, version := r.PathValue("model"), r.PathValue("version")
		digest, err := d.PutBaseline(model, version, b)
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, BaselineRecord{Model: model, Version: version, Digest: digest})
	})
	mux.HandleFunc("GET /api/baselines/{model}/{version}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := d.Baseline(r.PathValue("model"), r.PathValue("version"))
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
}

// BaselineBins is how many bins each numerical feature, and the
// predictions, of a baseline get: Azure ML model monitoring's default
// histogram resolution is of this order, and 20 keeps a signal message of
// 50 features well under a queue message's size.
const BaselineBins = 20

// StoreBaseline builds a validated version's baseline from its validation
// data and the model's predictions on it, binned as its task needs
// (signals.WithTaskPredictions), and stores it (the validation
// activity's activities.Baselines).
func (c *Client) StoreBaseline(ctx context.Context, ref modelfleet.ModelRef, ds *inference.Dataset, task string, classes int, predictions []float64) (string, error) {
	b, err := signals.BuildBaseline(ds, BaselineBins, signals.WithTaskPredictions(task, classes, predictions))
	if err != nil {
		return "", err
	}
	digest, err := c.PutBaseline(ctx, ref.Name, ref.Version, b)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return digest, nil
}

// PutBaseline stores a model version's baseline and returns its digest.
func (c *Client) PutBaseline(ctx context.Context, model, version string, b *signals.Baseline) (string, error) {
	var rec BaselineRecord
	err := c.post(ctx, http.MethodPut, "/api/baselines/"+url.PathEscape(model)+"/"+url.PathEscape(version), b, &rec)
	return rec.Digest, err
}

// Baseline reads a model version's baseline. The digest is recomputed from
// the bytes received, so a caller that knows which digest it wants can
// compare.
func (c *Client) Baseline(ctx context.Context, model, version string) (BaselineRecord, error) {
	var rec BaselineRecord
	if err := c.do(ctx, http.MethodGet, "/api/baselines/"+url.PathEscape(model)+"/"+url.PathEscape(version), nil, &rec); err != nil {
		return BaselineRecord{}, err
	}
	if rec.Baseline == nil {
		return BaselineRecord{}, modelfleet.Errorf(modelfleet.EINTERNAL, "fleet: baseline of %s:%s: empty response", model, version)
	}
	rec.Digest = rec.Baseline.Digest()
	return rec, nil
}
