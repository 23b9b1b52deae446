"""Trains small scikit-learn models, writes each as an ONNX model built by
hand with onnx.helper (skl2onnx is not packaged by Debian), and records
scikit-learn's own predictions on held-out rows.

Usage: gen.py OUT_DIR ROWS. Writes OUT_DIR/<case>.onnx and
OUT_DIR/<case>.expected.json for the cases below (inference/onnx_test.go).

Tree thresholds and leaf values are written as double tensors
(nodes_values_as_tensor, ai.onnx.ml opset 3), so a float32 input is compared
with scikit-learn's float64 threshold exactly as scikit-learn compares its
float32-cast input; only the float32 output rounds. Splits are rewritten at
random into the other node modes (x <= t is x > t with the branches swapped,
x < nextafter(t), not x >= nextafter(t); on the 0/1 feature x == 0 and
not x != 0), so every mode is exercised on the same trees.
"""
import json
import sys

import numpy as np
import onnx
import sklearn
from onnx import TensorProto, helper
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import Normalizer, StandardScaler

out, n_rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
F = 5


def data(n, classes=None, missing=0.0):
    X = rng.normal(size=(n, F))
    X[:, 0] = rng.integers(0, 2, size=n)  # a 0/1 feature, for BRANCH_EQ/NEQ
    X[:, 1] = np.round(X[:, 1], 1)  # many values on a split
    z = X[:, 0] + X[:, 1] - X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=n)
    if classes is None:
        y = 40 + 5 * z
    elif classes == 2:
        y = (z > 0.2).astype(int)
    else:
        y = np.digitize(z, [-0.5, 0.8])
    X = X.astype(np.float32).astype(np.float64)  # values a float32 input holds exactly
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, y


class Nodes:
    """The nodes_* and weight attributes of a tree ensemble."""

    def __init__(self):
        self.a = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes",
                                  "truenodeids", "falsenodeids", "missing")}
        self.w = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}

    def add_tree(self, tid, left, right, feature, threshold, leaf_weights, missing_left=None):
        for i in range(len(left)):
            a = self.a
            a["treeids"].append(tid)
            a["nodeids"].append(i)
            if left[i] == -1 or left[i] == right[i] == 0:
                for k, v in (("featureids", 0), ("values", 0.0), ("modes", "LEAF"),
                             ("truenodeids", 0), ("falsenodeids", 0), ("missing", 0)):
                    a[k].append(v)
                for target, w in leaf_weights(i):
                    self.w["treeids"].append(tid)
                    self.w["nodeids"].append(i)
                    self.w["ids"].append(target)
                    self.w["weights"].append(float(w))
                continue
            f, t, l, r = int(feature[i]), float(threshold[i]), int(left[i]), int(right[i])
            miss = int(missing_left[i]) if missing_left is not None else 0
            mode = rng.choice(["BRANCH_LEQ", "BRANCH_GT", "BRANCH_LT", "BRANCH_GTE", "EQ"])
            if mode == "EQ":
                mode = "BRANCH_LEQ"
                if f == 0 and 0 <= t < 1:  # x <= t is x == 0
                    # NaN != 0 is true: a NEQ node cannot send a missing
                    # value to its false branch.
                    mode, t = "BRANCH_EQ" if miss else rng.choice(["BRANCH_EQ", "BRANCH_NEQ"]), 0.0
            if mode in ("BRANCH_GT", "BRANCH_NEQ"):  # the negation: swap the branches
                l, r, miss = r, l, 1 - miss if missing_left is not None else 0
            elif mode in ("BRANCH_LT", "BRANCH_GTE"):
                t = float(np.nextafter(t, np.inf))
                if mode == "BRANCH_GTE":
                    l, r, miss = r, l, 1 - miss if missing_left is not None else 0
            a["featureids"].append(f)
            a["values"].append(t)
            a["modes"].append(str(mode))
            a["truenodeids"].append(l)
            a["falsenodeids"].append(r)
            a["missing"].append(miss)

    def attrs(self, prefix):
        a, w = self.a, self.w
        d = dict(nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
                 nodes_modes=a["modes"], nodes_truenodeids=a["truenodeids"], nodes_falsenodeids=a["falsenodeids"],
                 nodes_values_as_tensor=dtensor("v", a["values"]),
                 **{prefix + "_treeids": w["treeids"], prefix + "_nodeids": w["nodeids"], prefix + "_ids": w["ids"],
                    prefix + "_weights_as_tensor": dtensor("w", w["weights"])})
        if any(a["missing"]):
            d["nodes_missing_value_tracks_true"] = a["missing"]
        return d


def dtensor(name, values):
    return helper.make_tensor(name, TensorProto.DOUBLE, [len(values)], [float(v) for v in values])


def sk_tree(nodes, tid, tree, weights):
    t = tree.tree_
    nodes.add_tree(tid, t.children_left, t.children_right, t.feature, t.threshold, lambda i: weights(t, i))


def save(name, nodes_, inputs, outputs, X, predict, task, classes, tol, initializers=()):
    graph = helper.make_graph(nodes_, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, producer_name="modelfleet-gen", opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, f"{out}/{name}.onnx")
    rows = [[None if np.isnan(v) else float(v) for v in r] for r in X]
    exp = dict(sklearn=sklearn.__version__, onnx=onnx.__version__, task=task, classes=classes, tol=tol,
               X=rows, predict=np.asarray(predict, dtype=float).reshape(len(X), -1).tolist())
    with open(f"{out}/{name}.expected.json", "w") as f:
        json.dump(exp, f)


def fin(name="X", typ=TensorProto.FLOAT, cols=F):
    return helper.make_tensor_value_info(name, typ, [None, cols])


label_out = lambda: helper.make_tensor_value_info("label", TensorProto.INT64, [None])
prob_out = lambda k: helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, k])


def zip_out():
    t = onnx.TypeProto()
    t.sequence_type.elem_type.map_type.key_type = TensorProto.INT64
    t.sequence_type.elem_type.map_type.value_type.tensor_type.elem_type = TensorProto.FLOAT
    return helper.make_value_info("output_probability", t)


def classifier(nodes, labels, post, base=None, zipmap=False):
    attrs = nodes.attrs("class")
    if base is not None:
        attrs["base_values_as_tensor"] = dtensor("b", base)
    ns = [helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                           name="trees", classlabels_int64s=labels, post_transform=post, **attrs)]
    if zipmap:
        ns.append(helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml",
                                   name="zipmap", classlabels_int64s=labels))
    return ns


# A random forest, binary: each tree's class proportions, averaged (ZipMap output).
X, y = data(2000, 2)
Xt, _ = data(n_rows, 2)
m = RandomForestClassifier(n_estimators=6, max_depth=5, random_state=0).fit(X, y)
nodes = Nodes()
for k, est in enumerate(m.estimators_):
    sk_tree(nodes, k, est, lambda t, i: [(c, v / t.value[i][0].sum() / len(m.estimators_))
                                         for c, v in enumerate(t.value[i][0])])
save("rf_binary", classifier(nodes, [0, 1], "NONE", zipmap=True), [fin()], [label_out(), zip_out()],
     Xt, m.predict_proba(Xt.astype(np.float32))[:, 1:], "binary", 2, 1e-6)

# Gradient boosting, binary: one score, base value and LOGISTIC.
m = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
nodes = Nodes()
for k, est in enumerate(m.estimators_[:, 0]):
    sk_tree(nodes, k, est, lambda t, i: [(0, m.learning_rate * t.value[i][0][0])])
base = m._raw_predict_init(Xt[:1].astype(np.float32))[0]
save("gbt_binary", classifier(nodes, [0, 1], "LOGISTIC", base=base), [fin()], [label_out(), prob_out(2)],
     Xt, m.predict_proba(Xt.astype(np.float32))[:, 1:], "binary", 2, 1e-6)

# Gradient boosting, three classes: a tree per class and round, SOFTMAX.
X3, y3 = data(2000, 3)
Xt3, _ = data(n_rows, 3)
m = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(X3, y3)
nodes = Nodes()
for r in range(m.estimators_.shape[0]):
    for c in range(3):
        sk_tree(nodes, r * 3 + c, m.estimators_[r, c], lambda t, i, c=c: [(c, m.learning_rate * t.value[i][0][0])])
base = m._raw_predict_init(Xt3[:1].astype(np.float32))[0]
save("gbt_multiclass", classifier(nodes, [0, 1, 2], "SOFTMAX", base=base), [fin()], [label_out(), prob_out(3)],
     Xt3, m.predict_proba(Xt3.astype(np.float32)), "multiclass", 3, 1e-6)

# A random forest regressor (AVERAGE) and gradient boosting (SUM, base value).
Xr, yr = data(2000)
Xtr, _ = data(n_rows)
reg_out = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]


def regressor(nodes, agg, base=None):
    attrs = nodes.attrs("target")
    if base is not None:
        attrs["base_values_as_tensor"] = dtensor("b", base)
    return [helper.make_node("TreeEnsembleRegressor", ["X"], ["variable"], domain="ai.onnx.ml", name="trees",
                             n_targets=1, aggregate_function=agg, **attrs)]


m = RandomForestRegressor(n_estimators=6, max_depth=6, random_state=0).fit(Xr, yr)
nodes = Nodes()
for k, est in enumerate(m.estimators_):
    sk_tree(nodes, k, est, lambda t, i: [(0, t.value[i][0][0])])
save("rf_regression", regressor(nodes, "AVERAGE"), [fin()], reg_out, Xtr, m.predict(Xtr.astype(np.float32)),
     "regression", 1, 1e-6)

m = GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=0).fit(Xr, yr)
nodes = Nodes()
for k, est in enumerate(m.estimators_[:, 0]):
    sk_tree(nodes, k, est, lambda t, i: [(0, m.learning_rate * t.value[i][0][0])])
save("gbt_regression", regressor(nodes, "SUM", base=[m.init_.constant_[0][0]]), [fin()], reg_out, Xtr,
     m.predict(Xtr.astype(np.float32)), "regression", 1, 1e-6)

# Histogram gradient boosting with missing values: each split's
# missing_go_to_left becomes nodes_missing_value_tracks_true. Double input.
Xm, ym = data(3000, missing=0.1)
Xtm, _ = data(n_rows, missing=0.1)
m = HistGradientBoostingRegressor(max_iter=20, max_depth=4, random_state=0).fit(Xm, ym)
nodes = Nodes()
for k, (p,) in enumerate(m._predictors):
    nd = p.nodes
    left = np.where(nd["is_leaf"], -1, nd["left"])
    nodes.add_tree(k, left, nd["right"], nd["feature_idx"], nd["num_threshold"],
                   lambda i, nd=nd: [(0, nd["value"][i])], missing_left=nd["missing_go_to_left"])
save("hgb_missing", regressor(nodes, "SUM", base=[float(m._baseline_prediction)]),
     [fin(typ=TensorProto.DOUBLE)], reg_out, Xtm, m.predict(Xtm), "regression", 1, 1e-6)

# Linear models, computed in float32 by ONNX's operators (tolerance 1e-5):
# Imputer and Scaler before a multinomial logistic regression (SOFTMAX).
Xl, yl = data(2000, 3)
Xtl, _ = data(n_rows, 3, missing=0.05)
sc = StandardScaler().fit(Xl)
m = LogisticRegression(max_iter=1000).fit(sc.transform(Xl), yl)
mean = Xl.mean(axis=0)
filled = np.where(np.isnan(Xtl), mean, Xtl)
ns = [helper.make_node("Imputer", ["X"], ["imputed"], domain="ai.onnx.ml", name="imputer",
                       imputed_value_floats=mean.tolist(), replaced_value_float=float("nan")),
      helper.make_node("Scaler", ["imputed"], ["scaled"], domain="ai.onnx.ml", name="scaler",
                       offset=sc.mean_.tolist(), scale=(1 / sc.scale_).tolist()),
      helper.make_node("LinearClassifier", ["scaled"], ["label", "probabilities"], domain="ai.onnx.ml",
                       name="linear", coefficients=m.coef_.ravel().tolist(), intercepts=m.intercept_.tolist(),
                       classlabels_ints=[0, 1, 2], post_transform="SOFTMAX", multi_class=1)]
save("logistic_multiclass", ns, [fin()], [label_out(), prob_out(3)], Xtl,
     m.predict_proba(sc.transform(filled)), "multiclass", 3, 1e-5)

# Normalizer (L2) before a linear regression.
nm = Normalizer("l2")
m = LinearRegression().fit(nm.transform(Xr), yr)
ns = [helper.make_node("Normalizer", ["X"], ["normalized"], domain="ai.onnx.ml", name="normalizer", norm="L2"),
      helper.make_node("LinearRegressor", ["normalized"], ["variable"], domain="ai.onnx.ml", name="linear",
                       coefficients=m.coef_.tolist(), intercepts=[float(m.intercept_)])]
save("linear_regression", ns, [fin()], reg_out, Xtr, m.predict(nm.transform(Xtr)), "regression", 1, 1e-5)

# A small MLP (ReLU, softmax) in dense operators: Gemm, MatMul, Add, Relu,
# Softmax, and a Cast, Flatten, Reshape and Identity on the way.
m = MLPClassifier(hidden_layer_sizes=(8, 6), max_iter=500, random_state=0).fit(X3, y3)
W = [helper.make_tensor(f"W{i}", TensorProto.FLOAT, w.shape, w.astype(np.float32).ravel()) for i, w in enumerate(m.coefs_)]
B = [helper.make_tensor(f"B{i}", TensorProto.FLOAT, b.shape, b.astype(np.float32)) for i, b in enumerate(m.intercepts_)]
shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, F])
ns = [helper.make_node("Cast", ["X"], ["x64"], to=TensorProto.DOUBLE, name="cast64"),
      helper.make_node("Cast", ["x64"], ["x32"], to=TensorProto.FLOAT, name="cast32"),
      helper.make_node("Reshape", ["x32", "shape"], ["xr"], name="reshape"),
      helper.make_node("Flatten", ["xr"], ["xf"], name="flatten"),
      helper.make_node("Gemm", ["xf", "W0", "B0"], ["h0"], name="gemm"),
      helper.make_node("Relu", ["h0"], ["a0"], name="relu0"),
      helper.make_node("MatMul", ["a0", "W1"], ["m1"], name="matmul"),
      helper.make_node("Add", ["m1", "B1"], ["h1"], name="add"),
      helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
      helper.make_node("Gemm", ["a1", "W2", "B2"], ["logits"], name="out"),
      helper.make_node("Identity", ["logits"], ["logits2"], name="identity"),
      helper.make_node("Softmax", ["logits2"], ["probabilities"], name="softmax")]
save("mlp_multiclass", ns, [fin()], [prob_out(3)], Xt3, m.predict_proba(Xt3), "multiclass", 3, 1e-5,
     initializers=W + B + [shape])
