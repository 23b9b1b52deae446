package trees

import (
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers and enums of onnx.proto (ONNX 1.12) that ONNX writes.
const (
	irVersion = 8 // ONNX 1.12
	mlOpset   = 3 // ai.onnx.ml opset with the *_as_tensor attributes
	onnxOpset = 17

	tensorDouble = 11
	tensorFloat  = 1
	tensorInt64  = 7

	attrInt     = 2
	attrString  = 3
	attrTensor  = 4
	attrInts    = 7
	attrStrings = 8
)

// ONNX returns e as an ONNX model (ModelProto, IR version 8): one graph
// input "input", a double matrix [N, features]; one ai.onnx.ml (opset 3)
// node. A binary model is a TreeEnsembleClassifier with classes 0 and 1,
// every leaf's weight on class 0 and post_transform LOGISTIC, as onnxmltools
// converts a LightGBM binary model: outputs "label" (int64 [N]) and
// "probabilities" (float [N, 2], the second column sigmoid(raw score)).
// A regressor is a TreeEnsembleRegressor with one target, aggregate SUM:
// output "variable" (float [N, 1]). Thresholds and weights are written as
// double tensors (nodes_values_as_tensor, *_weights_as_tensor) and every
// split is BRANCH_LEQ, so the comparison is LightGBM's. Missing values
// (NaN) go to the true (left) branch, as in the other two formats.
//
// A binary model needs at least one negative leaf: with only non-negative
// weights for a single class, onnxruntime (and the edge runtime after it)
// reads the score as a probability instead of a margin.
func (e *Ensemble) ONNX() ([]byte, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	var treeIDs, nodeIDs, features, trueIDs, falseIDs, missing, wTrees, wNodes, wIDs []int64
	var values, weights []float64
	var modes [][]byte
	negative := false
	for k := range e.Trees {
		t := &e.Trees[k]
		n := len(t.Feature)
		for i := range n {
			treeIDs, nodeIDs = append(treeIDs, int64(k)), append(nodeIDs, int64(i))
			features, values = append(features, int64(t.Feature[i])), append(values, t.Threshold[i])
			modes = append(modes, []byte("BRANCH_LEQ"))
			trueIDs, falseIDs = append(trueIDs, int64(t.nodeID(t.Left[i]))), append(falseIDs, int64(t.nodeID(t.Right[i])))
			missing = append(missing, 1)
		}
		for j, v := range t.Leaf {
			treeIDs, nodeIDs = append(treeIDs, int64(k)), append(nodeIDs, int64(n+j))
			features, values = append(features, 0), append(values, 0)
			modes = append(modes, []byte("LEAF"))
			trueIDs, falseIDs, missing = append(trueIDs, 0), append(falseIDs, 0), append(missing, 0)
			wTrees, wNodes, wIDs = append(wTrees, int64(k)), append(wNodes, int64(n+j)), append(wIDs, 0)
			weights = append(weights, v)
			negative = negative || v < 0
		}
	}
	if e.Objective == Binary && !negative {
		return nil, errors.New("a binary model without a negative leaf cannot be written as one-class ONNX weights")
	}

	var node, outputs []byte
	prefix := "target"
	if e.Objective == Binary {
		prefix = "class"
		node = appendString(node, 1, "input")
		node = appendString(node, 2, "label")
		node = appendString(node, 2, "probabilities")
		node = appendString(node, 3, "trees")
		node = appendString(node, 4, "TreeEnsembleClassifier")
		node = appendMsg(node, 5, attrIntsMsg("classlabels_int64s", []int64{0, 1}))
		node = appendMsg(node, 5, attrStringMsg("post_transform", "LOGISTIC"))
		outputs = appendMsg(outputs, 12, valueInfo("label", tensorInt64, "N"))
		outputs = appendMsg(outputs, 12, valueInfo("probabilities", tensorFloat, "N", 2))
	} else {
		node = appendString(node, 1, "input")
		node = appendString(node, 2, "variable")
		node = appendString(node, 3, "trees")
		node = appendString(node, 4, "TreeEnsembleRegressor")
		node = appendMsg(node, 5, attrIntMsg("n_targets", 1))
		node = appendMsg(node, 5, attrStringMsg("aggregate_function", "SUM"))
		node = appendMsg(node, 5, attrStringMsg("post_transform", "NONE"))
		outputs = appendMsg(outputs, 12, valueInfo("variable", tensorFloat, "N", 1))
	}
	for _, a := range []struct {
		name string
		v    []int64
	}{{"nodes_treeids", treeIDs}, {"nodes_nodeids", nodeIDs}, {"nodes_featureids", features},
		{"nodes_truenodeids", trueIDs}, {"nodes_falsenodeids", falseIDs}, {"nodes_missing_value_tracks_true", missing},
		{prefix + "_treeids", wTrees}, {prefix + "_nodeids", wNodes}, {prefix + "_ids", wIDs}} {
		node = appendMsg(node, 5, attrIntsMsg(a.name, a.v))
	}
	node = appendMsg(node, 5, attrStringsMsg("nodes_modes", modes))
	node = appendMsg(node, 5, attrTensorMsg("nodes_values_as_tensor", values))
	node = appendMsg(node, 5, attrTensorMsg(prefix+"_weights_as_tensor", weights))
	node = appendString(node, 7, "ai.onnx.ml")

	var graph []byte
	graph = appendMsg(graph, 1, node)
	graph = appendString(graph, 2, "trees")
	graph = appendMsg(graph, 11, valueInfo("input", tensorDouble, "N", int64(len(e.Features))))
	graph = append(graph, outputs...)

	var model []byte
	model = protowire.AppendTag(model, 1, protowire.VarintType)
	model = protowire.AppendVarint(model, irVersion)
	model = appendString(model, 2, "modelfleet examples/trees")
	model = appendString(model, 3, "1")
	model = appendMsg(model, 7, graph)
	model = appendMsg(model, 8, opset("", onnxOpset))
	model = appendMsg(model, 8, opset("ai.onnx.ml", mlOpset))
	return model, nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	return appendMsg(b, num, []byte(s))
}

func appendMsg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func appendVarint(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func opset(domain string, version int64) []byte {
	var b []byte
	if domain != "" {
		b = appendString(b, 1, domain)
	}
	return appendVarint(b, 2, version)
}

// valueInfo is a tensor ValueInfoProto whose dims are a symbolic name or a
// fixed size.
func valueInfo(name string, elem int64, dims ...any) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		switch d := d.(type) {
		case string:
			dim = appendString(dim, 2, d)
		case int:
			dim = appendVarint(dim, 1, int64(d))
		case int64:
			dim = appendVarint(dim, 1, d)
		}
		shape = appendMsg(shape, 1, dim)
	}
	var tensor []byte
	tensor = appendVarint(tensor, 1, elem)
	tensor = appendMsg(tensor, 2, shape)
	var typ []byte
	typ = appendMsg(typ, 1, tensor)
	var v []byte
	v = appendString(v, 1, name)
	return appendMsg(v, 2, typ)
}

func attrHead(name string, typ int64) []byte {
	b := appendString(nil, 1, name)
	return appendVarint(b, 20, typ)
}

func attrIntMsg(name string, v int64) []byte {
	return appendVarint(attrHead(name, attrInt), 3, v)
}

func attrStringMsg(name, v string) []byte {
	return appendString(attrHead(name, attrString), 4, v)
}

// attrIntsMsg writes the ints packed (a proto2 parser reads either form).
func attrIntsMsg(name string, v []int64) []byte {
	var packed []byte
	for _, x := range v {
		packed = protowire.AppendVarint(packed, uint64(x))
	}
	return appendMsg(attrHead(name, attrInts), 8, packed)
}

func attrStringsMsg(name string, v [][]byte) []byte {
	b := attrHead(name, attrStrings)
	for _, s := range v {
		b = appendMsg(b, 9, s)
	}
	return b
}

// attrTensorMsg is a one-dimensional double TensorProto attribute, its
// values in raw_data (little-endian).
func attrTensorMsg(name string, v []float64) []byte {
	var t []byte
	t = appendVarint(t, 1, int64(len(v)))
	t = appendVarint(t, 2, tensorDouble)
	raw := make([]byte, 0, 8*len(v))
	for _, x := range v {
		raw = protowire.AppendFixed64(raw, math.Float64bits(x))
	}
	t = appendMsg(t, 9, raw)
	return appendMsg(attrHead(name, attrTensor), 5, t)
}
