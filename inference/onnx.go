package inference

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/modelfleet/modelfleet/inference/onnx"
)

// maxONNXFeatures bounds the feature row of an ONNX model, as
// maxXGBFeatures does XGBoost's.
const maxONNXFeatures = 1_000_000

// onnxModel serves an ONNX graph as a Model: its inputs are float or double
// matrices whose columns are the features, in input order; a classifier
// outputs a label and the probabilities (a tensor or, through ZipMap, a
// sequence of maps), a regressor one value per row.
type onnxModel struct {
	p      *onnx.Program
	inputs []onnxInput
	prob   int // the output read: probabilities of a classifier, the value of a regressor
	k      int // values the output has per row
	binary bool
	// sessions are runs of p with their input tensors, reused from one
	// prediction to the next (onnxSession): a prediction of a tree
	// ensemble allocates nothing.
	sessions sync.Pool
}

// onnxSession is a Session of the program and the input tensors it is fed,
// one row each.
type onnxSession struct {
	s  *onnx.Session
	in []*onnx.Tensor
}

type onnxInput struct {
	name string
	typ  int32
	cols int
}

func loadONNX(data []byte) (*Model, error) {
	dm, err := onnx.Decode(data)
	if err != nil {
		return nil, err
	}
	p, err := onnx.Compile(dm)
	if err != nil {
		return nil, err
	}
	rt := &onnxModel{p: p}
	var names []string
	for _, in := range p.Inputs() {
		t := in.Type
		if t.Kind != "tensor" || (t.ElemType != onnx.Float && t.ElemType != onnx.Double) {
			return nil, fmt.Errorf("input %q is a %s %s: the edge runtime feeds float or double tensors", in.Name, onnx.TypeName(t.ElemType), t.Kind)
		}
		if len(t.Shape) != 2 || t.Shape[1] < 1 {
			return nil, fmt.Errorf("input %q has shape %v: want [N, features] with the number of features fixed", in.Name, t.Shape)
		}
		if t.Shape[0] > 1 {
			return nil, fmt.Errorf("input %q has shape %v: want a first (batch) dimension that is symbolic or 1", in.Name, t.Shape)
		}
		cols := int(min(t.Shape[1], maxONNXFeatures+1))
		rt.inputs = append(rt.inputs, onnxInput{in.Name, t.ElemType, cols})
		if len(names)+cols > maxONNXFeatures {
			return nil, fmt.Errorf("more than %d features", maxONNXFeatures)
		}
		for i := 0; i < cols; i++ {
			names = append(names, in.Name+"_"+strconv.Itoa(i))
		}
	}
	switch {
	case len(rt.inputs) == 0:
		return nil, errors.New("the graph has no input")
	case len(rt.inputs) == len(names):
		// One column per input, as skl2onnx writes named columns: the
		// features are the inputs.
		for i, in := range rt.inputs {
			names[i] = in.name
		}
	case len(rt.inputs) == 1:
		// A single matrix, as a model trained on a bare array: XGBoost's
		// generic names.
		for i := range names {
			names[i] = "f" + strconv.Itoa(i)
		}
	}
	// Run once on a row of zeros: what the outputs are tells the task, and
	// a graph that cannot run fails here rather than on the first request.
	outs, err := p.Run(rt.feed(make([]float64, len(names))))
	if err != nil {
		return nil, fmt.Errorf("a test run on a row of zeros failed: %w", err)
	}
	label, prob := -1, -1
	for i, t := range outs {
		switch {
		case label < 0 && (t.Type == onnx.Int64 || t.Type == onnx.String) && t.Len() == 1:
			label = i
		case prob < 0 && (t.Type == onnx.Float || t.Type == onnx.Double):
			prob = i
		}
	}
	if prob < 0 {
		return nil, errors.New("the graph has no float output: want probabilities (a classifier) or a value (a regressor)")
	}
	rt.prob, rt.k = prob, outs[prob].Len()
	m := &Model{rt: rt, format: FormatONNX, features: names, task: TaskRegression, classes: 1}
	name := p.Outputs()[prob].Name
	classifier := label >= 0 || outs[prob].IntKeys != nil || outs[prob].StrKeys != nil
	if n := p.Producer(name); n != nil && n.OpType == "Softmax" {
		classifier = true
	}
	switch {
	case classifier && rt.k < 2:
		return nil, fmt.Errorf("output %q has %d value per row: a classifier's probabilities need one per class", name, rt.k)
	case classifier:
		m.classes = rt.k
		m.task = TaskMulticlass
		if rt.k == 2 {
			m.task, rt.binary = TaskBinary, true
		}
	case rt.k != 1:
		return nil, fmt.Errorf("output %q has %d values per row and no label output: a regressor outputs one value "+
			"(multi-target regressors are not supported); a classifier outputs a label beside its probabilities, or ends in Softmax", name, rt.k)
	}
	return m, nil
}

// feed splits a feature row into the graph's inputs, one row each.
func (r *onnxModel) feed(x []float64) map[string]*onnx.Tensor {
	in := make(map[string]*onnx.Tensor, len(r.inputs))
	for _, i := range r.inputs {
		in[i.name] = r.input(i, nil, x[:i.cols])
		x = x[i.cols:]
	}
	return in
}

// input is x as input i's tensor of one row, written into t when t is not
// nil (a session's tensor of that input, from the last row).
func (r *onnxModel) input(i onnxInput, t *onnx.Tensor, x []float64) *onnx.Tensor {
	if t == nil {
		t = &onnx.Tensor{Type: i.typ, Shape: []int{1, i.cols}, F: make([]float64, i.cols)}
	}
	for j, v := range x {
		if i.typ == onnx.Float {
			v = float64(float32(v))
		}
		t.F[j] = v
	}
	return t
}

// run evaluates one row in a pooled session and calls read with the
// output read, which is valid only during the call. Model recovers a
// panic as the prediction's error; the runtime interface has no other way
// to return one.
func (r *onnxModel) run(x []float64, read func(p []float64)) {
	ss, _ := r.sessions.Get().(*onnxSession)
	if ss == nil {
		ss = &onnxSession{s: r.p.NewSession(), in: make([]*onnx.Tensor, len(r.inputs))}
	}
	for k, i := range r.inputs {
		ss.in[k] = r.input(i, ss.in[k], x[:i.cols])
		x = x[i.cols:]
	}
	outs, err := ss.s.Run(ss.in)
	if err != nil {
		panic(err) // the session is dropped: a failed run may have left anything in it
	}
	if got := outs[r.prob].Len(); got != r.k {
		panic(fmt.Sprintf("the model returned %d values, want %d", got, r.k))
	}
	read(outs[r.prob].F)
	r.sessions.Put(ss)
}

func (r *onnxModel) numOutputs() int {
	if r.binary {
		return 1
	}
	return r.k
}

func (r *onnxModel) outputs(x []float64, out []float64) {
	r.run(x, func(p []float64) {
		if r.binary {
			out[0] = p[1]
			return
		}
		copy(out, p)
	})
}

func (r *onnxModel) output(x []float64) (v float64) {
	r.run(x, func(p []float64) {
		if r.binary {
			v = p[1]
		} else {
			v = p[0]
		}
	})
	return v
}
