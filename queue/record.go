package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"time"
)

// Active messages are stored in a binary record rather than as JSON: a
// signal batch body is up to 256 KiB, and JSON kept it base64-encoded and
// had Receive validate and decode all of it inside the write transaction
// that takes the lock (about a millisecond and a half per 190 KiB batch,
// most of the embedded queue's CPU in make bench-signals). A record is
//
//	recordV1 flags:byte enqueuedAt:int64 id contentType nprops:uvarint (key value)* body
//
// with each string uvarint-length-prefixed and the body taking the rest.
// Records written as JSON by earlier versions start with '{' and are still
// read, so a queue file survives the upgrade with its messages.
const recordV1 = 0x01

const (
	flagNilBody = 1 << iota // Body was nil rather than empty, as JSON's null kept it
	flagNoEnqueuedAt
)

var errCorruptRecord = errors.New("corrupt message record")

func encodeMessage(m Message) []byte {
	size := 1 + 1 + 8 + 3*binary.MaxVarintLen64 + len(m.ID) + len(m.ContentType) + len(m.Body)
	for k, v := range m.Properties {
		size += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, size)
	var flags byte
	if m.Body == nil {
		flags |= flagNilBody
	}
	at := int64(math.MinInt64)
	if m.EnqueuedAt.IsZero() {
		flags |= flagNoEnqueuedAt
	} else {
		at = m.EnqueuedAt.UnixNano()
	}
	b = append(b, recordV1, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = appendString(b, m.ID)
	b = appendString(b, m.ContentType)
	b = binary.AppendUvarint(b, uint64(len(m.Properties)))
	for k, v := range m.Properties {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return append(b, m.Body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeMessage reads a record, or a JSON message an earlier version wrote.
// It copies everything out of v, which bbolt owns.
func decodeMessage(v []byte) (Message, error) {
	var m Message
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &m)
		return m, err
	}
	if len(v) < 10 || v[0] != recordV1 {
		return m, errCorruptRecord
	}
	flags := v[1]
	if flags&flagNoEnqueuedAt == 0 {
		m.EnqueuedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[2:]))).UTC()
	}
	r := v[10:]
	var ok bool
	if m.ID, r, ok = readString(r); !ok {
		return m, errCorruptRecord
	}
	if m.ContentType, r, ok = readString(r); !ok {
		return m, errCorruptRecord
	}
	n, w := binary.Uvarint(r)
	if w <= 0 || n > uint64(len(r)) {
		return m, errCorruptRecord
	}
	r = r[w:]
	if n > 0 {
		m.Properties = make(map[string]string, n)
		for range n {
			var k, val string
			if k, r, ok = readString(r); !ok {
				return m, errCorruptRecord
			}
			if val, r, ok = readString(r); !ok {
				return m, errCorruptRecord
			}
			m.Properties[k] = val
		}
	}
	if flags&flagNilBody == 0 {
		m.Body = bytes.Clone(r)
		if m.Body == nil {
			m.Body = []byte{}
		}
	}
	return m, nil
}

func readString(r []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(r)
	if w <= 0 || n > uint64(len(r)-w) {
		return "", nil, false
	}
	return string(r[w : w+int(n)]), r[w+int(n):], true
}
