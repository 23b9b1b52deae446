package fleet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// A signed version's statement is kept once: the stored desired states
// of the sites it goes to name it by ref, an agent's answer carries it
// once beside the versions that name it, and every other reader gets it
// in its versions.
func TestStatementsAreKeptOnce(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	ctx := context.Background()
	v := version("1", 100)
	v.Statement = &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte(`{"v":"1"}`), Signatures: []modelfleet.Signature{{KeyID: "k", Sig: []byte("sig")}}}
	payload := []byte(base64.StdEncoding.EncodeToString(v.Statement.Payload))
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v, Sites: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	ref := v.Statement.StatementRef()
	for _, site := range []string{"s1", "s2"} {
		doc, _, err := d.store.DesiredDoc(ctx, site)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(doc, payload) || !bytes.Contains(doc, []byte(ref)) {
			t.Errorf("%s's stored desired state holds the statement, or not its ref %s: %s", site, ref, doc)
		}
		if refs, ok := docStatementRefs(doc); !ok || !reflect.DeepEqual(refs, []string{ref}) {
			t.Errorf("refs read off %s's document: %v, %v", site, refs, ok)
		}
	}
	kept, err := d.store.Statements(ctx, []string{ref, "sha256:" + string(bytes.Repeat([]byte{'0'}, 64))})
	if err != nil || len(kept) != 1 || kept[ref] == nil {
		t.Fatalf("kept statements = %v, %v; want %s alone", kept, err, ref)
	}

	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(query string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/sites/s1/desired?after=-1" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, b)
		}
		return b
	}
	// An agent that resolves refs: the statement once, beside the version.
	body := get("&agentKeys=&" + statementRefsParam + "=1")
	if n := bytes.Count(body, payload); n != 1 || !bytes.Contains(body, []byte(`"statements":{"`+ref+`":`)) {
		t.Errorf("an agent's answer carries the statement %d times, or not in statements: %s", n, body)
	}
	var ds modelfleet.Desired
	if err := json.Unmarshal(body, &ds); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.ResolveStatements(nil); err != nil || !reflect.DeepEqual(ds.Models["m"].Versions[0].Statement, v.Statement) {
		t.Errorf("resolved: %+v, %v", ds.Models["m"].Versions[0], err)
	}
	// An agent that holds it (it named it as held): not sent again.
	body = get("&agentKeys=&" + statementRefsParam + "=" + ref)
	if bytes.Contains(body, payload) || bytes.Contains(body, []byte(`"statements"`)) || !bytes.Contains(body, []byte(ref)) {
		t.Errorf("an answer to an agent holding the statement carries it: %s", body)
	}
	// Through the client: the first answer carries it and the client
	// keeps it; the next one names it only, and resolves the same.
	c := &Client{BaseURL: srv.URL}
	held := map[string]*modelfleet.Envelope{}
	for i := range 2 {
		got, _, err := c.AgentDesired(ctx, "s1", -1, 0, "", held)
		if err != nil || !reflect.DeepEqual(got.Models["m"].Versions[0].Statement, v.Statement) || len(held) != 1 || held[ref] == nil {
			t.Errorf("poll %d: %+v, %v; held %v", i, got.Models["m"].Versions, err, held)
		}
	}
	// Bad lists name nothing held: the statement is sent.
	for _, list := range []string{"1", "x," + ref, strings.Repeat(ref+",", maxHeldStatements) + ref} {
		if body := get("&agentKeys=&" + statementRefsParam + "=" + list); bytes.Count(body, payload) != 1 {
			t.Errorf("held list %.80q: the statement is not sent: %s", list, body)
		}
	}
	// Everyone else: the statement in its version, no ref.
	for _, q := range []string{"", "&agentKeys="} {
		var ds modelfleet.Desired
		if err := json.Unmarshal(get(q), &ds); err != nil {
			t.Fatal(err)
		}
		if got := ds.Models["m"].Versions[0]; !reflect.DeepEqual(got.Statement, v.Statement) || got.StatementRef != "" || ds.Statements != nil {
			t.Errorf("poll %q: version %+v, statements %v", q, got, ds.Statements)
		}
	}
	// Another replica (its own cache, empty) reads it from the store.
	d2 := &Directory{store: d.store}
	got, err := d2.Desired(ctx, "s2", -1)
	if err != nil || !reflect.DeepEqual(got.Models["m"].Versions[0].Statement, v.Statement) {
		t.Errorf("another replica's read: %+v, %v", got.Models["m"].Versions, err)
	}
}

// A statement named but not kept (a store damaged by hand) fails the read
// with a clear error rather than serving the version unsigned.
func TestAStatementNotKeptFailsTheRead(t *testing.T) {
	d := mustOpen(t, "s1")
	v := version("1", 100)
	v.StatementRef = "sha256:" + string(bytes.Repeat([]byte{'a'}, 64))
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v, Sites: []string{"s1"}}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("a step naming a statement by ref: %v, want invalid", err)
	}
	if _, _, err := d.store.UpdateDesired(context.Background(), []string{"s1"}, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		ds.Models["m"] = modelfleet.DesiredModel{Versions: []modelfleet.DesiredVersion{v}}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Desired(context.Background(), "s1", -1); err == nil || modelfleet.ErrorCode(err) != modelfleet.EINTERNAL {
		t.Errorf("read of a desired state naming a statement not kept: %v, want an internal error", err)
	}
}

func FuzzDocStatementRefs(f *testing.F) {
	f.Add([]byte(`{"models":{"m":{"versions":[{"statementRef":"sha256:` + string(bytes.Repeat([]byte{'a'}, 64)) + `"}]}}}`))
	f.Add([]byte(`{"statementRef" : "x"}`))
	f.Add([]byte(`{"statementRef":`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		refs, ok := docStatementRefs(doc)
		for _, r := range refs {
			if !ok || !modelfleet.ValidDigest(r) || !bytes.Contains(doc, []byte(r)) {
				t.Fatalf("ref %q (ok %v) from %q", r, ok, doc)
			}
		}
	})
}
