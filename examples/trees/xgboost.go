package trees

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
)

// xgbVersion is the XGBoost release whose JSON model schema
// (doc/model.schema) the file follows.
var xgbVersion = []int{1, 7, 4}

type xgbTree struct {
	BaseWeights        []number          `json:"base_weights"`
	Categories         []int             `json:"categories"`
	CategoriesNodes    []int             `json:"categories_nodes"`
	CategoriesSegments []int             `json:"categories_segments"`
	CategoriesSizes    []int             `json:"categories_sizes"`
	DefaultLeft        []int             `json:"default_left"`
	ID                 int               `json:"id"`
	LeftChildren       []int             `json:"left_children"`
	LossChanges        []number          `json:"loss_changes"`
	Parents            []int             `json:"parents"`
	RightChildren      []int             `json:"right_children"`
	SplitConditions    []number          `json:"split_conditions"`
	SplitIndices       []int             `json:"split_indices"`
	SplitType          []int             `json:"split_type"`
	SumHessian         []number          `json:"sum_hessian"`
	TreeParam          map[string]string `json:"tree_param"`
}

// WriteXGBoostJSON writes e as an XGBoost JSON model, as
// Booster.save_model("model.json") writes a gbtree booster (XGBoost 1.7's
// schema, which XGBoost >= 1.0 loads): objective binary:logistic with
// base_score 0.5 (a base margin of 0) or reg:squarederror with base_score
// 0. Node i of a tree is LightGBM's internal node i, leaf j is node n+j;
// a leaf's value is its split_condition; missing values go left, as
// LightGBM's decision_type 2 sends them.
func (e *Ensemble) WriteXGBoostJSON(w io.Writer) error {
	if err := e.Check(); err != nil {
		return err
	}
	nf := strconv.Itoa(len(e.Features))
	trees := make([]xgbTree, len(e.Trees))
	info := make([]int, len(e.Trees))
	for k := range e.Trees {
		trees[k] = e.Trees[k].xgboost(k, nf)
	}
	objective, base := "binary:logistic", "5E-1"
	if e.Objective == Regression {
		objective, base = "reg:squarederror", "0E0"
	}
	types := make([]string, len(e.Features))
	for i := range types {
		types[i] = "float"
	}
	obj := map[string]any{"name": objective, "reg_loss_param": map[string]string{"scale_pos_weight": "1"}}
	doc := map[string]any{
		"version": xgbVersion,
		"learner": map[string]any{
			"attributes":    map[string]string{},
			"feature_names": e.Features,
			"feature_types": types,
			"gradient_booster": map[string]any{
				"name": "gbtree",
				"model": map[string]any{
					"gbtree_model_param": map[string]string{"num_parallel_tree": "1", "num_trees": strconv.Itoa(len(trees)), "size_leaf_vector": "0"},
					"tree_info":          info,
					"trees":              trees,
				},
			},
			"learner_model_param": map[string]string{"base_score": base, "boost_from_average": "1", "num_class": "0", "num_feature": nf, "num_target": "1"},
			"objective":           obj,
		},
	}
	return json.NewEncoder(w).Encode(doc)
}

func (t *Tree) xgboost(id int, numFeature string) xgbTree {
	n := len(t.Feature)
	size := 2*n + 1
	x := xgbTree{
		BaseWeights: make([]number, size), Categories: []int{}, CategoriesNodes: []int{}, CategoriesSegments: []int{}, CategoriesSizes: []int{},
		DefaultLeft: make([]int, size), ID: id, LeftChildren: make([]int, size), LossChanges: make([]number, size),
		Parents: make([]int, size), RightChildren: make([]int, size), SplitConditions: make([]number, size),
		SplitIndices: make([]int, size), SplitType: make([]int, size), SumHessian: make([]number, size),
		TreeParam: map[string]string{"num_deleted": "0", "num_feature": numFeature, "num_nodes": strconv.Itoa(size), "size_leaf_vector": "0"},
	}
	x.Parents[0] = math.MaxInt32 // XGBoost's "no parent"
	for i := range n {
		l, r := t.nodeID(t.Left[i]), t.nodeID(t.Right[i])
		x.LeftChildren[i], x.RightChildren[i] = l, r
		x.Parents[l], x.Parents[r] = i, i
		x.SplitIndices[i] = t.Feature[i]
		x.SplitConditions[i] = number(splitCondition(t.Threshold[i]))
		x.DefaultLeft[i] = 1
		x.SumHessian[i] = 1
	}
	for j, v := range t.Leaf {
		i := n + j
		x.LeftChildren[i], x.RightChildren[i] = -1, -1
		x.SplitConditions[i], x.BaseWeights[i] = number(v), number(v)
		x.SumHessian[i] = 1
	}
	return x
}

// number is a float32 that JSON-encodes as a number XGBoost's parser reads
// as a float: with a decimal point or an exponent ("0.0", not "0", which it
// takes for an integer and refuses where a float belongs).
type number float32

func (n number) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(n), 'g', -1, 32)
	if !bytes.ContainsAny(b, ".e") {
		b = append(b, ".0"...)
	}
	return b, nil
}
