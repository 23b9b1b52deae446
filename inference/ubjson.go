package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// maxUBJSONDepth bounds the nesting of a UBJSON document. An XGBoost model
// nests six deep; the bound only keeps a hostile file from exhausting the
// stack.
const maxUBJSONDepth = 64

// ubjsonToJSON transcodes a Universal Binary JSON document (ubjson.org, draft
// 12, the form XGBoost >= 1.6 writes for "*.ubj" models) into JSON text, so
// that one decoder reads both encodings of an XGBoost model. It supports the
// optimized containers ($ type and # count markers) XGBoost uses for its
// arrays. Values JSON cannot carry (NaN, infinities) and counts larger than
// what the rest of the input could hold are errors, so the output stays
// within a small multiple of the input's size.
func ubjsonToJSON(data []byte) ([]byte, error) {
	d := ubjDecoder{data: data, out: make([]byte, 0, 2*len(data))}
	if err := d.value(d.marker(), 0); err != nil {
		return nil, err
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.pos != len(d.data) {
		return nil, fmt.Errorf("ubjson: %d bytes after the document", len(d.data)-d.pos)
	}
	return d.out, nil
}

type ubjDecoder struct {
	data []byte
	pos  int
	out  []byte
	err  error // the first read past the end
}

var errUBJSONTruncated = errors.New("ubjson: unexpected end of file (truncated?)")

func (d *ubjDecoder) take(n int) []byte {
	if n < 0 || len(d.data)-d.pos < n {
		if d.err == nil {
			d.err = errUBJSONTruncated
		}
		d.pos = len(d.data)
		return nil
	}
	b := d.data[d.pos : d.pos+n]
	d.pos += n
	return b
}

// marker returns the next marker, skipping no-ops; 0 at the end of input.
func (d *ubjDecoder) marker() byte {
	for {
		b := d.take(1)
		if b == nil {
			return 0
		}
		if b[0] != 'N' {
			return b[0]
		}
	}
}

// size of the payload of a value of type t, -1 when it varies.
func ubjSize(t byte) int {
	switch t {
	case 'Z', 'T', 'F':
		return 0
	case 'i', 'U', 'C':
		return 1
	case 'I':
		return 2
	case 'l', 'd':
		return 4
	case 'L', 'D':
		return 8
	}
	return -1
}

// integer reads an integer of type t.
func (d *ubjDecoder) integer(t byte) (int64, error) {
	n := ubjSize(t)
	b := d.take(n)
	if b == nil {
		return 0, d.err
	}
	switch t {
	case 'i':
		return int64(int8(b[0])), nil
	case 'U':
		return int64(b[0]), nil
	case 'I':
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case 'l':
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case 'L':
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return 0, fmt.Errorf("ubjson: marker %q at offset %d is not an integer type", t, d.pos-n-1)
}

// length reads a length or count: an integer with its own marker, at most
// limit.
func (d *ubjDecoder) length(what string, limit int) (int, error) {
	at := d.pos
	v, err := d.integer(d.marker())
	if err != nil {
		return 0, err
	}
	if v < 0 || v > int64(limit) {
		return 0, fmt.Errorf("ubjson: %s %d at offset %d is negative or larger than the rest of the file (truncated?)", what, v, at)
	}
	return int(v), nil
}

func (d *ubjDecoder) str() ([]byte, error) {
	n, err := d.length("string length", len(d.data)-d.pos)
	if err != nil {
		return nil, err
	}
	return d.take(n), d.err
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func (d *ubjDecoder) appendString(s []byte) {
	q, _ := json.Marshal(string(s))
	d.out = append(d.out, q...)
}

// value transcodes one value whose marker t has been read.
func (d *ubjDecoder) value(t byte, depth int) error {
	if d.err != nil {
		return d.err
	}
	switch t {
	case 'Z':
		d.out = append(d.out, "null"...)
	case 'T':
		d.out = append(d.out, "true"...)
	case 'F':
		d.out = append(d.out, "false"...)
	case 'i', 'U', 'I', 'l', 'L':
		v, err := d.integer(t)
		if err != nil {
			return err
		}
		d.out = strconv.AppendInt(d.out, v, 10)
	case 'd', 'D':
		at := d.pos
		var f float64
		bits := 32
		if t == 'd' {
			b := d.take(4)
			if b == nil {
				return d.err
			}
			f = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
		} else {
			b := d.take(8)
			if b == nil {
				return d.err
			}
			f, bits = math.Float64frombits(binary.BigEndian.Uint64(b)), 64
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("ubjson: number %v at offset %d is not finite", f, at)
		}
		// The shortest form that reads back as the same float32 (or
		// float64), so a float32 field decodes to the exact value.
		d.out = strconv.AppendFloat(d.out, f, 'g', -1, bits)
	case 'H':
		at := d.pos
		s, err := d.str()
		if err != nil {
			return err
		}
		if !json.Valid(s) || (len(s) > 0 && (s[0] == '"' || s[0] == '[' || s[0] == '{' || s[0] == 't' || s[0] == 'f' || s[0] == 'n')) {
			return fmt.Errorf("ubjson: high-precision number at offset %d is not a number", at)
		}
		d.out = append(d.out, s...)
	case 'C':
		b := d.take(1)
		if b == nil {
			return d.err
		}
		d.appendString(b)
	case 'S':
		s, err := d.str()
		if err != nil {
			return err
		}
		d.appendString(s)
	case '[', '{':
		if depth >= maxUBJSONDepth {
			return fmt.Errorf("ubjson: nested deeper than %d", maxUBJSONDepth)
		}
		return d.container(t, depth+1)
	default:
		return fmt.Errorf("ubjson: unknown marker %q at offset %d", t, d.pos-1)
	}
	return d.err
}

// container transcodes an array or object whose opening marker has been
// read, with or without the $ (type) and # (count) optimisations.
func (d *ubjDecoder) container(open byte, depth int) error {
	var typ byte
	count := -1
	m := d.marker()
	if m == '$' {
		typ = d.marker()
		if d.err != nil {
			return d.err
		}
		if bytes.IndexByte([]byte("ZTFiUIlLdDCSH"), typ) < 0 {
			return fmt.Errorf("ubjson: container type %q is not supported", typ)
		}
		if m = d.marker(); m != '#' {
			return fmt.Errorf("ubjson: a typed container needs a count (# marker) at offset %d", d.pos-1)
		}
	}
	if m == '#' {
		// Each element takes at least one byte of input (a key at least
		// two), except typed null/true/false, which take none: those are
		// bounded by the input's length too, so the output stays small.
		per := 1
		if typ != 0 {
			per = max(ubjSize(typ), 1)
		}
		n, err := d.length("count", (len(d.data)-d.pos)/per+1)
		if err != nil {
			return err
		}
		count = n
		m = 0
	}
	closeIn, closeOut := byte(']'), byte(']')
	d.out = append(d.out, '[')
	if open == '{' {
		closeIn, closeOut = '}', '}'
		d.out[len(d.out)-1] = '{'
	}
	for i := 0; count < 0 || i < count; i++ {
		if count < 0 {
			if m == 0 {
				m = d.marker()
			}
			if m == closeIn {
				break
			}
		}
		if i > 0 {
			d.out = append(d.out, ',')
		}
		if open == '{' {
			// Keys are strings without their S marker: the length's integer
			// marker comes first, which is m when it was read already.
			if m != 0 {
				d.pos--
			}
			key, err := d.str()
			if err != nil {
				return err
			}
			d.appendString(key)
			d.out = append(d.out, ':')
			m = 0
		}
		t := typ
		if t == 0 {
			if m != 0 {
				t = m
			} else {
				t = d.marker()
			}
		}
		m = 0
		if err := d.value(t, depth); err != nil {
			return err
		}
	}
	d.out = append(d.out, closeOut)
	return d.err
}
