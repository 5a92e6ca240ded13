"""Export a fitted pipeline to ONNX, run it, and check that ONNX and sklearn agree.

The ONNX contract every consumer relies on:

- one input per raw feature, named as the feature, shape [None, 1]: numeric float32 (NaN for
  missing, imputed in the graph), categorical string (missing already replaced by
  tuning.data.MISSING);
- classification outputs "label" (string [N]) and "probabilities" (float [N, n_classes],
  columns in sorted class order, no ZipMap); regression output "variable" (float [N, 1]);
- metadata_props "loopserve.task", "loopserve.features" and, for classifiers,
  "loopserve.classes" (JSON list).

Labels come from one place on each side: sklearn's ``predict`` and the graph's "label" output
(both are the argmax of the probabilities for every family offered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.pipeline import Pipeline

from tuning.data import MISSING, category
from tuning.spec import ModelSpec

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
LABEL, PROBABILITIES, VARIABLE = "label", "probabilities", "variable"


@dataclass(frozen=True)
class Prediction:
    """What a model said about N rows.

    labels: classification -> object array of str [N]; regression -> float64 [N].
    proba: float64 [N, len(classes)] in the order of ``classes`` (sorted), or None.
    """

    labels: np.ndarray
    proba: np.ndarray | None
    classes: list[str] | None


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX graph reproduces the sklearn pipeline on some rows."""

    ok: bool
    rows: int
    label_agreement: float
    max_abs_diff: float
    reason: str


def _initial_types(spec: ModelSpec) -> list[tuple[str, object]]:
    return [
        (f.name, FloatTensorType([None, 1]) if f.type == "numeric" else StringTensorType([None, 1]))
        for f in spec.features
    ]


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    """Remove initializers no node reads (skl2onnx's soft-voting converter leaves one, and
    onnxruntime warns about it on every session it opens). Graphs with subgraphs are kept as
    they are, since a subgraph may read an outer initializer."""
    graph = model.graph
    subgraph = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in subgraph for n in graph.node for a in n.attribute):
        return
    used = {name for n in graph.node for name in n.input}
    used |= {o.name for o in graph.output} | {i.name for i in graph.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)


def to_onnx(pipeline: Pipeline, spec: ModelSpec) -> bytes:
    """Serialized ONNX model of a fitted pipeline, with the normalised input/output names."""
    estimator = pipeline[-1]
    if spec.task == "classification":
        if not all(isinstance(c, str) for c in estimator.classes_):
            raise ValueError("classes must be strings: fit on tuning.data.target(spec, ...)")
        classes = [str(c) for c in estimator.classes_]
        final_types = [
            (LABEL, StringTensorType([None])),
            (PROBABILITIES, FloatTensorType([None, len(classes)])),
        ]
        options = {type(estimator): {"zipmap": False}}
    else:
        classes = []
        final_types = [(VARIABLE, FloatTensorType([None, 1]))]
        options = None
    model = convert_sklearn(
        pipeline,
        name=spec.name,
        initial_types=_initial_types(spec),
        final_types=final_types,
        options=options,
        target_opset=TARGET_OPSET,
    )
    _drop_unused_initializers(model)
    onnx.helper.set_model_props(
        model,
        {
            "loopserve.task": spec.task,
            "loopserve.features": json.dumps(spec.feature_names),
            **({"loopserve.classes": json.dumps(classes)} if classes else {}),
        },
    )
    return model.SerializeToString()


def onnx_feeds(spec: ModelSpec, X: pd.DataFrame) -> dict[str, np.ndarray]:
    """ONNX inputs for a frame: float32 numerics with NaN, object strings with the sentinel."""
    feeds: dict[str, np.ndarray] = {}
    for f in spec.features:
        col = X[f.name]
        if f.type == "numeric":
            values = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            raw = col.to_numpy(dtype=object)
            values = np.array([v if type(v) is str else category(v) for v in raw], dtype=object)
        feeds[f.name] = values.reshape(-1, 1)
    return feeds


class OnnxModel:
    """An ONNX model ready to predict feature frames (one intra-op thread: faster, steadier)."""

    def __init__(self, onnx_bytes: bytes, spec: ModelSpec) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.spec = spec
        self.session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != spec.feature_names:
            raise ValueError(f"ONNX inputs {inputs} differ from spec features {spec.feature_names}")
        meta = self.session.get_modelmeta().custom_metadata_map
        self.classes: list[str] | None = None
        if spec.task == "classification":
            if "loopserve.classes" not in meta:
                raise ValueError("no loopserve.classes metadata: not written by tuning.to_onnx")
            self.classes = json.loads(meta["loopserve.classes"])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def predict(self, X: pd.DataFrame) -> Prediction:
        """Predict a feature frame (missing categoricals may still be None/NaN here)."""
        outputs = self.session.run(None, onnx_feeds(self.spec, X))
        named = dict(zip(self.output_names, outputs, strict=True))
        if self.spec.task == "regression":
            return Prediction(np.asarray(named[VARIABLE], np.float64).ravel(), None, None)
        labels = np.asarray(named[LABEL], dtype=object).ravel()
        proba = np.asarray(named[PROBABILITIES], dtype=np.float64)
        return Prediction(labels, proba, self.classes)


def _sentinel_categories(X: pd.DataFrame) -> pd.DataFrame:
    """Replace missing values of non-numeric columns by the sentinel, as onnx_feeds does."""
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if not text or not any(X[c].isna().any() for c in text):
        return X
    X = X.copy()
    for c in text:
        X[c] = pd.Series([category(v) for v in X[c].to_numpy(dtype=object)], X.index, object)
    return X


def predict_sklearn(pipeline: Pipeline, X: pd.DataFrame) -> Prediction:
    """Predict with the sklearn pipeline, in the same Prediction shape as OnnxModel."""
    X = _sentinel_categories(X)
    estimator = pipeline[-1]
    if not hasattr(estimator, "classes_"):
        return Prediction(np.asarray(pipeline.predict(X), np.float64).ravel(), None, None)
    labels = np.asarray([str(v) for v in pipeline.predict(X)], dtype=object)
    proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
    return Prediction(labels, proba, [str(c) for c in estimator.classes_])


def check_parity(
    pipeline: Pipeline,
    onnx_bytes: bytes,
    spec: ModelSpec,
    X: pd.DataFrame,
    *,
    atol: float = 1e-4,
) -> ParityReport:
    """Compare sklearn and ONNX predictions on X.

    Classification: labels must agree on every row and probabilities within ``atol``.
    Regression: |onnx - sklearn| <= atol * max(1, |y_i|, mean |y|) on every row, y the sklearn
    values: the graph computes in float32, whose error scales with the typical magnitude of the
    values, not with each row's own (a row near 0 is a sum of large terms).
    """
    n = len(X)
    if n == 0:
        return ParityReport(False, 0, 0.0, 0.0, "no rows to compare")
    expected = predict_sklearn(pipeline, X)
    got = OnnxModel(onnx_bytes, spec).predict(X)
    if spec.task == "regression":
        diff = np.abs(got.labels - expected.labels)
        scale = np.maximum(
            np.abs(expected.labels), max(1.0, float(np.mean(np.abs(expected.labels))))
        )
        bad = int(np.sum(~(diff <= atol * scale)))
        max_diff = float(np.max(diff))
        ok = bad == 0
        rule = f"{atol:g} x max(1, |y|, mean |y|)"
        reason = (
            f"{n} rows within {rule}; max |diff| {max_diff:.3g}"
            if ok
            else f"{bad}/{n} rows differ by more than {rule}; max |diff| {max_diff:.3g}"
        )
        return ParityReport(ok, n, 1.0 - bad / n, max_diff, reason)
    if got.classes != expected.classes:
        return ParityReport(
            False, n, 0.0, float("inf"), f"classes {got.classes} != {expected.classes}"
        )
    agree = got.labels == expected.labels
    agreement = float(np.mean(agree))
    assert got.proba is not None and expected.proba is not None  # classes agreed above
    max_diff = float(np.max(np.abs(got.proba - expected.proba)))
    ok = bool(agree.all()) and max_diff <= atol
    if ok:
        reason = f"{n} rows: labels identical, max |dp| {max_diff:.3g} <= {atol:g}"
    else:
        reason = (
            f"{n} rows: {int(np.sum(~agree))} label(s) differ, max |dp| {max_diff:.3g} "
            f"(allowed {atol:g})"
        )
    return ParityReport(ok, n, agreement, max_diff, reason)


__all__ = [
    "LABEL",
    "MISSING",
    "PROBABILITIES",
    "VARIABLE",
    "OnnxModel",
    "ParityReport",
    "Prediction",
    "check_parity",
    "onnx_feeds",
    "predict_sklearn",
    "to_onnx",
]
