"""Writes MLflow model packages around models the real libraries train, laid
out as MLflow 2.x writes them (mlflow/models/model.py, the xgboost, onnx and
sklearn flavour modules, mlflow/models/utils.py for the input example), and
records each library's own predictions on held-out rows. MLflow itself is
not packaged by Debian, so the layout is written here: the MLmodel YAML
(yaml.safe_dump of the model's dict, keys sorted), the signature's inputs and
outputs as JSON strings of column or tensor specs, and the input example in
pandas' "split" orient (no index) or MLflow's tf-serving {"inputs": ...}.

Usage: gen.py OUT_DIR ROWS [golden]. Writes OUT_DIR/<case>/ (the package
directory) and OUT_DIR/<case>.expected.json for the cases below
(inference/mlflow_test.go). With "golden" (the committed copy in golden/),
model.pkl holds a pickled dict instead of the scikit-learn model: the
runtime refuses it unread either way, and the repository keeps no pickle of
library objects.
"""
import json
import os
import pickle
import sys
import uuid

import numpy as np
import onnx
import sklearn
import xgboost as xgb
import yaml
from onnx import TensorProto, helper
from sklearn.linear_model import LinearRegression, LogisticRegression

out, n_rows = sys.argv[1], int(sys.argv[2])
golden = sys.argv[3:] == ["golden"]
rng = np.random.default_rng(21)
NAMES = ["vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct"]
MLFLOW_VERSION = "2.9.2"  # the layout written is that of this release


def data(n, classes=None):
    X = np.round(rng.normal(size=(n, len(NAMES))) * 2, 1).astype(np.float32).astype(np.float64)
    if classes == 3:
        X[:, 3] = np.round(X[:, 3] * 100)  # a whole number: the signature's "long" column
    z = X[:, 0] * 1.5 - X[:, 1] + 0.5 * X[:, 2] ** 2 - 0.3 * X[:, 3] + 0.2 * rng.normal(size=n)
    if classes is None:
        return X, 40 + 3 * z
    if classes == 2:
        return X, (z > 1).astype(int)
    return X, np.digitize(z, [0, 3])


def colspec(types):
    return json.dumps([{"type": t, "name": n, "required": True} for n, t in zip(NAMES, types)])


def tensorspec(dtype, shape):
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}])


def package(name, flavors, files, signature, example, example_info, expected):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for fname, content in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(content)
    if example is not None:
        with open(os.path.join(d, example_info["artifact_path"]), "w") as f:
            json.dump(example, f)
    env = {"name": "mlflow-env", "channels": ["conda-forge"],
           "dependencies": ["python=3.11.2", "pip<=23.0.1", {"pip": ["mlflow==" + MLFLOW_VERSION]}]}
    with open(os.path.join(d, "conda.yaml"), "w") as f:
        yaml.safe_dump(env, stream=f, default_flow_style=False)
    with open(os.path.join(d, "python_env.yaml"), "w") as f:
        yaml.safe_dump({"python": "3.11.2", "build_dependencies": ["pip==23.0.1"],
                        "dependencies": ["-r requirements.txt"]}, stream=f, default_flow_style=False)
    with open(os.path.join(d, "requirements.txt"), "w") as f:
        f.write("mlflow==" + MLFLOW_VERSION)
    size = sum(os.path.getsize(os.path.join(d, p)) for p in os.listdir(d))
    mlmodel = {"artifact_path": "model", "flavors": flavors, "mlflow_version": MLFLOW_VERSION,
               "model_size_bytes": size, "model_uuid": uuid.UUID(bytes=rng.bytes(16)).hex,
               "run_id": uuid.UUID(bytes=rng.bytes(16)).hex, "utc_time_created": "2026-12-06 05:00:00.000000"}
    if signature is not None:
        mlmodel["signature"] = {"inputs": signature[0], "outputs": signature[1], "params": None}
    if example_info is not None:
        mlmodel["saved_input_example_info"] = example_info
    with open(os.path.join(d, "MLmodel"), "w") as f:
        yaml.safe_dump(mlmodel, stream=f, default_flow_style=False)
    with open(os.path.join(out, name + ".expected.json"), "w") as f:
        json.dump(expected, f)


def pyfunc(loader, data_file):
    return {"loader_module": loader, "data": data_file, "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "python_version": "3.11.2"}


def split(X):  # pandas' DataFrame.to_dict(orient="split") without "index"
    return {"columns": NAMES, "data": X.tolist()}


def expected(task, classes, tol, X, predict, lib):
    return {"task": task, "classes": classes, "tol": tol, "libraries": lib, "features": NAMES,
            "X": X.tolist(), "predict": np.asarray(predict, dtype=float).reshape(len(X), -1).tolist()}


def save_booster(booster, fname):
    path = os.path.join(out, "tmp-" + fname)
    booster.save_model(path)
    with open(path, "rb") as f:
        b = f.read()
    os.remove(path)
    return b


ex_info = {"artifact_path": "input_example.json", "type": "dataframe", "pandas_orient": "split"}
libs = {"xgboost": xgb.__version__, "sklearn": sklearn.__version__, "onnx": onnx.__version__}

# XGBoost binary classifier, JSON, trained on named columns (what a DataFrame gives).
X, y = data(600, 2)
Xt, _ = data(n_rows, 2)
bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "base_score": 0.4},
                xgb.DMatrix(X, label=y, feature_names=NAMES), num_boost_round=12)
package("xgboost_json",
        {"python_function": pyfunc("mlflow.xgboost", "model.json"),
         "xgboost": {"code": None, "data": "model.json", "model_class": "xgboost.core.Booster",
                     "model_format": "json", "xgb_version": xgb.__version__}},
        {"model.json": save_booster(bst, "model.json")},
        (colspec(["double"] * 5), json.dumps([{"type": "float", "required": True}])),
        split(X[:3]), ex_info,
        expected("binary", 2, 1e-6, Xt, bst.predict(xgb.DMatrix(Xt, feature_names=NAMES)), libs))

# XGBoost regressor, UBJSON.
X, y = data(600)
Xt, _ = data(n_rows)
bst = xgb.train({"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2}, xgb.DMatrix(X, label=y, feature_names=NAMES),
                num_boost_round=20)
package("xgboost_ubj",
        {"python_function": pyfunc("mlflow.xgboost", "model.ubj"),
         "xgboost": {"code": None, "data": "model.ubj", "model_class": "xgboost.core.Booster",
                     "model_format": "ubj", "xgb_version": xgb.__version__}},
        {"model.ubj": save_booster(bst, "model.ubj")},
        (colspec(["double"] * 5), json.dumps([{"type": "float", "required": True}])),
        split(X[:2]), ex_info,
        expected("regression", 1, 1e-6, Xt, bst.predict(xgb.DMatrix(Xt, feature_names=NAMES)), libs))

# mlflow.onnx.log_model of a linear regression from numpy arrays: a tensor
# signature and a tf-serving example (ONNX's float32, tolerance 1e-5).
X, y = data(600)
Xt, _ = data(n_rows)
lr = LinearRegression().fit(X, y)
graph = helper.make_graph(
    [helper.make_node("LinearRegressor", ["X"], ["variable"], domain="ai.onnx.ml", name="linear",
                      coefficients=lr.coef_.tolist(), intercepts=[float(lr.intercept_)])],
    "linear", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 5])],
    [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
om = helper.make_model(graph, producer_name="skl2onnx", opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
om.ir_version = 8
onnx.checker.check_model(om)
package("onnx_tensor",
        {"python_function": pyfunc("mlflow.onnx", "model.onnx"),
         "onnx": {"code": None, "data": "model.onnx", "onnx_version": onnx.__version__,
                  "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}},
        {"model.onnx": om.SerializeToString()},
        (tensorspec("float32", [-1, 5]), tensorspec("float32", [-1, 1])),
        {"inputs": X[:2].astype(np.float32).tolist()},
        {"artifact_path": "input_example.json", "type": "ndarray", "format": "tf-serving"},
        expected("regression", 1, 1e-5, Xt, lr.predict(Xt), libs))

# A scikit-learn multinomial logistic regression logged with both its sklearn
# flavour (a pickle, never read) and an onnx flavour (what skl2onnx writes
# for it: LinearClassifier, SOFTMAX). Named columns from the signature.
X, y = data(900, 3)
Xt, _ = data(n_rows, 3)
lg = LogisticRegression(max_iter=2000).fit(X, y)
graph = helper.make_graph(
    [helper.make_node("LinearClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml", name="linear",
                      coefficients=lg.coef_.ravel().tolist(), intercepts=lg.intercept_.tolist(),
                      classlabels_ints=[0, 1, 2], post_transform="SOFTMAX", multi_class=1)],
    "logistic", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 5])],
    [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
     helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])])
om = helper.make_model(graph, producer_name="skl2onnx", opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
om.ir_version = 8
onnx.checker.check_model(om)
pkl = pickle.dumps({"golden": "not the model"} if golden else lg, protocol=4)
sk_flavor = {"code": None, "pickled_model": "model.pkl", "serialization_format": "cloudpickle",
             "sklearn_version": sklearn.__version__}
package("sklearn_onnx",
        {"python_function": pyfunc("mlflow.sklearn", "model.pkl"), "sklearn": sk_flavor,
         "onnx": {"code": None, "data": "model.onnx", "onnx_version": onnx.__version__,
                  "providers": ["CPUExecutionProvider"]}},
        {"model.pkl": pkl, "model.onnx": om.SerializeToString()},
        (colspec(["double", "double", "double", "long", "double"]), json.dumps([{"type": "long", "required": True}])),
        split(X[:4]), ex_info,
        expected("multiclass", 3, 1e-5, Xt, lg.predict_proba(Xt), libs))

# The same model as mlflow.sklearn.log_model writes it: a pickle alone.
package("sklearn_pickle",
        {"python_function": pyfunc("mlflow.sklearn", "model.pkl"), "sklearn": sk_flavor},
        {"model.pkl": pkl},
        (colspec(["double"] * 5), json.dumps([{"type": "long", "required": True}])),
        split(X[:2]), ex_info,
        expected("multiclass", 3, 0, Xt[:1], lg.predict_proba(Xt[:1]), libs))
