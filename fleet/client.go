package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/modelfleet/modelfleet"
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
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleet: %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleet: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("fleet: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Message string }
		if json.Unmarshal(buf, &e) == nil && e.Error != "" {
			return modelfleet.Errorf(e.Error, "%s", e.Message)
		}
		return fmt.Errorf("fleet: %s %s: unexpected status %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(buf, out); err != nil {
		return fmt.Errorf("fleet: %s %s: decode response: %w", method, path, err)
	}
	return nil
}
