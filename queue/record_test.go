package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	for _, m := range []Message{
		{ID: "a", Body: []byte(`{"x":1}`), ContentType: "application/json", Properties: map[string]string{"site": "s1", "k": ""}, EnqueuedAt: at},
		{ID: "empty", Body: []byte{}, EnqueuedAt: at},
		{ID: "nil"},
		{ID: "binary", Body: []byte{0, '{', 0xff}, EnqueuedAt: at},
	} {
		got, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		if got.ID != m.ID || got.ContentType != m.ContentType || !got.EnqueuedAt.Equal(m.EnqueuedAt) ||
			!bytes.Equal(got.Body, m.Body) || (got.Body == nil) != (m.Body == nil) || len(got.Properties) != len(m.Properties) {
			t.Errorf("%s: round trip gave %+v, want %+v", m.ID, got, m)
		}
		for k, v := range m.Properties {
			if got.Properties[k] != v {
				t.Errorf("%s: property %q = %q, want %q", m.ID, k, got.Properties[k], v)
			}
		}
	}
	full := encodeMessage(Message{ID: "a", Body: []byte("body"), Properties: map[string]string{"p": "v"}})
	for n := range 12 { // cut inside the header, the ID or the properties
		if _, err := decodeMessage(full[:n]); err == nil {
			t.Errorf("a record cut to %d bytes decoded", n)
		}
	}
}

// A queue file written when messages were stored as JSON values delivers,
// peeks and completes them as before.
func TestReadsJSONRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q := openAt(t, path, Options{})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	old := Message{ID: "old", Body: []byte(`{"x":1}`), ContentType: "application/json", EnqueuedAt: time.Now().UTC()}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		seq, err := msgs.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(old)
		if err != nil {
			return err
		}
		if err := msgs.Put(seqKey(seq), v); err != nil {
			return err
		}
		return tx.Bucket(bucketState).Put(seqKey(seq), lockState{}.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	q = openAt(t, path, Options{})
	send(t, q, "new", "2")
	peeked, err := q.Peek(0, 10, false)
	if err != nil || len(peeked) != 2 || peeked[0].ID != "old" || string(peeked[0].Body) != `{"x":1}` || peeked[1].ID != "new" {
		t.Fatalf("peek = %+v, %v; want old then new", peeked, err)
	}
	ds := receive(t, q, 10)
	if len(ds) != 2 || ds[0].ID != "old" || string(ds[0].Body) != `{"x":1}` || ds[0].ContentType != "application/json" {
		t.Fatalf("received %+v, want the JSON-stored message first", ds)
	}
	for _, d := range ds {
		if err := q.Complete(context.Background(), d); err != nil {
			t.Fatalf("complete %s: %v", d.ID, err)
		}
	}
	if s := stats(t, q); s.Active != 0 || s.Completed != 2 {
		t.Errorf("stats %+v, want both completed", s)
	}
}
