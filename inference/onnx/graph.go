package onnx

import (
	"fmt"
	"sort"
	"strings"
)

// DomainML is the ONNX-ML operator domain.
const DomainML = "ai.onnx.ml"

// kernel is one node's compiled operator: it reads its inputs (never
// changing them, since initializers are shared by concurrent runs) and
// returns new outputs.
type kernel interface {
	run(in []*Tensor) ([]*Tensor, error)
}

// kernelMaker checks a node's attributes and compiles it, for the opset
// version of its domain the model imports.
type kernelMaker func(n *Node, opset int64) (kernel, error)

// kernels are the supported operators by domain and op_type.
var kernels = map[string]map[string]kernelMaker{"": {}, DomainML: {}}

// Supported lists the supported operators as "domain:op_type" (domain ""
// for ai.onnx), sorted.
func Supported() []string {
	var s []string
	for d, m := range kernels {
		for op := range m {
			s = append(s, d+":"+op)
		}
	}
	sort.Strings(s)
	return s
}

// IsSupported says whether an operator of a domain ("" or "ai.onnx" for
// the default one) is supported.
func IsSupported(domain, op string) bool {
	if domain == "ai.onnx" {
		domain = ""
	}
	_, ok := kernels[domain][op]
	return ok
}

// Program is a compiled graph, safe for concurrent use.
type Program struct {
	Model   *Model
	consts  map[string]*Tensor
	nodes   []compiled
	inputs  []ValueInfo // graph inputs that are not initializers
	outputs []ValueInfo
	// Every value a run holds has a slot, resolved here once: a run's
	// values are a slice, the initializers in their slots from the start.
	slots      int
	initial    []*Tensor // len slots: the initializers, nil elsewhere
	inSlots    []int     // of inputs
	outSlots   []int     // of outputs
	slotByName map[string]int
}

type compiled struct {
	node *Node
	k    kernel
	in   []int // slots of the node's inputs, -1 for an omitted one
	out  []int // slots of its outputs, -1 for an unnamed one
}

// slot is the slot of value name, a new one the first time.
func (p *Program) slot(name string) int {
	if i, ok := p.slotByName[name]; ok {
		return i
	}
	p.slotByName[name] = p.slots
	p.slots++
	return p.slots - 1
}

// Compile checks a decoded model and compiles each node: every operator
// must be supported (the error names the first one that is not, and its
// node), every attribute valid, and every node input defined by a graph
// input, an initializer or an earlier node.
func Compile(m *Model) (*Program, error) {
	g := m.Graph
	p := &Program{Model: m, consts: map[string]*Tensor{}, outputs: g.Outputs, slotByName: map[string]int{}}
	for _, t := range g.Initializers {
		p.consts[t.Name] = t
	}
	defined := map[string]bool{}
	for name := range p.consts {
		defined[name] = true
	}
	for _, in := range g.Inputs {
		if !defined[in.Name] {
			p.inputs = append(p.inputs, in)
			defined[in.Name] = true
		}
	}
	for i, n := range g.Nodes {
		domain := n.Domain
		makeK, ok := kernels[domain][n.OpType]
		if !ok {
			name := n.OpType
			if domain != "" {
				name = domain + "." + n.OpType
			}
			return nil, fmt.Errorf("operator %s (node %q, #%d) is not supported: the edge runtime supports %s",
				name, n.Name, i, strings.Join(Supported(), ", "))
		}
		opset, ok := m.Opsets[domain]
		if !ok {
			return nil, fmt.Errorf("node %q: the model imports no opset for domain %q", n.Name, domain)
		}
		for _, in := range n.Inputs {
			if in != "" && !defined[in] {
				return nil, fmt.Errorf("node %q (%s): input %q is not defined before it (the graph must be in topological order)", n.Name, n.OpType, in)
			}
		}
		k, err := makeK(n, opset)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
		for _, out := range n.Outputs {
			if out != "" {
				defined[out] = true
			}
		}
		c := compiled{node: n, k: k, in: make([]int, len(n.Inputs)), out: make([]int, len(n.Outputs))}
		for j, in := range n.Inputs {
			c.in[j] = -1
			if in != "" {
				c.in[j] = p.slot(in)
			}
		}
		for j, out := range n.Outputs {
			c.out[j] = -1
			if out != "" {
				c.out[j] = p.slot(out)
			}
		}
		p.nodes = append(p.nodes, c)
	}
	for _, out := range g.Outputs {
		if !defined[out.Name] {
			return nil, fmt.Errorf("graph output %q is not computed by any node", out.Name)
		}
		p.outSlots = append(p.outSlots, p.slot(out.Name))
	}
	for _, in := range p.inputs {
		p.inSlots = append(p.inSlots, p.slot(in.Name))
	}
	for name := range p.consts {
		p.slot(name)
	}
	p.initial = make([]*Tensor, p.slots)
	for name, t := range p.consts {
		p.initial[p.slotByName[name]] = t
	}
	return p, nil
}

// Inputs are the graph inputs a caller must give Run.
func (p *Program) Inputs() []ValueInfo { return p.inputs }

// Outputs are the graph outputs Run returns, in order.
func (p *Program) Outputs() []ValueInfo { return p.outputs }

// Producer returns the node that computes a value, or nil.
func (p *Program) Producer(name string) *Node {
	for i := len(p.nodes) - 1; i >= 0; i-- {
		for _, out := range p.nodes[i].node.Outputs {
			if out == name {
				return p.nodes[i].node
			}
		}
	}
	return nil
}

// Run evaluates the graph on inputs by name and returns its outputs in the
// order of Outputs. The outputs are the caller's: every tensor a run
// computes is new.
func (p *Program) Run(inputs map[string]*Tensor) (res []*Tensor, err error) {
	in := make([]*Tensor, len(p.inputs))
	for i, v := range p.inputs {
		in[i] = inputs[v.Name] // nil: missing, which run says
	}
	// A session of its own, run once: nothing to reuse, so every output
	// is allocated as it always was.
	return p.NewSession().run(in, false)
}

// reuser is a kernel that can write its outputs into the tensors it
// returned from its previous run in the same Session (prev, nil the first
// time), instead of allocating new ones. It may return prev itself when
// the tensors fit, and must otherwise return new ones. Only a kernel whose
// outputs are always tensors of its own (never an input, an initializer or
// another node's output passed through) may implement it: a reused tensor
// is written over.
type reuser interface {
	reuse(in []*Tensor, prev []*Tensor) ([]*Tensor, error)
}

// Session evaluates a Program again and again, keeping what a run needs
// (its value slots and the outputs of the kernels that can reuse theirs)
// from one run to the next: a run of a tree ensemble allocates nothing
// once the session has run. A Session is for one goroutine at a time;
// keep several in a sync.Pool for concurrent callers.
type Session struct {
	p    *Program
	vals []*Tensor
	prev [][]*Tensor // by node: what a reuser returned last
	res  []*Tensor
	args []*Tensor // a node's inputs; a kernel may return it (Identity) but keeps it no longer than its run
}

// NewSession returns a session of p.
func (p *Program) NewSession() *Session {
	return &Session{p: p, vals: make([]*Tensor, p.slots), prev: make([][]*Tensor, len(p.nodes)), res: make([]*Tensor, len(p.outputs))}
}

// Run evaluates the graph on inputs, in the order of Inputs, and returns
// its outputs in the order of Outputs. The slice and the output tensors
// belong to the session: they are valid until its next Run, which may
// write over them. The inputs are only read.
func (s *Session) Run(inputs []*Tensor) ([]*Tensor, error) {
	if len(inputs) != len(s.p.inputs) {
		return nil, fmt.Errorf("%d inputs given, the graph has %d", len(inputs), len(s.p.inputs))
	}
	return s.run(inputs, true)
}

func (s *Session) run(inputs []*Tensor, reuse bool) (res []*Tensor, err error) {
	// Compile checked what it could; a kernel bug on one input must not
	// take the edge agent down.
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("evaluation failed: %v", r)
		}
	}()
	p := s.p
	vals := s.vals
	copy(vals, p.initial)
	for i, in := range p.inputs {
		t := inputs[i]
		if t == nil {
			return nil, fmt.Errorf("input %q is missing", in.Name)
		}
		if err := checkInput(in, t); err != nil {
			return nil, err
		}
		vals[p.inSlots[i]] = t
	}
	args := s.args
	for n, c := range p.nodes {
		args = args[:0]
		for _, slot := range c.in {
			var t *Tensor // nil for an omitted optional input
			if slot >= 0 {
				t = vals[slot]
			}
			args = append(args, t)
		}
		var outs []*Tensor
		if r, ok := c.k.(reuser); ok && reuse {
			outs, err = r.reuse(args, s.prev[n])
			s.prev[n] = outs
		} else {
			outs, err = c.k.run(args)
		}
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", c.node.Name, c.node.OpType, err)
		}
		for i, slot := range c.out {
			if slot >= 0 && i < len(outs) && outs[i] != nil {
				vals[slot] = outs[i]
			}
		}
	}
	s.args = args[:0]
	res = s.res
	for i, out := range p.outputs {
		t := vals[p.outSlots[i]]
		if t == nil {
			return nil, fmt.Errorf("output %q was not computed", out.Name)
		}
		res[i] = t
	}
	return res, nil
}

func checkInput(in ValueInfo, t *Tensor) error {
	if in.Type.Kind != "tensor" {
		return fmt.Errorf("input %q is a %s, which is not supported", in.Name, in.Type.Kind)
	}
	if t.Type != in.Type.ElemType {
		return fmt.Errorf("input %q is %s, want %s", in.Name, TypeName(t.Type), TypeName(in.Type.ElemType))
	}
	if n, err := numel(t.Shape); err != nil || n != t.Len() {
		return fmt.Errorf("input %q: shape %v does not match its %d values", in.Name, t.Shape, t.Len())
	}
	if in.Type.HasShape {
		if len(t.Shape) != len(in.Type.Shape) {
			return fmt.Errorf("input %q has shape %v, want rank %d", in.Name, t.Shape, len(in.Type.Shape))
		}
		for i, d := range in.Type.Shape {
			if d >= 0 && int64(t.Shape[i]) != d {
				return fmt.Errorf("input %q has shape %v, want %v", in.Name, t.Shape, in.Type.Shape)
			}
		}
	}
	return nil
}

// Attribute access, with the attribute's type checked.

func attr(n *Node, name string, typ int32) (*Attr, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return nil, nil
	}
	if a.Type != typ && a.Type != 0 {
		return nil, fmt.Errorf("attribute %q has type %d, want %d", name, a.Type, typ)
	}
	return a, nil
}

func attrInt(n *Node, name string, def int64) (int64, error) {
	a, err := attr(n, name, AttrInt)
	if a == nil || err != nil {
		return def, err
	}
	return a.I, nil
}

func attrFloat(n *Node, name string, def float32) (float32, error) {
	a, err := attr(n, name, AttrFloat)
	if a == nil || err != nil {
		return def, err
	}
	return a.F, nil
}

func attrString(n *Node, name, def string) (string, error) {
	a, err := attr(n, name, AttrString)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.S), nil
}

func attrInts(n *Node, name string) ([]int64, error) {
	a, err := attr(n, name, AttrInts)
	if a == nil || err != nil {
		return nil, err
	}
	return a.Ints, nil
}

// attrFloats reads a FLOATS attribute as float64s, or name+"_as_tensor"
// (the double-precision form ONNX-ML opset 3 added) when that is set.
func attrFloats(n *Node, name string) ([]float64, error) {
	if t, err := attr(n, name+"_as_tensor", AttrTensor); err != nil {
		return nil, err
	} else if t != nil && t.T != nil {
		if _, ok := n.Attrs[name]; ok {
			return nil, fmt.Errorf("both %q and %q are set", name, name+"_as_tensor")
		}
		if t.T.Type == String {
			return nil, fmt.Errorf("attribute %q holds strings", name+"_as_tensor")
		}
		return t.T.F, nil
	}
	a, err := attr(n, name, AttrFloats)
	if a == nil || err != nil {
		return nil, err
	}
	f := make([]float64, len(a.Floats))
	for i, v := range a.Floats {
		f[i] = float64(v)
	}
	return f, nil
}

func attrStrings(n *Node, name string) ([]string, error) {
	a, err := attr(n, name, AttrStrings)
	if a == nil || err != nil {
		return nil, err
	}
	s := make([]string, len(a.Strings))
	for i, v := range a.Strings {
		s[i] = string(v)
	}
	return s, nil
}
