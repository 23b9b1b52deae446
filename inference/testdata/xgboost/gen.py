"""Train small XGBoost models and record the library's own predictions.

Usage: python3 gen.py OUTDIR [HELD_OUT_ROWS]

For each case it writes OUTDIR/<case>.json and OUTDIR/<case>.ubj (the same
booster saved in both encodings) and OUTDIR/<case>.expected.json:

  {"xgboost": version, "objective": ..., "num_class": ..., "features": [...],
   "X": held-out rows (null = missing), "predict": Booster.predict per row
   (a list per row for multi:softprob), "y": the held-out labels,
   "metrics": scikit-learn's metrics of "predict" against "y"}

inference/xgboost_test.go runs it with the Debian packages python3-xgboost
and python3-sklearn, compares the Go runtime's predictions with "predict"
and its validation metrics with "metrics".
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb
from sklearn import metrics

out = sys.argv[1]
held_out = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = np.random.default_rng(15)


def data(n, f=5):
    # One decimal, so that many held-out values equal a split condition and
    # the comparison's side (< versus <=, in float32) matters.
    X = np.round(rng.normal(size=(n, f)) * 2, 1)
    mask = rng.random(size=X.shape) < 0.08
    X[mask] = np.nan
    return X


def scores(objective, y, p):
    """scikit-learn's metrics of predictions p (float64) for labels y."""
    if objective == "binary:logistic":
        return {"auc": metrics.roc_auc_score(y, p), "accuracy": metrics.accuracy_score(y, p >= 0.5),
                "f1": metrics.f1_score(y, p >= 0.5), "log_loss": metrics.log_loss(y, p)}
    if objective == "multi:softprob":
        return {"accuracy": metrics.accuracy_score(y, p.argmax(axis=1)),
                "macro_f1": metrics.f1_score(y, p.argmax(axis=1), average="macro"),
                "log_loss": metrics.log_loss(y, p, labels=list(range(p.shape[1])))}
    if objective == "multi:softmax":
        return {"accuracy": metrics.accuracy_score(y, p), "macro_f1": metrics.f1_score(y, p, average="macro")}
    return {"rmse": metrics.mean_squared_error(y, p) ** 0.5, "mae": metrics.mean_absolute_error(y, p),
            "r2": metrics.r2_score(y, p)}


def save(name, booster, X, predict, names, y):
    booster.save_model(os.path.join(out, name + ".json"))
    booster.save_model(os.path.join(out, name + ".ubj"))
    cfg = json.loads(booster.save_config())
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in X]
    objective = cfg["learner"]["objective"]["name"]
    predict = np.asarray(predict, dtype=np.float64)
    exp = {
        "xgboost": xgb.__version__,
        "objective": cfg["learner"]["objective"]["name"],
        "num_class": int(cfg["learner"]["learner_model_param"]["num_class"]),
        "features": names,
        "X": rows,
        "predict": predict.tolist(),
        "y": np.asarray(y, dtype=np.float64).tolist(),
        "metrics": {k: float(v) for k, v in scores(objective, np.asarray(y), predict).items()},
    }
    with open(os.path.join(out, name + ".expected.json"), "w") as f:
        json.dump(exp, f)


names = ["vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct"]
Xtr, Xte = data(400), data(held_out)
lin = lambda X: np.nan_to_num(X[:, 0]) * 1.5 - np.nan_to_num(X[:, 1]) + 0.5 * np.nan_to_num(X[:, 2]) ** 2
noise = lambda X: rng.normal(size=len(X))


def train(params, y, rounds=12, feature_names=names, X=Xtr):
    d = xgb.DMatrix(X, label=y, feature_names=feature_names)
    return xgb.train(dict(params, max_depth=4, eta=0.3, seed=1), d, rounds)


def predict(b, X=Xte, feature_names=names):
    return b.predict(xgb.DMatrix(X, feature_names=feature_names))


# binary:logistic with a base_score away from 0.5, so the logit transform of
# the intercept shows.
binary = lambda X: (lin(X) + noise(X) > 1).astype(int)
yb, ybte = binary(Xtr), binary(Xte)
b = train({"objective": "binary:logistic", "base_score": 0.3}, yb)
save("binary", b, Xte, predict(b), names, ybte)

# The same, trained on a bare array: no feature names in the file.
b = train({"objective": "binary:logistic"}, yb, feature_names=None)
save("binary_unnamed", b, Xte, predict(b, feature_names=None), ["f%d" % i for i in range(5)], ybte)

# Regression with a large intercept and values around 40: float32
# accumulation, as XGBoost does, matters at this scale.
target = lambda X: 40 + 3 * lin(X) + noise(X)
yr, yrte = target(Xtr), target(Xte)
b = train({"objective": "reg:squarederror", "base_score": 38.5}, yr, rounds=30)
save("regression", b, Xte, predict(b), names, yrte)

# Poisson (the exp link and log intercept).
counts = lambda X: rng.poisson(np.exp(0.3 * np.clip(lin(X), -3, 3)))
yp, ypte = counts(Xtr), counts(Xte)
b = train({"objective": "count:poisson"}, yp)
save("poisson", b, Xte, predict(b), names, ypte)

# Multiclass: three classes.
classes = lambda X: np.digitize(lin(X) + noise(X) * 0.5, [0, 2])
yc, ycte = classes(Xtr), classes(Xte)
b = train({"objective": "multi:softprob", "num_class": 3}, yc)
save("softprob", b, Xte, predict(b), names, ycte)
b = train({"objective": "multi:softmax", "num_class": 3}, yc)
save("softmax", b, Xte, predict(b), names, ycte)

# A random forest (several parallel trees per round) and dart's weights.
b = train({"objective": "reg:squarederror", "num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8}, yr, rounds=3)
save("forest", b, Xte, predict(b), names, yrte)
b = train({"booster": "dart", "objective": "binary:logistic", "rate_drop": 0.2, "skip_drop": 0.0}, yb, rounds=10)
save("dart", b, Xte, predict(b), names, ybte)
