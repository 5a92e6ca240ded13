"""The two bench models, trained on synthetic data with a fixed seed and cached.

Both pipelines start with a ColumnTransformer over positional columns, so one definition takes
loopserve's frame named f0..f29 (exported to ONNX, one input per feature) and MLServer's
[N, 30] ndarray (pickled with joblib); the two fits are checked identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bench.config import CLASSES, FEATURES, N_FEATURES, SEED, WORK
from tuning.export import TARGET_OPSET, check_parity, to_onnx
from tuning.spec import ModelSpec

MODELS_DIR = WORK / "models"
TRAIN_ROWS = 5000
PAYLOAD_ROWS = 2000  # held-out rows the payloads are cut from


@dataclass(frozen=True)
class BenchModel:
    """One model as every server needs it."""

    name: str
    description: str
    onnx: bytes  # version 1, the champion
    onnx_v2: bytes  # version 2, for the swap test
    joblib_path: Path  # the same pipeline for MLServer
    X: np.ndarray  # float32 [PAYLOAD_ROWS, 30] rows the payloads use
    y: list[str]  # their true labels, for feedback


def spec_for(name: str) -> ModelSpec:
    features = [{"name": f, "type": "numeric"} for f in FEATURES]
    spec = {"name": name, "task": "classification", "target": "y", "features": features}
    return ModelSpec.model_validate(
        spec | {"classes": CLASSES, "retrain": {"min_new_labels": None}}
    )


def _pipelines(trees: int) -> dict[str, tuple[str, Pipeline]]:
    cols = list(range(N_FEATURES))
    scaled = ColumnTransformer([("num", StandardScaler(), cols)])
    lr = LogisticRegression(max_iter=1000, random_state=SEED)
    forest = RandomForestClassifier(n_estimators=trees, random_state=SEED, n_jobs=1)
    passthrough = ColumnTransformer([("num", "passthrough", cols)])
    return {
        "bench_lr": (
            f"StandardScaler + LogisticRegression ({N_FEATURES} features)",
            Pipeline([("cols", scaled), ("clf", lr)]),
        ),
        "bench_rf": (
            f"RandomForestClassifier, {trees} trees ({N_FEATURES} features)",
            Pipeline([("cols", passthrough), ("clf", forest)]),
        ),
    }


def build_models(
    log: Callable[[str], None] = print,
    folder: Path = MODELS_DIR,
    train_rows: int = TRAIN_ROWS,
    payload_rows: int = PAYLOAD_ROWS,
    trees: int = 100,
) -> list[BenchModel]:
    """Train, export and check the models, or load them from the cache of a previous run."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = f"{sklearn.__version__} {train_rows} {payload_rows} {trees}".encode()
    key = hashlib.sha256(Path(__file__).read_bytes() + sizes).hexdigest()[:16]
    manifest = folder / "manifest.json"
    X, y = make_classification(
        n_samples=train_rows + payload_rows,
        n_features=N_FEATURES,
        n_informative=12,
        n_redundant=6,
        random_state=SEED,
    )
    X = np.round(X, 5)
    labels = np.asarray([str(v) for v in y], dtype=object)
    X_train, y_train = X[:train_rows], labels[:train_rows]
    X_pay = X[train_rows:].astype(np.float32)
    y_pay = [str(v) for v in labels[train_rows:]]
    cached = manifest.exists() and json.loads(manifest.read_text()).get("key") == key
    out = []
    for name, (description, template) in _pipelines(trees).items():
        paths = {k: folder / f"{name}{k}" for k in (".onnx", ".v2.onnx", ".joblib")}
        if not (cached and all(p.exists() for p in paths.values())):
            log(f"training {name}")
            _train(name, template, X_train, y_train, paths)
        onnx, onnx_v2 = paths[".onnx"].read_bytes(), paths[".v2.onnx"].read_bytes()
        out.append(BenchModel(name, description, onnx, onnx_v2, paths[".joblib"], X_pay, y_pay))
    manifest.write_text(json.dumps({"key": key}))
    return out


def _train(
    name: str, template: Pipeline, X: np.ndarray, y: np.ndarray, paths: dict[str, Path]
) -> None:
    spec = spec_for(name)
    frame = pd.DataFrame(X, columns=FEATURES)
    served = clone(template).fit(frame, y)
    onnx = to_onnx(served, spec)
    report = check_parity(served, onnx, spec, frame.iloc[:2000])
    if not report.ok:
        raise RuntimeError(f"{name}: ONNX parity failed: {report.reason}")
    mlserver = clone(template).fit(X, y)
    if not np.allclose(mlserver.predict_proba(X[:500]), served.predict_proba(frame.iloc[:500])):
        raise RuntimeError(f"{name}: the ndarray and DataFrame fits differ")
    # Version 2: another regularisation / forest seed, so a swap really changes the graph.
    other = clone(template)
    if "LogisticRegression" in type(other[-1]).__name__:
        other.set_params(clf__C=0.3)
    else:
        other.set_params(clf__random_state=SEED + 1)
    onnx_v2 = to_onnx(other.fit(frame, y), spec)
    paths[".onnx"].write_bytes(onnx)
    paths[".v2.onnx"].write_bytes(onnx_v2)
    joblib.dump(mlserver, paths[".joblib"])


def single_input_onnx(model: BenchModel) -> bytes:
    """The same fitted pipeline with one [N, 30] input instead of one input per feature, for
    the in-process floor only (what the per-feature inputs cost per call)."""
    path = model.joblib_path.with_suffix(".single-input.onnx")
    if path.exists() and path.stat().st_mtime >= model.joblib_path.stat().st_mtime:
        return path.read_bytes()
    pipeline = joblib.load(model.joblib_path)
    onnx = convert_sklearn(
        pipeline,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={type(pipeline[-1]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    ).SerializeToString()
    path.write_bytes(onnx)
    return onnx
