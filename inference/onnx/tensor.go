package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// TensorProto.DataType values.
const (
	Float    = 1
	Uint8    = 2
	Int8     = 3
	Uint16   = 4
	Int16    = 5
	Int32    = 6
	Int64    = 7
	String   = 8
	Bool     = 9
	Float16  = 10
	Double   = 11
	Uint32   = 12
	Uint64   = 13
	BFloat16 = 16
)

var typeNames = map[int32]string{Float: "float", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", String: "string", Bool: "bool", Float16: "float16", Double: "double",
	Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16"}

// TypeName names a TensorProto.DataType.
func TypeName(t int32) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "type " + strconv.Itoa(int(t))
}

// Tensor is a dense tensor. Numeric elements of every type are held in F
// as float64, each exactly the value its type can hold (a float32 element is
// a float64 that is a float32, an int64 one an integer within ±2^53);
// string elements are in S.
//
// A ZipMap's output, a sequence of maps from class to probability, is the
// [N, C] float tensor of the probabilities with the classes in IntKeys or
// StrKeys.
type Tensor struct {
	Name    string
	Type    int32
	Shape   []int
	F       []float64
	S       []string
	IntKeys []int64
	StrKeys []string
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	if t.Type == String {
		return len(t.S)
	}
	return len(t.F)
}

func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > MaxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, MaxElements)
		}
		n *= d
	}
	return n, nil
}

// newTensor allocates a zero tensor, within MaxElements.
func newTensor(typ int32, shape []int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	t := &Tensor{Type: typ, Shape: append([]int{}, shape...)}
	if typ == String {
		t.S = make([]string, n)
	} else {
		t.F = make([]float64, n)
	}
	return t, nil
}

// isFloat says whether a type is a floating-point one.
func isFloat(t int32) bool {
	return t == Float || t == Double || t == Float16 || t == BFloat16
}

// fit rounds (or wraps) v to what an element of type t holds, as a C cast
// from double (or from int64, for the integer types) does.
func fit(t int32, v float64) float64 {
	switch t {
	case Float:
		return float64(float32(v))
	case Double:
		return v
	case Float16:
		return halfToFloat(floatToHalf(v))
	case BFloat16:
		return bfloatToFloat(floatToBfloat(v))
	case Bool:
		if v != 0 {
			return 1
		}
		return 0
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	i := int64(v)
	switch t {
	case Uint8:
		return float64(uint8(i))
	case Int8:
		return float64(int8(i))
	case Uint16:
		return float64(uint16(i))
	case Int16:
		return float64(int16(i))
	case Int32:
		return float64(int32(i))
	case Uint32:
		return float64(uint32(i))
	}
	return float64(i)
}

// floatToHalf rounds to IEEE 754 binary16, to nearest even.
func floatToHalf(v float64) uint16 {
	f := float32(v)
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	if f != f {
		return sign | 0x7e00
	}
	a := math.Abs(v)
	switch {
	case a >= 65520: // rounds to infinity
		return sign | 0x7c00
	case a < 0x1p-25:
		return sign
	}
	// Scale into the integer range of the significand and round there,
	// from the double (rounding twice through float32 could differ).
	exp := math.Ilogb(a)
	if exp < -14 {
		exp = -14
	}
	m := math.RoundToEven(math.Ldexp(a, 10-exp)) // significand with its implicit bit
	if m >= 2048 {
		m /= 2
		exp++
	}
	if m < 1024 { // subnormal
		return sign | uint16(m)
	}
	return sign | uint16(exp+15)<<10 | uint16(m-1024)
}

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1024+m, exp-25)
}

// floatToBfloat truncates a float32 to bfloat16 rounding to nearest even,
// as ONNX's reference (numpy_helper) does.
func floatToBfloat(v float64) uint16 {
	b := math.Float32bits(float32(v))
	if float32(v) != float32(v) {
		return 0x7fc0
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func bfloatToFloat(h uint16) float64 {
	return float64(math.Float32frombits(uint32(h) << 16))
}

// DecodeTensor parses a serialized TensorProto (as the ONNX test data's
// input_*.pb and output_*.pb files hold).
func DecodeTensor(b []byte) (*Tensor, error) {
	return (&decoder{}).tensor(b)
}

func (d *decoder) tensor(b []byte) (*Tensor, error) {
	t := &Tensor{}
	var dims []int64
	var raw []byte
	var hasRaw, external bool
	var f32 []float32
	var f64 []float64
	var ints []int64 // int32_data, int64_data, uint64_data
	var strs [][]byte
	err := eachField(b, func(f field) error {
		var err error
		var i int64
		switch f.num {
		case 1:
			if dims, err = d.appendInts(dims, f, "dims"); err == nil && len(dims) > maxRank {
				err = fmt.Errorf("more than %d dimensions", maxRank)
			}
		case 2:
			i, err = f.int64("data_type")
			t.Type = int32(i)
		case 4:
			f32, err = d.appendFloats(f32, f, "float_data")
		case 5, 7:
			ints, err = d.appendInts(ints, f, "int_data")
		case 11:
			if f.typ == protowire.VarintType {
				ints = append(ints, int64(f.u))
			} else {
				ints, err = d.appendInts(ints, f, "uint64_data")
			}
		case 6:
			if err = f.want(protowire.BytesType, "string_data"); err == nil {
				if err = d.spend(1); err == nil {
					strs = append(strs, f.bytes)
				}
			}
		case 8:
			t.Name, err = f.str("tensor name")
		case 9:
			if err = f.want(protowire.BytesType, "raw_data"); err == nil {
				raw, hasRaw = f.bytes, true
			}
		case 10:
			f64, err = d.appendDoubles(f64, f, "double_data")
		case 13:
			external = true
		case 14:
			i, err = f.int64("data_location")
			external = external || i == 1
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if external {
		return nil, fmt.Errorf("tensor %q: external data is not supported: save the model with its weights inside", t.Name)
	}
	t.Shape = make([]int, len(dims))
	for i, v := range dims {
		if v < 0 || v > MaxElements {
			return nil, fmt.Errorf("tensor %q: dimension %d", t.Name, v)
		}
		t.Shape[i] = int(v)
	}
	n, err := numel(t.Shape)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if err := t.fill(n, raw, hasRaw, f32, f64, ints, strs); err != nil {
		return nil, fmt.Errorf("tensor %q of type %s and shape %v: %w", t.Name, TypeName(t.Type), t.Shape, err)
	}
	return t, nil
}

// elemSize is the raw_data size of one element.
var elemSize = map[int32]int{Float: 4, Uint8: 1, Int8: 1, Uint16: 2, Int16: 2, Int32: 4, Int64: 8,
	Bool: 1, Float16: 2, Double: 8, Uint32: 4, Uint64: 8, BFloat16: 2}

func (t *Tensor) fill(n int, raw []byte, hasRaw bool, f32 []float32, f64 []float64, ints []int64, strs [][]byte) error {
	if t.Type == String {
		if hasRaw {
			return errors.New("string tensors cannot use raw_data")
		}
		if len(strs) != n {
			return fmt.Errorf("has %d strings, want %d", len(strs), n)
		}
		t.S = make([]string, n)
		for i, s := range strs {
			t.S[i] = string(s)
		}
		return nil
	}
	size, ok := elemSize[t.Type]
	if !ok {
		return errors.New("the element type is not supported")
	}
	// Check the count before allocating: a few bytes of dims must not
	// allocate what the data does not hold.
	got := len(ints)
	switch {
	case hasRaw:
		got = len(raw) / size
		if len(raw) != n*size {
			return fmt.Errorf("raw_data has %d bytes, want %d", len(raw), n*size)
		}
	case t.Type == Float:
		got = len(f32)
	case t.Type == Double:
		got = len(f64)
	}
	if got != n {
		return fmt.Errorf("has %d values, want %d", got, n)
	}
	t.F = make([]float64, n)
	if hasRaw {
		for i := range t.F {
			b := raw[i*size:]
			var v float64
			switch t.Type {
			case Float:
				v = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
			case Double:
				v = math.Float64frombits(binary.LittleEndian.Uint64(b))
			case Float16:
				v = halfToFloat(binary.LittleEndian.Uint16(b))
			case BFloat16:
				v = bfloatToFloat(binary.LittleEndian.Uint16(b))
			case Uint8, Bool:
				v = float64(b[0])
			case Int8:
				v = float64(int8(b[0]))
			case Uint16:
				v = float64(binary.LittleEndian.Uint16(b))
			case Int16:
				v = float64(int16(binary.LittleEndian.Uint16(b)))
			case Int32:
				v = float64(int32(binary.LittleEndian.Uint32(b)))
			case Uint32:
				v = float64(binary.LittleEndian.Uint32(b))
			case Int64:
				i := int64(binary.LittleEndian.Uint64(b))
				if i > maxInt64Exact || i < -maxInt64Exact {
					return fmt.Errorf("int64 value %d is beyond ±2^53", i)
				}
				v = float64(i)
			case Uint64:
				u := binary.LittleEndian.Uint64(b)
				if u > maxInt64Exact {
					return fmt.Errorf("uint64 value %d is beyond 2^53", u)
				}
				v = float64(u)
			}
			t.F[i] = fit(t.Type, v)
		}
		return nil
	}
	switch t.Type {
	case Float:
		for i := 0; i < n; i++ {
			t.F[i] = float64(f32[i])
		}
	case Double:
		copy(t.F, f64)
	default:
		for i := 0; i < n; i++ {
			v := ints[i]
			switch t.Type {
			case Float16:
				t.F[i] = halfToFloat(uint16(v))
			case BFloat16:
				t.F[i] = bfloatToFloat(uint16(v))
			case Uint64:
				if uint64(v) > maxInt64Exact {
					return fmt.Errorf("uint64 value %d is beyond 2^53", uint64(v))
				}
				t.F[i] = float64(uint64(v))
			default:
				if v > maxInt64Exact || v < -maxInt64Exact {
					return fmt.Errorf("integer value %d is beyond ±2^53", v)
				}
				t.F[i] = fit(t.Type, float64(v))
			}
		}
	}
	return nil
}
