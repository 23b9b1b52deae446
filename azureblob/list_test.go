package azureblob

import (
	"strings"
	"testing"
)

func TestParseListPage(t *testing.T) {
	blobs, next, err := parseListPage([]byte(`<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Prefix>m/</Prefix>` +
		`<Blobs><Blob><Name>m/MLmodel</Name><Properties><Content-Length>12</Content-Length></Properties></Blob>` +
		`<Blob><Name>m/a &amp; b.json</Name><Properties><Content-Length>0</Content-Length></Properties></Blob></Blobs><NextMarker>2!m</NextMarker></EnumerationResults>`))
	if err != nil || len(blobs) != 2 || blobs[0] != (Blob{"m/MLmodel", 12}) || blobs[1].Name != "m/a & b.json" || next != "2!m" {
		t.Fatalf("parseListPage = %+v, %q, %v", blobs, next, err)
	}
	for _, bad := range []string{`<EnumerationResults><Blobs><Blob><Name></Name></Blob></Blobs></EnumerationResults>`,
		`<EnumerationResults><Blobs><Blob><Name>x</Name><Properties><Content-Length>-1</Content-Length></Properties></Blob></Blobs></EnumerationResults>`, `<a>`} {
		if _, _, err := parseListPage([]byte(bad)); err == nil {
			t.Errorf("parseListPage(%s) succeeded", bad)
		}
	}
	for _, c := range []struct{ u, container, prefix string }{
		{"https://a.blob.core.windows.net/c/x/y/", "https://a.blob.core.windows.net/c", "x/y/"},
		{"https://a.blob.core.windows.net/c/x%20y", "https://a.blob.core.windows.net/c", "x y/"},
		{"https://a.blob.core.windows.net/c/", "https://a.blob.core.windows.net/c", ""},
	} {
		if c2, p, err := SplitFolder(c.u); err != nil || c2 != c.container || p != c.prefix {
			t.Errorf("SplitFolder(%s) = %q, %q, %v", c.u, c2, p, err)
		}
	}
	if _, _, err := SplitFolder("https://a.blob.core.windows.net/"); err == nil || !strings.Contains(err.Error(), "no container") {
		t.Errorf("no container: %v", err)
	}
}

// FuzzParseListPage: any answer parses to named blobs of sizes ≥ 0 or an
// error; never a panic.
func FuzzParseListPage(f *testing.F) {
	f.Add([]byte(`<EnumerationResults><Blobs><Blob><Name>m/MLmodel</Name><Properties><Content-Length>12</Content-Length></Properties></Blob></Blobs><NextMarker>x</NextMarker></EnumerationResults>`))
	f.Add([]byte(`<EnumerationResults><Blobs><BlobPrefix><Name>d/</Name></BlobPrefix></Blobs></EnumerationResults>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		blobs, _, err := parseListPage(body)
		if err != nil {
			return
		}
		for _, b := range blobs {
			if b.Name == "" || b.Size < 0 {
				t.Fatalf("parsed %+v", b)
			}
		}
	})
}
