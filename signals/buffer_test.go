package signals

import (
	"path/filepath"
	"testing"
	"time"
)

// windowMessage is validMessage for the i-th window of a site.
func windowMessage(site string, i int) Message {
	m := validMessage()
	m.Site = site
	m.WindowStart = m.WindowStart.Add(time.Duration(i) * time.Minute)
	m.WindowEnd = m.WindowStart.Add(time.Minute)
	m.MessageID = MessageID(m.Site, m.Model, m.Version, m.WindowStart)
	return m
}

func openBuffer(t *testing.T, path string, opts BufferOptions) *Buffer {
	t.Helper()
	b, err := OpenBuffer(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ids(t *testing.T, b *Buffer) []string {
	t.Helper()
	items, err := b.Peek(1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestBufferBoundDropsOldestAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signals", "buffer.db")
	b := openBuffer(t, path, BufferOptions{MaxMessages: 5})
	var want []string
	for i := range 8 {
		m := windowMessage("s", i)
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.MessageID)
	}
	// Adding a message already buffered stores nothing.
	if err := b.Add(windowMessage("s", 7)); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = openBuffer(t, path, BufferOptions{MaxMessages: 5})
	defer b.Close()
	got := ids(t, b)
	if len(got) != 5 || got[0] != want[3] || got[4] != want[7] {
		t.Fatalf("after restart: %v, want the newest five in order %v", got, want[3:])
	}
	st, _ := b.Stats()
	if st.Messages != 5 || st.Dropped != 3 || st.Added != 8 || st.Bytes <= 0 {
		t.Errorf("stats %+v", st)
	}
	items, _ := b.Peek(2, 1<<20)
	if err := b.Remove(items[0].Seq, items[1].Seq, 12345); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, b); len(got) != 3 || got[0] != want[5] {
		t.Errorf("after removing two: %v", got)
	}
	// A removed message may be buffered again (it is then a duplicate the
	// queue drops), but never twice at once.
	if err := b.Add(windowMessage("s", 3)); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, b); len(got) != 4 || got[3] != want[3] {
		t.Errorf("re-added: %v", got)
	}
}

func TestBufferByteBound(t *testing.T) {
	size := int64(len(encode(t, windowMessage("s", 0))))
	b := openBuffer(t, filepath.Join(t.TempDir(), "b.db"), BufferOptions{MaxBytes: 3*size + 3*(2+36) + 10})
	defer b.Close()
	for i := range 6 {
		if err := b.Add(windowMessage("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := b.Stats()
	if st.Messages != 3 || st.Dropped != 3 {
		t.Errorf("stats %+v, want 3 kept and 3 dropped", st)
	}
	tiny := openBuffer(t, filepath.Join(t.TempDir(), "tiny.db"), BufferOptions{MaxBytes: 10})
	defer tiny.Close()
	if err := tiny.Add(windowMessage("s", 0)); err == nil {
		t.Error("a message larger than the whole buffer was accepted")
	}
	// Peek stops at its byte bound but returns at least one message.
	if items, _ := b.Peek(10, 1); len(items) != 1 {
		t.Errorf("Peek with a 1-byte bound returned %d", len(items))
	}
}
