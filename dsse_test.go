package modelfleet

import (
	"bytes"
	"testing"
)

// An envelope's tag is the same for the same content and changes with any
// part of it, the boundaries between parts included.
func TestEnvelopeTag(t *testing.T) {
	base := func() *Envelope {
		return &Envelope{PayloadType: "t", Payload: []byte("payload"), Signatures: []Signature{{KeyID: "k1", Sig: []byte("s1")}, {KeyID: "k2", Sig: []byte("s2")}}}
	}
	tag := base().Tag()
	if tag == "" || base().Tag() != tag {
		t.Fatalf("tag %q, not the same for the same envelope", tag)
	}
	changes := map[string]func(e *Envelope){
		"payload type":          func(e *Envelope) { e.PayloadType = "u" },
		"payload":               func(e *Envelope) { e.Payload = []byte("payloaD") },
		"a key ID":              func(e *Envelope) { e.Signatures[1].KeyID = "k3" },
		"a signature":           func(e *Envelope) { e.Signatures[0].Sig = []byte("s3") },
		"one signature fewer":   func(e *Envelope) { e.Signatures = e.Signatures[:1] },
		"the signatures' order": func(e *Envelope) { e.Signatures[0], e.Signatures[1] = e.Signatures[1], e.Signatures[0] },
		"a byte moved across":   func(e *Envelope) { e.PayloadType, e.Payload = "tp", []byte("ayload") },
		"a key ID into its sig": func(e *Envelope) { e.Signatures[0] = Signature{KeyID: "k", Sig: []byte("1s1")} },
		"payload type in bytes": func(e *Envelope) { e.Payload = bytes.Repeat([]byte("x"), 7) },
	}
	for what, change := range changes {
		e := base()
		change(e)
		if e.Tag() == tag {
			t.Errorf("changing %s leaves the tag %q", what, tag)
		}
	}
	if (*Envelope)(nil).Tag() != "" {
		t.Error("a nil envelope has a tag")
	}
}
