package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/rollout"
)

// Client reads and updates the site directory over HTTP.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	// HTTPClient is used for requests. If nil, http.DefaultClient is used.
	HTTPClient *http.Client
}

// List returns every site.
func (c *Client) List(ctx context.Context) ([]modelfleet.Site, error) {
	var sites []modelfleet.Site
	return sites, c.do(ctx, http.MethodGet, "/api/sites", nil, &sites)
}

// Put registers or updates a site.
func (c *Client) Put(ctx context.Context, s modelfleet.Site) (modelfleet.Site, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return modelfleet.Site{}, err
	}
	var out modelfleet.Site
	return out, c.do(ctx, http.MethodPut, "/api/sites/"+url.PathEscape(s.ID), body, &out)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	return httpjson.Do(ctx, c.HTTPClient, "fleet", method, c.BaseURL+path, body, out)
}

// Desired long-polls a site's desired state: it returns once the revision
// is above after, or after wait with whatever is current.
func (c *Client) Desired(ctx context.Context, site string, after int64, wait time.Duration) (modelfleet.Desired, error) {
	var ds modelfleet.Desired
	path := fmt.Sprintf("/api/sites/%s/desired?after=%d&wait=%s", url.PathEscape(site), after, wait)
	return ds, c.do(ctx, http.MethodGet, path, nil, &ds)
}

// AgentDesired is Desired as a site's agent polls it: keysTag names the
// release key set the agent holds ("" for none), and the answer leaves out
// what no agent reads (see agentKeysParam), the key set among it when the
// gateway's is the one the agent holds, and carries each release statement
// once (statementRefsParam) unless held holds it already (by
// modelfleet.Envelope.StatementRef: the statements of the answer before),
// put back into its versions here; held (nil: none kept) is then what
// this answer's versions name, for the next poll. gatewayKeys is the tag
// of the gateway's key set ("" from a gateway without one, or one older
// than the parameter, which answers with the whole document).
func (c *Client) AgentDesired(ctx context.Context, site string, after int64, wait time.Duration, keysTag string, held map[string]*modelfleet.Envelope) (ds modelfleet.Desired, gatewayKeys string, err error) {
	refs := "1"
	if len(held) > 0 && len(held) <= maxHeldStatements {
		refs = strings.Join(slices.Sorted(maps.Keys(held)), ",")
	}
	path := fmt.Sprintf("/api/sites/%s/desired?after=%d&wait=%s&%s=%s&%s=%s", url.PathEscape(site), after, wait, agentKeysParam, url.QueryEscape(keysTag), statementRefsParam, url.QueryEscape(refs))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return ds, "", fmt.Errorf("fleet: GET %s: %w", path, err)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ds, "", fmt.Errorf("fleet: GET %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxDesiredBytes))
	if err != nil {
		return ds, "", fmt.Errorf("fleet: GET %s: read response: %w", req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		return ds, "", httpjson.ResponseError(resp.StatusCode, fmt.Sprintf("fleet: GET %s: %s", req.URL.Path, resp.Status), buf)
	}
	if err := json.Unmarshal(buf, &ds); err != nil {
		return ds, "", fmt.Errorf("fleet: GET %s: decode response: %w", req.URL.Path, err)
	}
	resolved, err := ds.ResolveStatements(held)
	if err != nil {
		return ds, "", fmt.Errorf("fleet: GET %s: %w", req.URL.Path, err)
	}
	if held != nil {
		// What the next poll names as held: this answer's statements.
		clear(held)
		maps.Copy(held, resolved)
	}
	return ds, resp.Header.Get(releaseKeysHeader), nil
}

// maxDesiredBytes bounds a desired state an agent reads into memory (as
// httpjson.Do bounds any response).
const maxDesiredBytes = 64 << 20

// ReportActual records what the site serves.
func (c *Client) ReportActual(ctx context.Context, a modelfleet.Actual) error {
	return c.post(ctx, http.MethodPut, "/api/sites/"+url.PathEscape(a.Site)+"/actual", a, &struct{}{})
}

// Step applies one traffic step of a release (see Directory.Step).
func (c *Client) Step(ctx context.Context, req modelfleet.StepRequest) (modelfleet.StepResult, error) {
	var res modelfleet.StepResult
	return res, c.post(ctx, http.MethodPost, "/api/rollouts/step", req, &res)
}

// maxSitesPerCall bounds the sites of one rollback request, well inside
// the server's maxRolloutBody however long the site IDs.
var maxSitesPerCall = 20_000

// Rollback restores what the release's sites served before it: a whole
// fleet at once, in as few requests as the body limit allows (one up to
// maxSitesPerCall sites). Each request is one directory transaction, and
// restoring a site twice changes nothing, so a retry after a partial
// failure is safe.
func (c *Client) Rollback(ctx context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
	var total modelfleet.StepResult
	sites := req.Sites
	for first := true; first || len(sites) > 0; first = false {
		part := req
		part.Sites = sites[:min(len(sites), maxSitesPerCall)]
		sites = sites[len(part.Sites):]
		var res modelfleet.StepResult
		if err := c.post(ctx, http.MethodPost, "/api/rollouts/rollback", part, &res); err != nil {
			return total, err
		}
		total.Changed += res.Changed
		total.Unchanged += res.Unchanged
		total.Conflicts = append(total.Conflicts, res.Conflicts...)
	}
	return total, nil
}

// Finish frees the release's leases.
func (c *Client) Finish(ctx context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
	var res modelfleet.StepResult
	return res, c.post(ctx, http.MethodPost, "/api/rollouts/finish", req, &res)
}

// Progress reports how far sites converged.
func (c *Client) Progress(ctx context.Context, req modelfleet.ProgressRequest) (modelfleet.Progress, error) {
	var p modelfleet.Progress
	return p, c.post(ctx, http.MethodPost, "/api/rollouts/progress", req, &p)
}

// PutPolicy stores a model's rollout policy (YAML), validated by the server.
func (c *Client) PutPolicy(ctx context.Context, model string, doc []byte) (rollout.Policy, error) {
	var p rollout.Policy
	return p, c.do(ctx, http.MethodPut, "/api/policies/"+url.PathEscape(model), doc, &p)
}

// Policy returns a model's rollout policy (the default when it has none).
func (c *Client) Policy(ctx context.Context, model string) (rollout.Policy, error) {
	var p rollout.Policy
	return p, c.do(ctx, http.MethodGet, "/api/policies/"+url.PathEscape(model), nil, &p)
}

func (c *Client) post(ctx context.Context, method, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, body, out)
}
