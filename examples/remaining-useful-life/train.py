"""Trains the remaining-useful-life example: an XGBoost regressor that
predicts, from one snapshot of a rotating machine's sensors (the bearing
example's six features), how many operating hours its bearing has left.

Usage (Debian: apt-get install python3-xgboost python3-numpy):

    /usr/bin/python3 examples/remaining-useful-life/train.py examples/remaining-useful-life

Writes model.json (XGBoost's own Booster.save_model), validation.csv (the
last 2,000 of 10,000 simulated rows, label = remaining useful life in hours)
and sample.json, and prints the validation RMSE and MAE of XGBoost's own
predictions. The committed outputs are what the stack serves; nothing here
runs at serving time.

The simulation follows the bearing example's (examples/bearing-failure/train):
a bearing's rated life falls with the cube of the load and with speed
(ISO 281), the actual life of each unit spreads around it, and a hidden
degradation level, growing with the share of its life used, shows through
sensor noise in vibration and temperature. Each row is one bearing seen at
a uniformly random point of its life. The target is capped at 20,000 h (a
piecewise-linear RUL, as in NASA's C-MAPSS work): early in a long life
nothing in the sensors tells 25,000 h from 40,000 h left.
"""
import json
import sys

import numpy as np
import xgboost as xgb

FEATURES = ["vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"]
SEED, TRAIN, VALID, CAP = 21, 8000, 2000, 20000.0


def simulate(rng, n):
    speed = rng.choice([990.0, 1485.0, 2975.0], size=n) * (1 + 0.01 * rng.normal(size=n))
    load = np.clip(70 + 15 * rng.normal(size=n), 40, 115)
    rated = 30000 * (75 / load) ** 3 * (1485 / speed)
    life = rated * np.exp(0.3 * rng.normal(size=n))  # this unit's actual life
    age = life * rng.uniform(0, 1, size=n)
    used = age / life
    d = 1 - np.exp(-(2.2 * used) ** 4)  # degradation: quiet for most of the life, then fast
    rms = 0.8 + 0.6 * speed / 1485 + 6 * d ** 2 + 0.4 * np.abs(rng.normal(size=n))
    peak = 0.2 + 0.1 * speed / 1485 + 3 * d ** 1.5 + 0.15 * np.abs(rng.normal(size=n))
    impact = rng.uniform(size=n) < 0.05
    peak = peak + impact * (1 + 2 * rng.uniform(size=n))  # process impacts, not the bearing
    temp = 25 + 5 * rng.normal(size=n) + 0.3 * load + 18 * d ** 2 + 2 * rng.normal(size=n)
    X = np.column_stack([np.round(rms, 2), np.round(peak, 3), np.round(temp, 1), np.round(speed),
                         np.round(load, 1), np.round(age)])
    y = np.round(np.minimum(life - age, CAP))
    return X, y


def main(out):
    rng = np.random.default_rng(SEED)
    X, y = simulate(rng, TRAIN + VALID)
    dtrain = xgb.DMatrix(X[:TRAIN], label=y[:TRAIN], feature_names=FEATURES)
    params = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.1, "subsample": 1.0,
              "min_child_weight": 5, "tree_method": "exact", "nthread": 1, "seed": SEED,
              "base_score": float(np.mean(y[:TRAIN]))}
    booster = xgb.train(params, dtrain, num_boost_round=200)
    booster.save_model(f"{out}/model.json")

    Xv, yv = X[TRAIN:], y[TRAIN:]
    p = booster.predict(xgb.DMatrix(Xv, feature_names=FEATURES))
    rmse = float(np.sqrt(np.mean((p - yv) ** 2)))
    mae = float(np.mean(np.abs(p - yv)))
    with open(f"{out}/validation.csv", "w") as f:
        f.write(",".join(FEATURES + ["label"]) + "\n")
        for row, label in zip(Xv, yv):
            f.write(",".join(str(int(v)) if v == int(v) else repr(float(v)) for v in row) + f",{int(label)}\n")
    # A machine whose bearing has started to wear.
    sample = dict(zip(FEATURES, [6.2, 2.6, 72.5, 1485, 82, 17500]))
    with open(f"{out}/sample.json", "w") as f:
        f.write(json.dumps({"features": sample}, indent=2) + "\n")
    ps = booster.predict(xgb.DMatrix(np.array([list(sample.values())], dtype=np.float32), feature_names=FEATURES))[0]
    print(f"xgboost {xgb.__version__}, numpy {np.__version__}: {TRAIN} training rows, {len(yv)} validation rows "
          f"(RUL mean {yv.mean():.0f} h); validation RMSE {rmse:.1f} h, MAE {mae:.1f} h; sample.json {ps:.0f} h")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
