package signals

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// Buffer defaults: at one message a minute per model version, 10,000
// messages keep about a week of a site's signals for one model.
const (
	DefaultBufferMessages = 10_000
	DefaultBufferBytes    = 64 << 20
)

// BufferOptions bounds a Buffer. Zero values take the defaults.
type BufferOptions struct {
	MaxMessages int
	MaxBytes    int64
}

// Buffer keeps signal messages on local disk until they are sent, in the
// order they were added, each once (keyed by message ID). It is bounded:
// adding beyond MaxMessages or MaxBytes drops the oldest messages, and
// counts them, because the latest figures matter most when a site comes
// back. It is one bbolt file, so a crash or restart loses nothing that
// Add returned for.
type Buffer struct {
	db     *bbolt.DB
	opts   BufferOptions
	notify chan struct{}
}

var (
	bucketBuffered = []byte("messages") // seq -> idLen(2) + id + body
	bucketIDs      = []byte("ids")      // message id -> seq
	bucketMeta     = []byte("meta")     // counter name -> uint64
	metaCount      = []byte("count")
	metaBytes      = []byte("bytes")
	metaDropped    = []byte("dropped")
	metaAdded      = []byte("added")
)

// Buffered is one message waiting to be sent.
type Buffered struct {
	Seq  uint64
	ID   string
	Body []byte
}

// BufferStats are a buffer's counts. Dropped and Added count since the file
// was created.
type BufferStats struct {
	Messages int64
	Bytes    int64
	Dropped  int64
	Added    int64
}

// OpenBuffer opens (creating if needed) the buffer file at path.
func OpenBuffer(path string, opts BufferOptions) (*Buffer, error) {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultBufferMessages
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultBufferBytes
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("signals: buffer directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("signals: open buffer %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketBuffered, bucketIDs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("signals: open buffer %s: %w", path, err)
	}
	return &Buffer{db: db, opts: opts, notify: make(chan struct{}, 1)}, nil
}

// Close closes the file.
func (b *Buffer) Close() error { return b.db.Close() }

// Notify is signalled after each Add that stored a message.
func (b *Buffer) Notify() <-chan struct{} { return b.notify }

// Add stores m after the messages already buffered, then drops the oldest
// while the buffer is over its bounds. A message whose ID is buffered
// already is not stored again. Add has returned nil only once the message
// is on disk.
func (b *Buffer) Add(m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("signals: encode message %q: %w", m.MessageID, err)
	}
	if int64(len(body)) > b.opts.MaxBytes || len(m.MessageID) > 0xffff {
		return fmt.Errorf("signals: message %q is %d bytes: larger than the whole buffer (%d)", m.MessageID, len(body), b.opts.MaxBytes)
	}
	stored := false
	err = b.db.Update(func(tx *bbolt.Tx) error {
		ids, msgs, meta := tx.Bucket(bucketIDs), tx.Bucket(bucketBuffered), tx.Bucket(bucketMeta)
		if ids.Get([]byte(m.MessageID)) != nil {
			return nil
		}
		seq, err := msgs.NextSequence()
		if err != nil {
			return err
		}
		key := binary.BigEndian.AppendUint64(nil, seq)
		v := binary.BigEndian.AppendUint16(nil, uint16(len(m.MessageID)))
		v = append(append(v, m.MessageID...), body...)
		if err := msgs.Put(key, v); err != nil {
			return err
		}
		if err := ids.Put([]byte(m.MessageID), key); err != nil {
			return err
		}
		stored = true
		count, size := get(meta, metaCount)+1, get(meta, metaBytes)+uint64(len(v))
		dropped := uint64(0)
		c := msgs.Cursor()
		for k, old := c.First(); k != nil && (count > uint64(b.opts.MaxMessages) || size > uint64(b.opts.MaxBytes)); k, old = c.First() {
			old = bytes.Clone(old) // bbolt's slices do not survive writes to the bucket
			if err := ids.Delete(old[2 : 2+binary.BigEndian.Uint16(old)]); err != nil {
				return err
			}
			count, size = count-1, size-uint64(len(old))
			if err := c.Delete(); err != nil {
				return err
			}
			dropped++
		}
		return putAll(meta, map[string]uint64{
			string(metaCount): count, string(metaBytes): size,
			string(metaDropped): get(meta, metaDropped) + dropped, string(metaAdded): get(meta, metaAdded) + 1,
		})
	})
	if err != nil {
		return fmt.Errorf("signals: buffer message %q: %w", m.MessageID, err)
	}
	if stored {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// Peek returns up to max of the oldest messages, oldest first, stopping
// before maxBytes of bodies (but always returning at least one).
func (b *Buffer) Peek(max, maxBytes int) ([]Buffered, error) {
	var out []Buffered
	size := 0
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketBuffered).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			n := int(binary.BigEndian.Uint16(v))
			body := v[2+n:]
			if len(out) > 0 && size+len(body) > maxBytes {
				break
			}
			size += len(body)
			out = append(out, Buffered{
				Seq:  binary.BigEndian.Uint64(k),
				ID:   string(v[2 : 2+n]),
				Body: append([]byte(nil), body...), // bbolt's memory is valid only in the transaction
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("signals: read buffer: %w", err)
	}
	return out, nil
}

// Remove deletes sent messages. A sequence number no longer buffered (it
// was dropped meanwhile) is ignored.
func (b *Buffer) Remove(seqs ...uint64) error {
	err := b.db.Update(func(tx *bbolt.Tx) error {
		ids, msgs, meta := tx.Bucket(bucketIDs), tx.Bucket(bucketBuffered), tx.Bucket(bucketMeta)
		count, size := get(meta, metaCount), get(meta, metaBytes)
		for _, seq := range seqs {
			key := binary.BigEndian.AppendUint64(nil, seq)
			v := bytes.Clone(msgs.Get(key))
			if v == nil {
				continue
			}
			if err := ids.Delete(v[2 : 2+binary.BigEndian.Uint16(v)]); err != nil {
				return err
			}
			count, size = count-1, size-uint64(len(v))
			if err := msgs.Delete(key); err != nil {
				return err
			}
		}
		return putAll(meta, map[string]uint64{string(metaCount): count, string(metaBytes): size})
	})
	if err != nil {
		return fmt.Errorf("signals: remove from buffer: %w", err)
	}
	return nil
}

// Stats returns the buffer's counts.
func (b *Buffer) Stats() (BufferStats, error) {
	var s BufferStats
	err := b.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		s = BufferStats{
			Messages: int64(get(meta, metaCount)), Bytes: int64(get(meta, metaBytes)),
			Dropped: int64(get(meta, metaDropped)), Added: int64(get(meta, metaAdded)),
		}
		return nil
	})
	return s, err
}

func get(b *bbolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putAll(b *bbolt.Bucket, kv map[string]uint64) error {
	for k, v := range kv {
		if err := b.Put([]byte(k), binary.BigEndian.AppendUint64(nil, v)); err != nil {
			return err
		}
	}
	return nil
}
