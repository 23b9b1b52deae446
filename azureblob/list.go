package azureblob

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/modelfleet/modelfleet"
)

// maxListPage bounds one List Blobs response body (5,000 names of at most
// 1,024 characters, in XML, fit well within it).
const maxListPage = 16 << 20

// Blob is one blob a listing returns: its name in the container and size.
type Blob struct {
	Name string
	Size int64
}

// SplitFolder splits the https URL of a folder (a blob name prefix) into
// its container's URL and the prefix, which ends with "/".
func SplitFolder(u string) (container, prefix string, err error) {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host == "" {
		return "", "", modelfleet.Errorf(modelfleet.EINVALID, "folder url %q: want https://<account>.blob.core.windows.net/<container>/<path>/", Redact(u))
	}
	c, rest, _ := strings.Cut(strings.TrimPrefix(p.Path, "/"), "/")
	if c == "" {
		return "", "", modelfleet.Errorf(modelfleet.EINVALID, "folder url %q names no container", Redact(u))
	}
	if rest = strings.TrimSuffix(rest, "/"); rest != "" {
		rest += "/"
	}
	return "https://" + p.Host + "/" + url.PathEscape(c), rest, nil
}

// List returns the blobs of the container at containerURL whose names
// start with prefix (List Blobs, flat, following its continuation
// markers), in the service's order (by name). More than max blobs is an
// ETOOLARGE error.
func (c *Client) List(ctx context.Context, containerURL, prefix string, max int) ([]Blob, error) {
	var out []Blob
	marker := ""
	for {
		q := url.Values{"restype": {"container"}, "comp": {"list"}, "prefix": {prefix}}
		if marker != "" {
			q.Set("marker", marker)
		}
		u := containerURL + "?" + q.Encode()
		req, err := runtime.NewRequest(ctx, http.MethodGet, u)
		if err != nil {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "container url %q: %v", Redact(containerURL), err)
		}
		req.Raw().Header.Set("x-ms-version", APIVersion)
		resp, err := c.pl.Do(req)
		if err != nil {
			return nil, fmt.Errorf("list blobs %s/%s: %w", Redact(containerURL), prefix, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, Error("list blobs", containerURL, resp)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list blobs %s/%s: %w", Redact(containerURL), prefix, err)
		}
		if len(body) > maxListPage {
			return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "list blobs %s/%s: a page larger than %d bytes", Redact(containerURL), prefix, maxListPage)
		}
		blobs, next, err := parseListPage(body)
		if err != nil {
			return nil, fmt.Errorf("list blobs %s/%s: %w", Redact(containerURL), prefix, err)
		}
		for _, b := range blobs {
			if len(out) == max {
				return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "list blobs %s/%s: more than %d blobs", Redact(containerURL), prefix, max)
			}
			out = append(out, b)
		}
		if marker = next; marker == "" {
			return out, nil
		}
	}
}

// parseListPage reads one List Blobs answer (EnumerationResults): its
// blobs and the marker of the next page ("" on the last).
func parseListPage(body []byte) ([]Blob, string, error) {
	var page struct {
		Blobs []struct {
			Name       string `xml:"Name"`
			Properties struct {
				Size int64 `xml:"Content-Length"`
			} `xml:"Properties"`
		} `xml:"Blobs>Blob"`
		NextMarker string `xml:"NextMarker"`
	}
	if err := xml.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("not a List Blobs answer: %v", err)
	}
	out := make([]Blob, 0, len(page.Blobs))
	for _, b := range page.Blobs {
		if b.Name == "" || b.Properties.Size < 0 {
			return nil, "", fmt.Errorf("a blob of name %q and size %d", b.Name, b.Properties.Size)
		}
		out = append(out, Blob{Name: b.Name, Size: b.Properties.Size})
	}
	return out, page.NextMarker, nil
}
