package onnx

import (
	"errors"
	"fmt"
	"math"
)

// The ONNX-ML (ai.onnx.ml) preprocessing and linear operators. Where the
// specification is silent (binary classifiers with one score column), they
// follow onnxruntime, the runtime these files are written for.

func init() {
	kernels[DomainML]["ZipMap"] = newZipMap
	kernels[DomainML]["Normalizer"] = newNormalizer
	kernels[DomainML]["Scaler"] = newScaler
	kernels[DomainML]["Imputer"] = newImputer
	kernels[DomainML]["LinearClassifier"] = newLinearClassifier
	kernels[DomainML]["LinearRegressor"] = newLinearRegressor
}

// rows reads an ML operator's input, [N, C] or [C] (one row), as N rows of
// C numbers.
func rows(x *Tensor) (n, c int, err error) {
	if err := numeric(x); err != nil {
		return 0, 0, err
	}
	switch len(x.Shape) {
	case 1:
		return 1, x.Shape[0], nil
	case 2:
		return x.Shape[0], x.Shape[1], nil
	}
	return 0, 0, fmt.Errorf("input has shape %v, want [N, C] or [C]", x.Shape)
}

// postTransform names the score transforms of the ML operators.
var postTransforms = map[string]bool{"NONE": true, "LOGISTIC": true, "SOFTMAX": true, "SOFTMAX_ZERO": true, "PROBIT": true}

func attrPostTransform(n *Node) (string, error) {
	pt, err := attrString(n, "post_transform", "NONE")
	if err == nil && !postTransforms[pt] {
		err = fmt.Errorf("post_transform %q is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT", pt)
	}
	return pt, err
}

// transform applies a post_transform to one row of scores in place.
func transform(pt string, s []float64) {
	switch pt {
	case "LOGISTIC":
		for i, v := range s {
			s[i] = logistic(v)
		}
	case "PROBIT":
		for i, v := range s {
			s[i] = math.Sqrt2 * math.Erfinv(2*v-1)
		}
	case "SOFTMAX":
		hi := math.Inf(-1)
		for _, v := range s {
			hi = math.Max(hi, v)
		}
		var sum float64
		for i, v := range s {
			s[i] = math.Exp(v - hi)
			sum += s[i]
		}
		for i := range s {
			s[i] /= sum
		}
	case "SOFTMAX_ZERO":
		// Zeros (|v| ≤ 1e-7, as onnxruntime) stay zero.
		hi := math.Inf(-1)
		for _, v := range s {
			hi = math.Max(hi, v)
		}
		var sum float64
		for i, v := range s {
			if math.Abs(v) > 1e-7 {
				s[i] = math.Exp(v - hi)
				sum += s[i]
			} else {
				s[i] = 0
			}
		}
		for i := range s {
			s[i] /= sum
		}
	}
}

// classLabels reads classlabels_int64s (or classlabels_ints) or
// classlabels_strings, exactly one of which a classifier has.
func classLabels(n *Node, intsName string) (ints []int64, strs []string, err error) {
	ints, err1 := attrInts(n, intsName)
	strs, err2 := attrStrings(n, "classlabels_strings")
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, err
	}
	if (len(ints) == 0) == (len(strs) == 0) {
		return nil, nil, fmt.Errorf("want exactly one of %s and classlabels_strings", intsName)
	}
	if len(ints)+len(strs) > 100_000 {
		return nil, nil, errors.New("more than 100,000 classes")
	}
	return ints, strs, nil
}

// labelTensor is a classifier's label output: the labels of class indexes.
func labelTensor(ints []int64, strs []string, idx []int) *Tensor {
	if strs != nil {
		t := &Tensor{Type: String, Shape: []int{len(idx)}, S: make([]string, len(idx))}
		for i, k := range idx {
			t.S[i] = strs[k]
		}
		return t
	}
	t := &Tensor{Type: Int64, Shape: []int{len(idx)}, F: make([]float64, len(idx))}
	for i, k := range idx {
		t.F[i] = float64(ints[k])
	}
	return t
}

type zipMap struct {
	ints []int64
	strs []string
}

func newZipMap(n *Node, _ int64) (kernel, error) {
	ints, strs, err := classLabels(n, "classlabels_int64s")
	if err != nil {
		return nil, err
	}
	return &zipMap{ints, strs}, wantArity(n, 1, 1)
}

func (z *zipMap) run(in []*Tensor) ([]*Tensor, error) { return z.reuse(in, nil) }

// reuse is run, in its previous output's tensor: the tensor is ZipMap's
// own, its values the input's, as in run.
func (z *zipMap) reuse(in []*Tensor, prev []*Tensor) ([]*Tensor, error) {
	x := in[0]
	nr, c, err := rows(x)
	if err != nil {
		return nil, err
	}
	if x.Type != Float {
		return nil, fmt.Errorf("input is %s, want float", TypeName(x.Type))
	}
	if c != len(z.ints)+len(z.strs) {
		return nil, fmt.Errorf("input has %d columns for %d classes", c, len(z.ints)+len(z.strs))
	}
	var t *Tensor
	if len(prev) == 1 && prev[0] != nil && len(prev[0].Shape) == 2 {
		t = prev[0]
		t.Shape[0], t.Shape[1] = nr, c
	} else {
		t = &Tensor{Shape: []int{nr, c}}
	}
	t.Type, t.F, t.IntKeys, t.StrKeys = Float, x.F, z.ints, z.strs
	return outputs(prev, t), nil
}

type normalizer struct{ norm string }

func newNormalizer(n *Node, _ int64) (kernel, error) {
	norm, err := attrString(n, "norm", "MAX")
	if err == nil && norm != "MAX" && norm != "L1" && norm != "L2" {
		err = fmt.Errorf("norm %q is not one of MAX, L1, L2", norm)
	}
	if err != nil {
		return nil, err
	}
	return &normalizer{norm}, wantArity(n, 1, 1)
}

func (z *normalizer) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	nr, c, err := rows(x)
	if err != nil {
		return nil, err
	}
	out := &Tensor{Type: Float, Shape: []int{nr, c}, F: make([]float64, len(x.F))}
	if len(x.Shape) == 1 {
		out.Shape = []int{c}
	}
	for r := 0; r < nr; r++ {
		row := x.F[r*c : (r+1)*c]
		var d float64
		switch z.norm {
		case "MAX":
			d = math.Inf(-1)
			for _, v := range row {
				d = math.Max(d, v)
			}
		case "L1":
			for _, v := range row {
				d += math.Abs(v)
			}
		case "L2":
			for _, v := range row {
				d += v * v
			}
			d = math.Sqrt(d)
		}
		for i, v := range row {
			out.F[r*c+i] = fit(Float, v/d)
		}
	}
	return []*Tensor{out}, nil
}

// perColumn checks that a list has one value, or one for each of c
// columns, and returns column i's.
func perColumn(v []float64, i int) float64 {
	if len(v) == 1 {
		return v[0]
	}
	return v[i]
}

func checkPerColumn(name string, v []float64, c int) error {
	if len(v) != 1 && len(v) != c {
		return fmt.Errorf("%s has %d values for %d columns", name, len(v), c)
	}
	return nil
}

type scaler struct{ offset, scale []float64 }

func newScaler(n *Node, _ int64) (kernel, error) {
	offset, err1 := attrFloats(n, "offset")
	scale, err2 := attrFloats(n, "scale")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if offset == nil {
		offset = []float64{0}
	}
	if scale == nil {
		scale = []float64{1}
	}
	return &scaler{offset, scale}, wantArity(n, 1, 1)
}

func (s *scaler) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	_, c, err := rows(x)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(checkPerColumn("offset", s.offset, c), checkPerColumn("scale", s.scale, c)); err != nil {
		return nil, err
	}
	out := &Tensor{Type: Float, Shape: x.Shape, F: make([]float64, len(x.F))}
	for i, v := range x.F {
		j := i % c
		out.F[i] = fit(Float, (v-perColumn(s.offset, j))*perColumn(s.scale, j))
	}
	return []*Tensor{out}, nil
}

type imputer struct {
	values   []float64
	replaced float64
	ints     bool // imputes int64s: the input must be an integer tensor
}

func newImputer(n *Node, _ int64) (kernel, error) {
	floats, err1 := attrFloats(n, "imputed_value_floats")
	ints, err2 := attrInts(n, "imputed_value_int64s")
	rf, err3 := attrFloat(n, "replaced_value_float", 0)
	ri, err4 := attrInt(n, "replaced_value_int64", 0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	if (len(floats) == 0) == (len(ints) == 0) {
		return nil, errors.New("want exactly one of imputed_value_floats and imputed_value_int64s")
	}
	if len(ints) > 0 {
		k := &imputer{replaced: float64(ri), ints: true}
		for _, v := range ints {
			k.values = append(k.values, float64(v))
		}
		return k, wantArity(n, 1, 1)
	}
	return &imputer{values: floats, replaced: float64(rf)}, wantArity(n, 1, 1)
}

func (m *imputer) run(in []*Tensor) ([]*Tensor, error) {
	x := in[0]
	_, c, err := rows(x)
	if err != nil {
		return nil, err
	}
	if isFloat(x.Type) == m.ints {
		return nil, fmt.Errorf("input is %s, which the imputed values do not fit", TypeName(x.Type))
	}
	if err := checkPerColumn("imputed values", m.values, c); err != nil {
		return nil, err
	}
	out := &Tensor{Type: x.Type, Shape: x.Shape, F: make([]float64, len(x.F))}
	for i, v := range x.F {
		if v == m.replaced || (math.IsNaN(m.replaced) && math.IsNaN(v)) {
			v = perColumn(m.values, i%c)
		}
		out.F[i] = fit(x.Type, v)
	}
	return []*Tensor{out}, nil
}

// linear holds a linear model's coefficients: rows of len(coef)/len(intercepts)
// weights.
type linear struct {
	coef, intercepts []float64
	rows             int
	post             string
}

func newLinear(n *Node, rows int) (*linear, error) {
	coef, err1 := attrFloats(n, "coefficients")
	icp, err2 := attrFloats(n, "intercepts")
	post, err3 := attrPostTransform(n)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	if rows <= 0 || len(coef) == 0 || len(coef)%rows != 0 {
		return nil, fmt.Errorf("%d coefficients do not make %d rows", len(coef), rows)
	}
	if icp != nil && len(icp) != rows {
		return nil, fmt.Errorf("%d intercepts for %d rows of coefficients", len(icp), rows)
	}
	return &linear{coef, icp, rows, post}, nil
}

// scores computes each row's scores for an input of nr rows of f features.
func (l *linear) scores(x *Tensor) (nr int, s []float64, err error) {
	nr, f, err := rows(x)
	if err != nil {
		return 0, nil, err
	}
	if f*l.rows != len(l.coef) {
		return 0, nil, fmt.Errorf("input has %d features, the coefficients want %d", f, len(l.coef)/l.rows)
	}
	s = make([]float64, nr*l.rows)
	for r := 0; r < nr; r++ {
		for k := 0; k < l.rows; k++ {
			v := 0.0
			if l.intercepts != nil {
				v = l.intercepts[k]
			}
			for j := 0; j < f; j++ {
				v += x.F[r*f+j] * l.coef[k*f+j]
			}
			s[r*l.rows+k] = v
		}
	}
	return nr, s, nil
}

type linearClassifier struct {
	*linear
	ints []int64
	strs []string
}

func newLinearClassifier(n *Node, _ int64) (kernel, error) {
	ints, strs, err := classLabels(n, "classlabels_ints")
	if err != nil {
		return nil, err
	}
	classes := len(ints) + len(strs)
	rows := classes
	if icp, _ := attrFloats(n, "intercepts"); len(icp) == 1 && classes == 2 {
		rows = 1 // one score, for the second class
	}
	l, err := newLinear(n, rows)
	if err != nil {
		return nil, err
	}
	if len(n.Outputs) != 2 {
		return nil, fmt.Errorf("has %d outputs, want 2 (label and scores)", len(n.Outputs))
	}
	return &linearClassifier{l, ints, strs}, wantArity(n, 1, 1)
}

func (l *linearClassifier) run(in []*Tensor) ([]*Tensor, error) {
	nr, s, err := l.scores(in[0])
	if err != nil {
		return nil, err
	}
	classes := len(l.ints) + len(l.strs)
	z := &Tensor{Type: Float, Shape: []int{nr, classes}, F: make([]float64, nr*classes)}
	idx := make([]int, nr)
	for r := 0; r < nr; r++ {
		row := z.F[r*classes : (r+1)*classes]
		if l.rows == 1 {
			// onnxruntime: the one score is class 1's, class 0's its negation.
			v := s[r]
			row[0], row[1] = -v, v
			if v > 0 {
				idx[r] = 1
			}
		} else {
			copy(row, s[r*classes:(r+1)*classes])
			idx[r] = argmaxFirst(row)
		}
		transform(l.post, row)
		for i, v := range row {
			row[i] = fit(Float, v)
		}
	}
	return []*Tensor{labelTensor(l.ints, l.strs, idx), z}, nil
}

func argmaxFirst(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

type linearRegressor struct{ *linear }

func newLinearRegressor(n *Node, _ int64) (kernel, error) {
	targets, err := attrInt(n, "targets", 1)
	if err != nil {
		return nil, err
	}
	if targets < 1 || targets > 100_000 {
		return nil, fmt.Errorf("targets %d", targets)
	}
	l, err := newLinear(n, int(targets))
	if err != nil {
		return nil, err
	}
	return &linearRegressor{l}, wantArity(n, 1, 1)
}

func (l *linearRegressor) run(in []*Tensor) ([]*Tensor, error) {
	nr, s, err := l.scores(in[0])
	if err != nil {
		return nil, err
	}
	for r := 0; r < nr; r++ {
		transform(l.post, s[r*l.rows:(r+1)*l.rows])
	}
	for i, v := range s {
		s[i] = fit(Float, v)
	}
	return []*Tensor{{Type: Float, Shape: []int{nr, l.rows}, F: s}}, nil
}
