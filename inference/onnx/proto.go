// Package onnx reads ONNX models (onnx.proto, IR version 3 and later) and
// evaluates the operators a model served at the edge needs: the ONNX-ML
// tree ensembles, linear models and preprocessing operators that skl2onnx
// and onnxmltools emit, and the dense operators of a small MLP. It is pure
// Go, decodes the protobuf by hand on protowire, and checks every value of
// the file before a model runs, so a corrupt or hostile file is an error,
// never a panic or an unbounded allocation.
package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits on a model, far above what a model served at the edge needs, so
// that a hostile file fails to load instead of exhausting memory.
const (
	MaxModelBytes  = 1 << 30 // the serialized ModelProto
	MaxNodes       = 100_000 // nodes of the graph
	MaxElements    = 1 << 26 // elements of any one tensor, in the file or computed
	MaxAttrValues  = 1 << 26 // values of any one repeated attribute
	maxRank        = 16      // dimensions of a tensor
	maxTypeNesting = 8       // sequence(map(...)) nesting of a TypeProto
	maxStringBytes = 1 << 20 // one string value
	maxTotalValues = 1 << 28 // all tensor and attribute values of a file together
	maxInt64Exact  = 1 << 53 // int64 values are held as float64, exactly up to here
)

// ErrTruncated is wrapped by every error about a file that ends early.
var ErrTruncated = errors.New("truncated or corrupt protobuf")

// Model is the part of an ONNX ModelProto that evaluation needs.
type Model struct {
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	Opsets          map[string]int64 // domain ("" is ai.onnx) → version
	Graph           *Graph
}

// Graph is a GraphProto: nodes in topological order, initializers, and the
// graph's inputs and outputs.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is a NodeProto.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string
	Outputs []string
	Attrs   map[string]*Attr
}

// Attr is an AttributeProto. Graph-valued attributes (If, Loop, Scan) are
// recorded by type only: no supported operator takes one.
type Attr struct {
	Name    string
	Type    int32
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// AttributeProto.AttributeType values.
const (
	AttrFloat   = 1
	AttrInt     = 2
	AttrString  = 3
	AttrTensor  = 4
	AttrGraph   = 5
	AttrFloats  = 6
	AttrInts    = 7
	AttrStrings = 8
)

// ValueInfo is a ValueInfoProto: a graph input's or output's name and type.
type ValueInfo struct {
	Name string
	Type TypeInfo
}

// TypeInfo is a TypeProto. Kind is "tensor", "sequence", "map", "optional"
// or "" (absent or another kind); a tensor's Shape has -1 for a symbolic or
// unknown dimension and is nil when the rank is unknown.
type TypeInfo struct {
	Kind     string
	ElemType int32 // a tensor's element type, a map's key type
	Shape    []int64
	HasShape bool
	Elem     *TypeInfo // a sequence's, optional's or map's value type
}

// decoder carries the budget of values one file may hold.
type decoder struct {
	values int64
}

func (d *decoder) spend(n int) error {
	d.values += int64(n)
	if d.values > maxTotalValues {
		return fmt.Errorf("the file holds more than %d values", maxTotalValues)
	}
	return nil
}

// field is one protobuf field: its number and wire type, and its varint,
// fixed or length-delimited value.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	u     uint64
	bytes []byte
}

// eachField calls fn for every field of a message, and fails on a malformed
// tag or value instead of reading past the end.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad field tag", ErrTruncated)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			// Groups are not used by onnx.proto.
			return fmt.Errorf("%w: field %d has wire type %d", ErrTruncated, num, typ)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrTruncated, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func (f field) want(t protowire.Type, what string) error {
	if f.typ != t {
		return fmt.Errorf("%s (field %d) has wire type %d, want %d", what, f.num, f.typ, t)
	}
	return nil
}

func (f field) str(what string) (string, error) {
	if err := f.want(protowire.BytesType, what); err != nil {
		return "", err
	}
	if len(f.bytes) > maxStringBytes {
		return "", fmt.Errorf("%s is longer than %d bytes", what, maxStringBytes)
	}
	return string(f.bytes), nil
}

func (f field) int64(what string) (int64, error) {
	if err := f.want(protowire.VarintType, what); err != nil {
		return 0, err
	}
	return int64(f.u), nil
}

// appendInts reads a repeated int64 field, packed or not.
func (d *decoder) appendInts(dst []int64, f field, what string) ([]int64, error) {
	if f.typ == protowire.VarintType {
		if err := d.spend(1); err != nil {
			return nil, err
		}
		return append(dst, int64(f.u)), nil
	}
	if err := f.want(protowire.BytesType, what); err != nil {
		return nil, err
	}
	b := f.bytes
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %s: bad varint", ErrTruncated, what)
		}
		b = b[n:]
		if len(dst) >= MaxAttrValues {
			return nil, fmt.Errorf("%s has more than %d values", what, MaxAttrValues)
		}
		dst = append(dst, int64(v))
	}
	return dst, d.spend(len(dst))
}

// appendFixed32 reads a repeated float field, packed or not.
func (d *decoder) appendFloats(dst []float32, f field, what string) ([]float32, error) {
	if f.typ == protowire.Fixed32Type {
		if err := d.spend(1); err != nil {
			return nil, err
		}
		return append(dst, math.Float32frombits(uint32(f.u))), nil
	}
	if err := f.want(protowire.BytesType, what); err != nil {
		return nil, err
	}
	if len(f.bytes)%4 != 0 {
		return nil, fmt.Errorf("%w: %s: packed floats of %d bytes", ErrTruncated, what, len(f.bytes))
	}
	if err := d.spend(len(f.bytes) / 4); err != nil {
		return nil, err
	}
	for b := f.bytes; len(b) > 0; b = b[4:] {
		dst = append(dst, math.Float32frombits(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24))
	}
	return dst, nil
}

// appendDoubles reads a repeated double field, packed or not.
func (d *decoder) appendDoubles(dst []float64, f field, what string) ([]float64, error) {
	if f.typ == protowire.Fixed64Type {
		if err := d.spend(1); err != nil {
			return nil, err
		}
		return append(dst, math.Float64frombits(f.u)), nil
	}
	if err := f.want(protowire.BytesType, what); err != nil {
		return nil, err
	}
	if len(f.bytes)%8 != 0 {
		return nil, fmt.Errorf("%w: %s: packed doubles of %d bytes", ErrTruncated, what, len(f.bytes))
	}
	if err := d.spend(len(f.bytes) / 8); err != nil {
		return nil, err
	}
	for b := f.bytes; len(b) > 0; b = b[8:] {
		v, _ := protowire.ConsumeFixed64(b)
		dst = append(dst, math.Float64frombits(v))
	}
	return dst, nil
}

// Decode parses a serialized ModelProto.
func Decode(data []byte) (*Model, error) {
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("the model is larger than %d bytes", MaxModelBytes)
	}
	d := &decoder{}
	m := &Model{Opsets: map[string]int64{}}
	err := eachField(data, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.int64("ir_version")
		case 2:
			m.ProducerName, err = f.str("producer_name")
		case 3:
			m.ProducerVersion, err = f.str("producer_version")
		case 7:
			if err = f.want(protowire.BytesType, "graph"); err == nil {
				m.Graph, err = d.graph(f.bytes)
			}
		case 8:
			if err = f.want(protowire.BytesType, "opset_import"); err == nil {
				err = d.opset(f.bytes, m.Opsets)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Graph == nil {
		return nil, errors.New("the model has no graph")
	}
	return m, nil
}

func (d *decoder) opset(b []byte, into map[string]int64) error {
	var domain string
	var version int64
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			domain, err = f.str("opset_import.domain")
		case 2:
			version, err = f.int64("opset_import.version")
		}
		return err
	})
	if err != nil {
		return err
	}
	if domain == "ai.onnx" {
		domain = ""
	}
	if len(into) > 1000 {
		return errors.New("too many opset_import entries")
	}
	into[domain] = version
	return nil
}

func (d *decoder) graph(b []byte) (*Graph, error) {
	g := &Graph{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			if len(g.Nodes) >= MaxNodes {
				return fmt.Errorf("the graph has more than %d nodes", MaxNodes)
			}
			var n *Node
			if err = f.want(protowire.BytesType, "node"); err == nil {
				if n, err = d.node(f.bytes); err == nil {
					g.Nodes = append(g.Nodes, n)
				}
			}
		case 2:
			g.Name, err = f.str("graph.name")
		case 5:
			if len(g.Initializers) >= MaxNodes {
				return fmt.Errorf("the graph has more than %d initializers", MaxNodes)
			}
			var t *Tensor
			if err = f.want(protowire.BytesType, "initializer"); err == nil {
				if t, err = d.tensor(f.bytes); err == nil {
					g.Initializers = append(g.Initializers, t)
				}
			}
		case 15:
			return errors.New("sparse initializers are not supported")
		case 11, 12:
			if len(g.Inputs)+len(g.Outputs) >= MaxNodes {
				return errors.New("the graph has too many inputs and outputs")
			}
			var v ValueInfo
			if err = f.want(protowire.BytesType, "graph input or output"); err == nil {
				if v, err = d.valueInfo(f.bytes); err == nil {
					if f.num == 11 {
						g.Inputs = append(g.Inputs, v)
					} else {
						g.Outputs = append(g.Outputs, v)
					}
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	return g, nil
}

func (d *decoder) node(b []byte) (*Node, error) {
	n := &Node{Attrs: map[string]*Attr{}}
	err := eachField(b, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1, 2:
			if len(n.Inputs)+len(n.Outputs) >= 10_000 {
				return errors.New("too many inputs and outputs")
			}
			if s, err = f.str("node input or output"); err == nil {
				if f.num == 1 {
					n.Inputs = append(n.Inputs, s)
				} else {
					n.Outputs = append(n.Outputs, s)
				}
			}
		case 3:
			n.Name, err = f.str("node.name")
		case 4:
			n.OpType, err = f.str("node.op_type")
		case 7:
			n.Domain, err = f.str("node.domain")
		case 5:
			var a *Attr
			if err = f.want(protowire.BytesType, "attribute"); err == nil {
				if a, err = d.attr(f.bytes); err == nil {
					if _, dup := n.Attrs[a.Name]; dup {
						return fmt.Errorf("attribute %q appears twice", a.Name)
					}
					if len(n.Attrs) >= 1000 {
						return errors.New("too many attributes")
					}
					n.Attrs[a.Name] = a
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
	}
	if n.Domain == "ai.onnx" {
		n.Domain = ""
	}
	return n, nil
}

func (d *decoder) attr(b []byte) (*Attr, error) {
	a := &Attr{}
	err := eachField(b, func(f field) error {
		var err error
		var i int64
		switch f.num {
		case 1:
			a.Name, err = f.str("attribute name")
		case 20:
			i, err = f.int64("attribute type")
			a.Type = int32(i)
		case 2:
			if err = f.want(protowire.Fixed32Type, "attribute f"); err == nil {
				a.F = math.Float32frombits(uint32(f.u))
			}
		case 3:
			a.I, err = f.int64("attribute i")
		case 4:
			if err = f.want(protowire.BytesType, "attribute s"); err == nil {
				a.S = f.bytes
			}
		case 5:
			if err = f.want(protowire.BytesType, "attribute t"); err == nil {
				a.T, err = d.tensor(f.bytes)
			}
		case 7:
			a.Floats, err = d.appendFloats(a.Floats, f, "attribute floats")
		case 8:
			a.Ints, err = d.appendInts(a.Ints, f, "attribute ints")
		case 9:
			if err = f.want(protowire.BytesType, "attribute strings"); err == nil {
				if len(a.Strings) >= MaxAttrValues {
					return errors.New("too many strings")
				}
				if err = d.spend(1); err == nil {
					a.Strings = append(a.Strings, f.bytes)
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
	}
	return a, nil
}

func (d *decoder) valueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			v.Name, err = f.str("value name")
		case 2:
			if err = f.want(protowire.BytesType, "value type"); err == nil {
				v.Type, err = d.typeInfo(f.bytes, 0)
			}
		}
		return err
	})
	if err != nil {
		return v, fmt.Errorf("value %q: %w", v.Name, err)
	}
	return v, nil
}

func (d *decoder) typeInfo(b []byte, depth int) (TypeInfo, error) {
	var t TypeInfo
	if depth > maxTypeNesting {
		return t, fmt.Errorf("types nested deeper than %d", maxTypeNesting)
	}
	elem := func(b []byte) error {
		e, err := d.typeInfo(b, depth+1)
		t.Elem = &e
		return err
	}
	err := eachField(b, func(f field) error {
		if f.num == 6 { // denotation
			return nil
		}
		if err := f.want(protowire.BytesType, "type"); err != nil {
			return err
		}
		switch f.num {
		case 1:
			t.Kind = "tensor"
			return eachField(f.bytes, func(g field) error {
				switch g.num {
				case 1:
					i, err := g.int64("elem_type")
					t.ElemType = int32(i)
					return err
				case 2:
					if err := g.want(protowire.BytesType, "shape"); err != nil {
						return err
					}
					t.HasShape = true
					t.Shape = []int64{}
					return eachField(g.bytes, func(dim field) error {
						if dim.num != 1 {
							return nil
						}
						if err := dim.want(protowire.BytesType, "dim"); err != nil {
							return err
						}
						if len(t.Shape) >= maxRank {
							return fmt.Errorf("more than %d dimensions", maxRank)
						}
						v := int64(-1)
						err := eachField(dim.bytes, func(x field) error {
							if x.num == 1 {
								i, err := x.int64("dim_value")
								if err == nil && i >= 0 {
									v = i
								}
								return err
							}
							return nil
						})
						t.Shape = append(t.Shape, v)
						return err
					})
				}
				return nil
			})
		case 4, 9:
			t.Kind = map[protowire.Number]string{4: "sequence", 9: "optional"}[f.num]
			return eachField(f.bytes, func(g field) error {
				if g.num == 1 {
					if err := g.want(protowire.BytesType, "element type"); err != nil {
						return err
					}
					return elem(g.bytes)
				}
				return nil
			})
		case 5:
			t.Kind = "map"
			return eachField(f.bytes, func(g field) error {
				switch g.num {
				case 1:
					i, err := g.int64("key_type")
					t.ElemType = int32(i)
					return err
				case 2:
					if err := g.want(protowire.BytesType, "value type"); err != nil {
						return err
					}
					return elem(g.bytes)
				}
				return nil
			})
		}
		return nil
	})
	return t, err
}
