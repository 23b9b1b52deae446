package onnx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The dense operators of the default domain (ai.onnx) a small MLP needs.

func init() {
	for name, f := range map[string]func(x, y float64) float64{
		"Add": func(x, y float64) float64 { return x + y },
		"Sub": func(x, y float64) float64 { return x - y },
		"Mul": func(x, y float64) float64 { return x * y },
	} {
		kernels[""][name] = func(n *Node, _ int64) (kernel, error) {
			if err := wantArity(n, 2, 2); err != nil {
				return nil, err
			}
			return binaryKernel(f), nil
		}
	}
	kernels[""]["Relu"] = unary(func(x float64) float64 { return math.Max(x, 0) })
	kernels[""]["Sigmoid"] = unary(logistic)
	kernels[""]["Identity"] = func(n *Node, _ int64) (kernel, error) {
		return kernelFunc(func(in []*Tensor) ([]*Tensor, error) { return in[:1], nil }), wantArity(n, 1, 1)
	}
	kernels[""]["Gemm"] = newGemm
	kernels[""]["MatMul"] = func(n *Node, _ int64) (kernel, error) {
		return kernelFunc(matmul), wantArity(n, 2, 2)
	}
	kernels[""]["Softmax"] = newSoftmax
	kernels[""]["Cast"] = newCast
	kernels[""]["Reshape"] = newReshape
	kernels[""]["Flatten"] = newFlatten
	kernels[""]["ArgMax"] = newArgMax
}

type kernelFunc func(in []*Tensor) ([]*Tensor, error)

func (f kernelFunc) run(in []*Tensor) ([]*Tensor, error) { return f(in) }

// wantArity checks a node's number of inputs (optional ones may be
// omitted at the end) and that it has one output.
func wantArity(n *Node, min, max int) error {
	if len(n.Inputs) < min || len(n.Inputs) > max {
		return fmt.Errorf("has %d inputs, want %d to %d", len(n.Inputs), min, max)
	}
	for i := 0; i < min; i++ {
		if n.Inputs[i] == "" {
			return fmt.Errorf("input %d is required", i)
		}
	}
	if len(n.Outputs) < 1 {
		return errors.New("has no output")
	}
	return nil
}

// numeric checks that run-time inputs are present numeric tensors.
func numeric(in ...*Tensor) error {
	for i, t := range in {
		if t == nil {
			return fmt.Errorf("input %d is missing", i)
		}
		if t.Type == String {
			return fmt.Errorf("input %d is a string tensor", i)
		}
	}
	return nil
}

func floating(in ...*Tensor) error {
	if err := numeric(in...); err != nil {
		return err
	}
	for i, t := range in {
		if !isFloat(t.Type) {
			return fmt.Errorf("input %d is %s, want a floating-point tensor", i, TypeName(t.Type))
		}
	}
	return nil
}

func logistic(x float64) float64 {
	if x < 0 {
		e := math.Exp(x)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(-x))
}

func unary(f func(float64) float64) kernelMaker {
	return func(n *Node, _ int64) (kernel, error) {
		return kernelFunc(func(in []*Tensor) ([]*Tensor, error) {
			if err := floating(in[0]); err != nil {
				return nil, err
			}
			out := &Tensor{Type: in[0].Type, Shape: in[0].Shape, F: make([]float64, len(in[0].F))}
			for i, v := range in[0].F {
				out.F[i] = fit(out.Type, f(v))
			}
			return []*Tensor{out}, nil
		}), wantArity(n, 1, 1)
	}
}

// broadcastShape is numpy's (multidirectional) broadcast of two shapes.
func broadcastShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := range out {
		da, db := 1, 1
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcastStrides are the strides of a tensor of shape s read as shape out
// (0 along broadcast dimensions).
func broadcastStrides(s, out []int) []int {
	st := make([]int, len(out))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		j := i + len(out) - len(s)
		if s[i] != 1 {
			st[j] = acc
		}
		acc *= s[i]
	}
	return st
}

// eachBroadcast calls f with the output index and the indexes into a and b
// of every element of their broadcast.
func eachBroadcast(sa, sb []int, f func(i, ia, ib int)) ([]int, error) {
	out, err := broadcastShape(sa, sb)
	if err != nil {
		return nil, err
	}
	n, err := numel(out)
	if err != nil {
		return nil, err
	}
	stA, stB := broadcastStrides(sa, out), broadcastStrides(sb, out)
	idx := make([]int, len(out))
	ia, ib := 0, 0
	for i := 0; i < n; i++ {
		f(i, ia, ib)
		for d := len(out) - 1; d >= 0; d-- {
			idx[d]++
			ia += stA[d]
			ib += stB[d]
			if idx[d] < out[d] {
				break
			}
			ia -= stA[d] * idx[d]
			ib -= stB[d] * idx[d]
			idx[d] = 0
		}
	}
	return out, nil
}

func binaryKernel(f func(x, y float64) float64) kernel {
	return kernelFunc(func(in []*Tensor) ([]*Tensor, error) {
		a, b := in[0], in[1]
		if err := numeric(a, b); err != nil {
			return nil, err
		}
		if a.Type != b.Type {
			return nil, fmt.Errorf("inputs are %s and %s, want one type", TypeName(a.Type), TypeName(b.Type))
		}
		shape, err := broadcastShape(a.Shape, b.Shape)
		if err != nil {
			return nil, err
		}
		out, err := newTensor(a.Type, shape)
		if err != nil {
			return nil, err
		}
		_, err = eachBroadcast(a.Shape, b.Shape, func(i, ia, ib int) {
			out.F[i] = fit(out.Type, f(a.F[ia], b.F[ib]))
		})
		return []*Tensor{out}, err
	})
}

type gemm struct {
	alpha, beta    float64
	transA, transB bool
}

func newGemm(n *Node, _ int64) (kernel, error) {
	if err := wantArity(n, 2, 3); err != nil {
		return nil, err
	}
	alpha, err1 := attrFloat(n, "alpha", 1)
	beta, err2 := attrFloat(n, "beta", 1)
	ta, err3 := attrInt(n, "transA", 0)
	tb, err4 := attrInt(n, "transB", 0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return &gemm{float64(alpha), float64(beta), ta != 0, tb != 0}, nil
}

func (g *gemm) run(in []*Tensor) ([]*Tensor, error) {
	a, b := in[0], in[1]
	if err := floating(a, b); err != nil {
		return nil, err
	}
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Type != b.Type {
		return nil, fmt.Errorf("A %s%v and B %s%v must be matrices of one type", TypeName(a.Type), a.Shape, TypeName(b.Type), b.Shape)
	}
	m, k := a.Shape[0], a.Shape[1]
	if g.transA {
		m, k = k, m
	}
	k2, nn := b.Shape[0], b.Shape[1]
	if g.transB {
		k2, nn = nn, k2
	}
	if k != k2 {
		return nil, fmt.Errorf("A %v and B %v do not multiply", a.Shape, b.Shape)
	}
	if err := checkWork(m*nn, k); err != nil {
		return nil, err
	}
	out, err := newTensor(a.Type, []int{m, nn})
	if err != nil {
		return nil, err
	}
	var c *Tensor
	if len(in) > 2 && in[2] != nil {
		c = in[2]
		if err := floating(c); err != nil {
			return nil, err
		}
		if s, err := broadcastShape(c.Shape, out.Shape); err != nil || s[0] != m || s[1] != nn {
			return nil, fmt.Errorf("C %v does not broadcast to %v", c.Shape, out.Shape)
		}
	}
	for i := 0; i < m; i++ {
		for j := 0; j < nn; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float64
				if g.transA {
					av = a.F[l*a.Shape[1]+i]
				} else {
					av = a.F[i*a.Shape[1]+l]
				}
				if g.transB {
					bv = b.F[j*b.Shape[1]+l]
				} else {
					bv = b.F[l*b.Shape[1]+j]
				}
				s += av * bv
			}
			out.F[i*nn+j] = g.alpha * s
		}
	}
	if c != nil {
		if _, err := eachBroadcast(out.Shape, c.Shape, func(i, _, ic int) { out.F[i] += g.beta * c.F[ic] }); err != nil {
			return nil, err
		}
	}
	for i, v := range out.F {
		out.F[i] = fit(out.Type, v)
	}
	return []*Tensor{out}, nil
}

// matmul is numpy.matmul: 1-D operands are promoted to matrices, leading
// (batch) dimensions broadcast.
func matmul(in []*Tensor) ([]*Tensor, error) {
	a, b := in[0], in[1]
	if err := numeric(a, b); err != nil {
		return nil, err
	}
	if a.Type != b.Type || len(a.Shape) == 0 || len(b.Shape) == 0 {
		return nil, fmt.Errorf("A %s%v and B %s%v do not multiply", TypeName(a.Type), a.Shape, TypeName(b.Type), b.Shape)
	}
	sa, sb := a.Shape, b.Shape
	if len(sa) == 1 {
		sa = []int{1, sa[0]}
	}
	if len(sb) == 1 {
		sb = []int{sb[0], 1}
	}
	m, k := sa[len(sa)-2], sa[len(sa)-1]
	k2, nn := sb[len(sb)-2], sb[len(sb)-1]
	if k != k2 {
		return nil, fmt.Errorf("A %v and B %v do not multiply", a.Shape, b.Shape)
	}
	batch, err := broadcastShape(sa[:len(sa)-2], sb[:len(sb)-2])
	if err != nil {
		return nil, err
	}
	shape := append(append([]int{}, batch...), m, nn)
	outLen, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if err := checkWork(outLen, k); err != nil {
		return nil, err
	}
	out, err := newTensor(a.Type, shape)
	if err != nil {
		return nil, err
	}
	_, err = eachBroadcast(sa[:len(sa)-2], sb[:len(sb)-2], func(i, ia, ib int) {
		pa, pb, po := a.F[ia*m*k:], b.F[ib*k*nn:], out.F[i*m*nn:]
		for r := 0; r < m; r++ {
			for c := 0; c < nn; c++ {
				var s float64
				for l := 0; l < k; l++ {
					s += pa[r*k+l] * pb[l*nn+c]
				}
				po[r*nn+c] = fit(out.Type, s)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	// Drop the dimensions the promotion of 1-D operands added.
	switch {
	case len(a.Shape) == 1 && len(b.Shape) == 1:
		out.Shape = []int{}
	case len(a.Shape) == 1:
		out.Shape = append(shape[:len(shape)-2:len(shape)-2], nn)
	case len(b.Shape) == 1:
		out.Shape = shape[:len(shape)-1]
	}
	return []*Tensor{out}, nil
}

// maxWork bounds the multiply-adds of one product, so that a small hostile
// graph cannot keep a core busy for minutes.
const maxWork = 1 << 28

func checkWork(outputs, k int) error {
	if k > 0 && outputs > maxWork/k {
		return fmt.Errorf("the product needs more than %d multiply-adds", maxWork)
	}
	return nil
}

// axis resolves a possibly negative axis against a rank.
func axis(a int64, rank int, inclusive bool) (int, error) {
	hi := int64(rank)
	if inclusive {
		hi++
	}
	if a < 0 {
		a += int64(rank)
	}
	if a < 0 || a >= hi {
		return 0, fmt.Errorf("axis out of range for rank %d", rank)
	}
	return int(a), nil
}

type softmax struct {
	axis    int64
	flatten bool // opset < 13: the input is coerced to 2-D at axis
}

func newSoftmax(n *Node, opset int64) (kernel, error) {
	def := int64(-1)
	if opset < 13 {
		def = 1
	}
	a, err := attrInt(n, "axis", def)
	if err != nil {
		return nil, err
	}
	return &softmax{a, opset < 13}, wantArity(n, 1, 1)
}

func (s *softmax) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	if err := floating(x); err != nil {
		return nil, err
	}
	ax, err := axis(s.axis, len(x.Shape), false)
	if err != nil {
		return nil, err
	}
	// The softmax runs over inner runs of length n with stride stride.
	outer, n, stride := 1, 1, 1
	for i, d := range x.Shape {
		switch {
		case i < ax:
			outer *= d
		case i == ax || s.flatten:
			n *= d
		default:
			stride *= d
		}
	}
	out := &Tensor{Type: x.Type, Shape: x.Shape, F: make([]float64, len(x.F))}
	for o := 0; o < outer; o++ {
		for r := 0; r < stride; r++ {
			base := o*n*stride + r
			hi := math.Inf(-1)
			for i := 0; i < n; i++ {
				hi = math.Max(hi, x.F[base+i*stride])
			}
			var sum float64
			for i := 0; i < n; i++ {
				e := math.Exp(x.F[base+i*stride] - hi)
				out.F[base+i*stride] = e
				sum += e
			}
			for i := 0; i < n; i++ {
				out.F[base+i*stride] = fit(x.Type, out.F[base+i*stride]/sum)
			}
		}
	}
	return []*Tensor{out}, nil
}

type cast struct{ to int32 }

func newCast(n *Node, _ int64) (kernel, error) {
	to, err := attrInt(n, "to", 0)
	if err != nil {
		return nil, err
	}
	if _, ok := typeNames[int32(to)]; !ok {
		return nil, fmt.Errorf("cannot cast to type %d", to)
	}
	return &cast{int32(to)}, wantArity(n, 1, 1)
}

func (c *cast) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	if x == nil {
		return nil, errors.New("input is missing")
	}
	out, err := newTensor(c.to, x.Shape)
	if err != nil {
		return nil, err
	}
	switch {
	case x.Type == String && c.to == String:
		copy(out.S, x.S)
	case x.Type == String:
		for i, s := range x.S {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("cannot cast %q to %s", s, TypeName(c.to))
			}
			out.F[i] = fit(c.to, v)
		}
	case c.to == String:
		for i, v := range x.F {
			out.S[i] = formatNumber(x.Type, v)
		}
	default:
		for i, v := range x.F {
			out.F[i] = fit(c.to, v)
		}
	}
	return []*Tensor{out}, nil
}

// formatNumber writes a number as the shortest decimal that reads back as
// the same value of its type.
func formatNumber(t int32, v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "INF"
	case math.IsInf(v, -1):
		return "-INF"
	case t == Float:
		return strconv.FormatFloat(v, 'g', -1, 32)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

type reshape struct{ allowZero bool }

func newReshape(n *Node, opset int64) (kernel, error) {
	if opset < 5 {
		return nil, fmt.Errorf("opset %d Reshape (shape as an attribute) is not supported", opset)
	}
	az, err := attrInt(n, "allowzero", 0)
	if err != nil {
		return nil, err
	}
	return &reshape{az != 0}, wantArity(n, 2, 2)
}

func (r *reshape) run(in []*Tensor) ([]*Tensor, error) {
	x, s := in[0], in[1]
	if x == nil || s == nil || s.Type != Int64 || len(s.Shape) != 1 {
		return nil, errors.New("want a tensor and a 1-D int64 shape")
	}
	if len(s.F) > maxRank {
		return nil, fmt.Errorf("shape has more than %d dimensions", maxRank)
	}
	shape := make([]int, len(s.F))
	infer := -1
	known := 1
	for i, v := range s.F {
		switch {
		case v == 0 && !r.allowZero:
			if i >= len(x.Shape) {
				return nil, fmt.Errorf("shape %v copies dimension %d of %v", s.F, i, x.Shape)
			}
			shape[i] = x.Shape[i]
		case v == -1 && infer < 0:
			infer = i
			continue
		case v < 0 || v > MaxElements:
			return nil, fmt.Errorf("bad shape %v", s.F)
		default:
			shape[i] = int(v)
		}
		known *= shape[i]
		if known > MaxElements {
			return nil, fmt.Errorf("bad shape %v", s.F)
		}
	}
	n := x.Len()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, s.F)
		}
		shape[infer] = n / known
	}
	if m, err := numel(shape); err != nil || m != n {
		return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, s.F)
	}
	out := *x
	out.Shape = shape
	return []*Tensor{&out}, nil
}

type flatten struct{ axis int64 }

func newFlatten(n *Node, _ int64) (kernel, error) {
	a, err := attrInt(n, "axis", 1)
	if err != nil {
		return nil, err
	}
	return &flatten{a}, wantArity(n, 1, 1)
}

func (f *flatten) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	if x == nil {
		return nil, errors.New("input is missing")
	}
	ax, err := axis(f.axis, len(x.Shape), true)
	if err != nil {
		return nil, err
	}
	rows := 1
	for _, d := range x.Shape[:ax] {
		rows *= d
	}
	cols := 1
	for _, d := range x.Shape[ax:] {
		cols *= d
	}
	out := *x
	out.Shape = []int{rows, cols}
	return []*Tensor{&out}, nil
}

type argMax struct {
	axis      int64
	keepDims  bool
	lastIndex bool
}

func newArgMax(n *Node, _ int64) (kernel, error) {
	a, err1 := attrInt(n, "axis", 0)
	k, err2 := attrInt(n, "keepdims", 1)
	l, err3 := attrInt(n, "select_last_index", 0)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return &argMax{a, k != 0, l != 0}, wantArity(n, 1, 1)
}

func (a *argMax) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	if err := numeric(x); err != nil {
		return nil, err
	}
	ax, err := axis(a.axis, len(x.Shape), false)
	if err != nil {
		return nil, err
	}
	outer, n, inner := 1, x.Shape[ax], 1
	for _, d := range x.Shape[:ax] {
		outer *= d
	}
	for _, d := range x.Shape[ax+1:] {
		inner *= d
	}
	shape := append([]int{}, x.Shape...)
	if a.keepDims {
		shape[ax] = 1
	} else {
		shape = append(shape[:ax], shape[ax+1:]...)
	}
	out, err := newTensor(Int64, shape)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("argmax of an empty axis")
	}
	for o := 0; o < outer; o++ {
		for r := 0; r < inner; r++ {
			best := 0
			for i := 1; i < n; i++ {
				v, b := x.F[(o*n+i)*inner+r], x.F[(o*n+best)*inner+r]
				if v > b || (a.lastIndex && v == b) {
					best = i
				}
			}
			out.F[o*inner+r] = float64(best)
		}
	}
	return []*Tensor{out}, nil
}
