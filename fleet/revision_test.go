package fleet

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// docRevision reads what decoding the document would, whether the
// revision comes where the directory writes it or anywhere else.
func TestDocRevision(t *testing.T) {
	written, err := json.Marshal(modelfleet.Desired{Site: "s-1.a_b", Revision: 41, Models: map[string]modelfleet.DesiredModel{
		"m": {Versions: []modelfleet.DesiredVersion{{Version: "1", Digest: "sha256:x", Format: "lightgbm", Weight: 100}}, Release: "r"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		site, doc string
		want      int64
		bad       bool
	}{
		{site: "s-1.a_b", doc: string(written), want: 41},
		{site: "s", doc: `{"site":"s","revision":0,"models":{}}`, want: 0},
		{site: "s", doc: `{"site":"s","revision":9223372036854775807}`, want: 9223372036854775807},
		{site: "s", doc: `{"site":"s","revision":-3,"models":{}}`, want: -3},
		// Other layouts: decoded in full, as Desired would.
		{site: "s", doc: `{"models":{},"revision":7,"site":"s"}`, want: 7},
		{site: "s", doc: ` {"site":"s","revision":7}`, want: 7},
		{site: "s", doc: `{"site":"s", "revision":7}`, want: 7},
		{site: "s", doc: `{"site":"s","revision":7 ,"models":{}}`, want: 7},
		{site: "s", doc: `{"site":"s","Revision":8}`, want: 8},
		// A second revision (json.Marshal writes none) is not looked for.
		{site: "s", doc: `{"site":"s","revision":5,"revision":6}`, want: 5},
		{site: "s", doc: `{"site":"s","revision":5,"models":{"m":{"versions":[]}}}`, want: 5},
		{site: "t", doc: `{"site":"s","revision":7}`, want: 7},
		{site: "s", doc: `{"site":"s"}`, want: 0},
		{site: "s", doc: `{"site":"s","revision":1e3}`, bad: true},
		{site: "s", doc: `{"site":"s","revision":+3}`, bad: true},
		{site: "s", doc: `{"site":"s","revision":03}`, bad: true},
		{site: "s", doc: `{"site":"s","revision":"3"}`, bad: true},
		{site: "s", doc: `{"site":"s","revision":99999999999999999999}`, bad: true},
		{site: "s", doc: `not json`, bad: true},
	} {
		got, err := docRevision(tc.site, []byte(tc.doc))
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("docRevision(%s) = %d, %v; want %d (error: %v)", tc.doc, got, err, tc.want, tc.bad)
		}
	}
	if got, err := docRevision("s", nil); got != 0 || err != nil {
		t.Errorf("no document = %d, %v; want 0", got, err)
	}
}

// FuzzDocRevision: whenever a document decodes as a desired state with
// one revision key (as every document the stores write has), its revision
// is the one docRevision reads; and so it is of the document json.Marshal
// writes of it.
func FuzzDocRevision(f *testing.F) {
	f.Add("s", []byte(`{"site":"s","revision":12,"models":{}}`))
	f.Add("s", []byte(`{"site":"s","revision":-0}`))
	f.Add("a", []byte(`{"revision":3,"site":"a"}`))
	f.Add("a", []byte(`{"site":"a","revision":3,"models":{"m":{"versions":[{"version":"1","digest":"d","format":"f","artifactUrl":"u","weight":100}],"release":"r"}}}`))
	f.Fuzz(func(t *testing.T, site string, doc []byte) {
		var ds modelfleet.Desired
		if json.Unmarshal(doc, &ds) != nil {
			return
		}
		if revisionKeys(doc) == 1 {
			got, err := docRevision(site, doc)
			if err != nil || got != ds.Revision {
				t.Fatalf("docRevision(%q, %s) = %d, %v; decoding says %d", site, doc, got, err, ds.Revision)
			}
		}
		written, err := json.Marshal(ds)
		if err != nil {
			return
		}
		if got, err := docRevision(ds.Site, written); err != nil || got != ds.Revision {
			t.Fatalf("docRevision(%q, %s) = %d, %v; want %d", ds.Site, written, got, err, ds.Revision)
		}
	})
}

// revisionKeys counts the top-level keys of doc that encoding/json takes
// for Desired.Revision (it matches keys without regard to case).
func revisionKeys(doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	n, depth, isKey := 0, 0, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			isKey = depth == 1 && tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
			isKey = depth == 1 // a value at the top level ended
			continue
		}
		if depth != 1 {
			continue
		}
		if s, ok := tok.(string); ok && isKey && strings.EqualFold(s, "revision") {
			n++
		}
		isKey = !isKey
	}
}

// decodeProgress reads the desired workloads of a document that has some,
// and none of one that has none, without scanning it for them.
func TestDecodeProgressWorkloads(t *testing.T) {
	actual, err := json.Marshal(modelfleet.Actual{Site: "s1", Revision: 2})
	if err != nil {
		t.Fatal(err)
	}
	with, err := json.Marshal(modelfleet.Desired{Site: "s1", Revision: 2, Models: map[string]modelfleet.DesiredModel{},
		Workloads: map[string]modelfleet.DesiredWorkload{"w": {Version: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodeProgress("s1", "m", with, actual)
	if err != nil || p.Workloads["w"].Version != "1" {
		t.Fatalf("a document with workloads: %+v, %v; want workload w version 1", p.Workloads, err)
	}
	without, err := json.Marshal(modelfleet.Desired{Site: "s1", Revision: 2, Models: map[string]modelfleet.DesiredModel{}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = decodeProgress("s1", "m", without, actual); err != nil || p.Workloads != nil {
		t.Fatalf("a document without workloads: %+v, %v", p.Workloads, err)
	}
}
