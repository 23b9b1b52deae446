package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// maxWorkloadBody bounds a manifest upload (ParseManifest refuses more).
const maxWorkloadBody = 1 << 20

// RegisterWorkload validates and stores a workload manifest. A version is
// immutable: registering it again with the same bytes is a no-op (created
// false), with different bytes a conflict. A bad manifest stores nothing.
func (d *Directory) RegisterWorkload(doc []byte) (rec modelfleet.WorkloadRecord, created bool, err error) {
	m, err := spec.ParseManifest(doc)
	if err != nil {
		return rec, false, err
	}
	if m.Module != nil {
		// The module must be here before a manifest names it: sites fetch
		// it from this gateway's artifact store by that digest.
		f, size, err := d.artifacts.Open(m.Module.Digest)
		if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			return rec, false, modelfleet.Errorf(modelfleet.EINVALID, "workload %s names module %s, which was not uploaded: register the manifest with its module (modelfleet workload register --module <file.wasm>)", m.Ref(), m.Module.Digest)
		}
		if err != nil {
			return rec, false, err
		}
		f.Close()
		if size > spec.MaxModuleBytes {
			return rec, false, modelfleet.Errorf(modelfleet.EINVALID, "workload %s: module %s is %d bytes, more than %d", m.Ref(), m.Module.Digest, size, spec.MaxModuleBytes)
		}
	}
	sum := sha256.Sum256(doc)
	rec = modelfleet.WorkloadRecord{Name: m.Name, Version: m.Version, Model: m.Model, Features: m.FeatureNames(),
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Manifest: string(doc), RegisteredAt: d.now().UTC().Format("2006-01-02T15:04:05Z")}
	stored, created, err := d.store.PutWorkload(context.Background(), rec)
	if err != nil {
		return modelfleet.WorkloadRecord{}, false, err
	}
	if !created && stored.Digest != rec.Digest {
		return modelfleet.WorkloadRecord{}, false, modelfleet.Errorf(modelfleet.ECONFLICT, "workload %s is already registered with another manifest (%s); versions are immutable, register a new version", m.Ref(), stored.Digest)
	}
	return stored, created, nil
}

// Workload returns one registered workload version.
func (d *Directory) Workload(name, version string) (modelfleet.WorkloadRecord, error) {
	ref := modelfleet.WorkloadRef{Name: name, Version: version}
	if _, err := modelfleet.ParseWorkloadRef(ref.String()); err != nil {
		return modelfleet.WorkloadRecord{}, err
	}
	rec, ok, err := d.store.Workload(context.Background(), name, version)
	if err == nil && !ok {
		err = modelfleet.Errorf(modelfleet.ENOTFOUND, "workload %s is not registered", ref)
	}
	return rec, err
}

// Workloads lists every registered workload version, by name then version
// (as stored: byte order).
func (d *Directory) Workloads() ([]modelfleet.WorkloadRecord, error) {
	out, err := d.store.Workloads(context.Background())
	for i := range out {
		out[i].Manifest = "" // the list is an index; Workload has the manifest
	}
	return out, err
}

// Pairings reads, in one transaction, what each site serves of model and
// which of its workloads call it: the desired workload where a release set
// one, else what the site reports running.
func (d *Directory) Pairings(model string, sites []string) ([]modelfleet.SitePairing, error) {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return nil, err
	}
	parsed := map[string][]string{} // manifest digest -> features
	out := make([]modelfleet.SitePairing, 0, len(sites))
	states, err := d.store.States(context.Background(), sites)
	if err != nil {
		return nil, fmt.Errorf("fleet: pairings: %w", err)
	}
	err = func() error {
		for i, site := range sites {
			ds, a := states[i].Desired, states[i].Actual
			p := modelfleet.SitePairing{Site: site, Versions: ds.Models[model].Versions}
			for j := range p.Versions {
				p.Versions[j].Statement, p.Versions[j].StatementRef = nil, "" // decoded for this call alone: not shared
			}
			for name, dw := range ds.Workloads {
				if dw.Model != model {
					continue
				}
				f, ok := parsed[dw.Digest]
				if !ok {
					m, err := spec.ParseManifest([]byte(dw.Manifest))
					if err != nil {
						return fmt.Errorf("site %q: desired workload %s:%s: %w", site, name, dw.Version, err)
					}
					f = m.FeatureNames()
					parsed[dw.Digest] = f
				}
				p.Workloads = append(p.Workloads, modelfleet.PairedWorkload{Name: name, Version: dw.Version, Features: f, Source: "desired"})
			}
			for name, aw := range a.Workloads {
				if _, set := ds.Workloads[name]; set || aw.Model != model {
					continue
				}
				p.Workloads = append(p.Workloads, modelfleet.PairedWorkload{Name: name, Version: aw.Version, Features: aw.Features, Source: "running"})
			}
			slices.SortFunc(p.Workloads, func(x, y modelfleet.PairedWorkload) int { return cmpString(x.Name, y.Name) })
			out = append(out, p)
		}
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("fleet: pairings: %w", err)
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stepWorkload puts the release's workload version into a site's desired
// state under the release's lease, remembering what ran before so a
// rollback restores it. It reports whether anything changed, or the release
// holding the workload when it is another one.
func stepWorkload(ds *modelfleet.Desired, req modelfleet.StepRequest) (bool, *modelfleet.Conflict) {
	w := req.Workload
	if w == nil {
		return false, nil
	}
	cur, had := ds.Workloads[w.Name]
	if had && cur.Release != "" && cur.Release != req.Release {
		return false, &modelfleet.Conflict{Site: ds.Site, Holder: cur.Release}
	}
	next := w.Desired()
	next.Release, next.TraceParent, next.Statement = req.Release, req.TraceParent, req.WorkloadStatement
	switch {
	case had && cur.Release == req.Release: // a later step of this release
		if cur.Digest == next.Digest {
			return false, nil
		}
		next.Previous = cur.Previous
	case had:
		prev := cur
		prev.Release, prev.Previous, prev.TraceParent = "", nil, ""
		next.Previous = &prev
	}
	if ds.Workloads == nil {
		ds.Workloads = map[string]modelfleet.DesiredWorkload{}
	}
	ds.Workloads[w.Name] = next
	return !had || cur.Digest != next.Digest, nil
}

// checkStepWorkload refuses a step whose workload does not belong to it.
func checkStepWorkload(req modelfleet.StepRequest) error {
	w := req.Workload
	if w == nil {
		return nil
	}
	if _, err := modelfleet.ParseWorkloadRef(w.Ref().String()); err != nil {
		return err
	}
	if w.Model != req.Model {
		return modelfleet.Errorf(modelfleet.EINVALID, "workload %s calls model %q, not %q: a release carries only workloads of its own model", w.Ref(), w.Model, req.Model)
	}
	if sum := sha256.Sum256([]byte(w.Manifest)); w.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		return modelfleet.Errorf(modelfleet.EINVALID, "workload %s: digest %q does not match its manifest", w.Ref(), w.Digest)
	}
	return nil
}

// releaseWorkloads ends release's hold on a site's workloads: restore
// puts back what ran before (a rollback), otherwise the lease is only freed.
// It reports whether what the site should run changed.
func releaseWorkloads(ds *modelfleet.Desired, release string, restore bool, traceParent string) bool {
	changed := false
	for name, dw := range ds.Workloads {
		if dw.Release != release {
			continue
		}
		switch {
		case !restore:
			dw.Release, dw.Previous = "", nil
			ds.Workloads[name] = dw
		case dw.Previous == nil:
			delete(ds.Workloads, name)
			changed = true
		default:
			prev := *dw.Previous
			prev.TraceParent = traceParent
			ds.Workloads[name] = prev
			changed = changed || prev.Digest != dw.Digest
		}
	}
	return changed
}

func (d *Directory) routeWorkloads(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/workloads", func(w http.ResponseWriter, r *http.Request) {
		doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWorkloadBody))
		if err != nil {
			WriteError(w, modelfleet.Errorf(modelfleet.ETOOLARGE, "workload manifest exceeds %d bytes", maxWorkloadBody))
			return
		}
		rec, created, err := d.RegisterWorkload(doc)
		if err != nil {
			WriteError(w, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, rec)
	})
	// A workload's WebAssembly module, stored content-addressed beside the
	// mirrored artifacts (sites download it from GET /api/artifacts/{digest}).
	mux.HandleFunc("PUT /api/workloads/modules/{digest}", func(w http.ResponseWriter, r *http.Request) {
		httpjson.LongRequest(w, httpjson.BulkTransferTimeout)
		body := http.MaxBytesReader(w, r.Body, spec.MaxModuleBytes+1)
		if err := d.artifacts.Put(r.Context(), "workload module", body, spec.MaxModuleBytes, r.PathValue("digest")); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = modelfleet.Errorf(modelfleet.ETOOLARGE, "workload module is larger than %d bytes", spec.MaxModuleBytes)
			}
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"digest": r.PathValue("digest")})
	})
	mux.HandleFunc("GET /api/workloads", func(w http.ResponseWriter, r *http.Request) {
		respond[[]modelfleet.WorkloadRecord](w)(d.Workloads())
	})
	mux.HandleFunc("GET /api/workloads/{name}/{version}", func(w http.ResponseWriter, r *http.Request) {
		respond[modelfleet.WorkloadRecord](w)(d.Workload(r.PathValue("name"), r.PathValue("version")))
	})
	mux.HandleFunc("POST /api/workloads/pairings", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.PairingRequest
		if !decodeBody(w, r, maxRolloutBody, "pairing request", &req) {
			return
		}
		respond[[]modelfleet.SitePairing](w)(d.Pairings(req.Model, req.Sites))
	})
}

// RegisterWorkload uploads a workload manifest (see Directory.RegisterWorkload).
func (c *Client) RegisterWorkload(ctx context.Context, doc []byte) (modelfleet.WorkloadRecord, error) {
	var rec modelfleet.WorkloadRecord
	return rec, c.do(ctx, http.MethodPost, "/api/workloads", doc, &rec)
}

// UploadWorkloadModule stores a workload's module at the gateway under its
// digest (before the manifest naming it is registered).
func (c *Client) UploadWorkloadModule(ctx context.Context, digest string, code []byte) error {
	if !modelfleet.ValidDigest(digest) {
		return modelfleet.Errorf(modelfleet.EINVALID, "module digest %q is invalid", digest)
	}
	var out struct {
		Digest string `json:"digest"`
	}
	return c.do(ctx, http.MethodPut, "/api/workloads/modules/"+digest, code, &out)
}

// DownloadWorkloadModule reads a workload's module from the gateway's
// artifact store into w, failing (EINVALID) unless its bytes hash to digest
// and fit spec.MaxModuleBytes; w may then have received bad bytes.
func (c *Client) DownloadWorkloadModule(ctx context.Context, digest string, w io.Writer) error {
	if !modelfleet.ValidDigest(digest) {
		return modelfleet.Errorf(modelfleet.EINVALID, "module digest %q is invalid", digest)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/api/artifacts/"+digest, nil)
	if err != nil {
		return err
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleet: download module %s: %w", digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		buf, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return httpjson.ResponseError(resp.StatusCode, "fleet: download module "+digest+": "+resp.Status, buf)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, spec.MaxModuleBytes+1))
	if err != nil {
		return fmt.Errorf("fleet: download module %s: %w", digest, err)
	}
	if n > spec.MaxModuleBytes {
		return modelfleet.Errorf(modelfleet.EINVALID, "module %s is larger than %d bytes", digest, spec.MaxModuleBytes)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return modelfleet.Errorf(modelfleet.EINVALID, "module %s: the gateway's bytes hash to %s", digest, got)
	}
	return nil
}

// Workload returns one registered workload version with its manifest.
func (c *Client) Workload(ctx context.Context, name, version string) (modelfleet.WorkloadRecord, error) {
	var rec modelfleet.WorkloadRecord
	return rec, c.do(ctx, http.MethodGet, "/api/workloads/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, &rec)
}

// Workloads lists the registered workload versions (without manifests).
func (c *Client) Workloads(ctx context.Context) ([]modelfleet.WorkloadRecord, error) {
	var out []modelfleet.WorkloadRecord
	return out, c.do(ctx, http.MethodGet, "/api/workloads", nil, &out)
}

// Pairings reads what a model is paired with at sites (see Directory.Pairings).
func (c *Client) Pairings(ctx context.Context, req modelfleet.PairingRequest) ([]modelfleet.SitePairing, error) {
	var out []modelfleet.SitePairing
	return out, c.post(ctx, http.MethodPost, "/api/workloads/pairings", req, &out)
}

// workloadError is why a workload calling model failed to apply at a site
// ("" if none did), for release progress: a site whose workload did not
// swap has not converged on the release.
// workloadPending reports whether a site has applied the revision but a
// workload of model it reports does not run the desired version yet: a
// workload the site runs outside its agent (a Kubernetes Deployment)
// rolling out. A workload the site does not report is not waited for.
func workloadPending(ds modelfleet.Desired, a modelfleet.Actual, model string) bool {
	for name, dw := range ds.Workloads {
		if aw, ok := a.Workloads[name]; ok && dw.Model == model && aw.Version != dw.Version {
			return true
		}
	}
	return false
}

func workloadError(ds modelfleet.Desired, a modelfleet.Actual, model string) string {
	for name, dw := range ds.Workloads {
		if aw := a.Workloads[name]; dw.Model == model && aw.Error != "" {
			return fmt.Sprintf("workload %s:%s: %s", name, dw.Version, aw.Error)
		}
	}
	return ""
}
