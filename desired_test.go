package modelfleet

import "testing"

// An agent's answer names statements by ref and carries each once;
// ResolveStatements puts them back, and a ref the answer does not carry
// is an error, not a version left unsigned without a word.
func TestResolveStatements(t *testing.T) {
	env := &Envelope{PayloadType: InTotoPayloadType, Payload: []byte("{}")}
	ref := env.StatementRef()
	ds := Desired{Models: map[string]DesiredModel{"m": {
		Versions: []DesiredVersion{{Version: "2", StatementRef: ref}, {Version: "1"}},
		Previous: []DesiredVersion{{Version: "1", StatementRef: ref}},
	}}, Statements: map[string]*Envelope{ref: env}}
	resolved, err := ds.ResolveStatements(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resolved) != 1 || resolved[ref] != env {
		t.Errorf("resolved %v, want %s alone", resolved, ref)
	}
	dm := ds.Models["m"]
	if dm.Versions[0].Statement != env || dm.Versions[0].StatementRef != "" || dm.Versions[1].Statement != nil || dm.Previous[0].Statement != env || ds.Statements != nil {
		t.Errorf("resolved: %+v, statements %v", dm, ds.Statements)
	}
	ds = Desired{Models: map[string]DesiredModel{"m": {Versions: []DesiredVersion{{Version: "2", StatementRef: ref}}}}}
	if _, err := ds.ResolveStatements(nil); ErrorCode(err) != EINVALID {
		t.Errorf("a ref the answer does not carry: %v, want invalid", err)
	}
	// One the agent said it holds is taken from what it holds.
	if _, err := ds.ResolveStatements(map[string]*Envelope{ref: env}); err != nil || ds.Models["m"].Versions[0].Statement != env {
		t.Errorf("a ref the agent holds: %+v, %v", ds.Models["m"].Versions[0], err)
	}
}
