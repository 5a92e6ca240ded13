"""tuning.pipeline + tuning.export: every family converts to ONNX with parity, names are fixed."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from tests.tuning.tuning_factories import make_data, make_spec
from tuning.export import OnnxModel, check_parity, predict_sklearn, to_onnx
from tuning.pipeline import build_pipeline, resolve_config
from tuning.spec import CLASSIFICATION_FAMILIES, REGRESSION_FAMILIES

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"imputer": "median", "scaler": "standard"},
    "interactions+select": {
        "imputer": "mean",
        "scaler": "robust",
        "interactions": True,
        "select_k": 0.5,
    },
    "minmax+select": {"imputer": "median", "scaler": "minmax", "select_k": 0.75},
}
# Small but real estimators, so that 30 fits stay fast.
SMALL = {"n_estimators": 15, "max_depth": 5, "min_samples_leaf": 3, "hidden_layer_sizes": (16,)}


def _fit(spec: Any, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pipe = build_pipeline(spec, config, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pipe.fit(X, y)


def _eval_frame(spec: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Hold-out rows plus an unseen category and an all-missing row."""
    extra = pd.DataFrame(
        [
            {**{c: 0.5 for c in spec.numeric_features}, "region": "never-seen"},
            {**{c: np.nan for c in spec.numeric_features}, "region": None},
        ]
    )
    return pd.concat([X, extra], ignore_index=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("family", CLASSIFICATION_FAMILIES)
def test_classification_parity(family: str, variant: str) -> None:
    spec = make_spec("classification")
    n_classes = 3 if variant == "interactions+select" else 2
    X, y = make_data(spec, 700, seed=1, n_classes=n_classes)
    pipe = _fit(spec, {"family": family, **VARIANTS[variant], **SMALL}, X[:500], y[:500])
    onnx_bytes = to_onnx(pipe, spec)
    report = check_parity(pipe, onnx_bytes, spec, _eval_frame(spec, X[500:]))
    assert report.ok, report.reason
    assert report.rows == 202 and report.label_agreement == 1.0 and report.max_abs_diff <= 1e-4


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("family", REGRESSION_FAMILIES)
def test_regression_parity(family: str, variant: str) -> None:
    spec = make_spec("regression")
    X, y = make_data(spec, 700, seed=2)
    pipe = _fit(spec, {"family": family, **VARIANTS[variant], **SMALL}, X[:500], y[:500])
    report = check_parity(pipe, to_onnx(pipe, spec), spec, _eval_frame(spec, X[500:]))
    assert report.ok, report.reason


def test_classifier_graph_names_shapes_and_metadata() -> None:
    spec = make_spec("classification")
    X, y = make_data(spec, 300, n_classes=3)
    pipe = _fit(spec, {"family": "logistic"}, X, y)
    onnx_bytes = to_onnx(pipe, spec)
    model = OnnxModel(onnx_bytes, spec)
    inputs = model.session.get_inputs()
    assert [i.name for i in inputs] == spec.feature_names
    assert all(i.shape[1] == 1 for i in inputs)
    assert [i.type for i in inputs] == ["tensor(float)"] * 4 + ["tensor(string)"]
    outputs = {o.name: o for o in model.session.get_outputs()}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"].type == "tensor(string)" and len(outputs["label"].shape) == 1
    assert outputs["probabilities"].type == "tensor(float)"
    assert outputs["probabilities"].shape[1] == 3
    assert model.classes == ["0", "1", "2"] == sorted(model.classes)
    props = {p.key: p.value for p in onnx.load_from_string(onnx_bytes).metadata_props}
    assert props["loopserve.task"] == "classification"

    pred = model.predict(X[:10])
    assert pred.labels.shape == (10,) and pred.labels.dtype == object
    assert pred.proba is not None and pred.proba.shape == (10, 3)
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0, atol=1e-5)
    # The label is the first column of the highest probability, in sorted class order.
    assert list(pred.labels) == [model.classes[i] for i in pred.proba.argmax(axis=1)]


def test_regressor_graph_names_and_shapes() -> None:
    spec = make_spec("regression")
    X, y = make_data(spec, 300)
    pipe = _fit(spec, {"family": "ridge"}, X, y)
    model = OnnxModel(to_onnx(pipe, spec), spec)
    (output,) = model.session.get_outputs()
    assert output.name == "variable" and output.type == "tensor(float)" and output.shape[1] == 1
    pred = model.predict(X[:7])
    assert pred.labels.shape == (7,) and pred.labels.dtype == np.float64
    assert pred.proba is None and pred.classes is None
    np.testing.assert_allclose(pred.labels, predict_sklearn(pipe, X[:7]).labels, rtol=1e-4)


def test_onnx_model_accepts_raw_missing_categoricals() -> None:
    """API code may hand None/NaN categoricals: they become the sentinel on both sides."""
    spec = make_spec("classification")
    X, y = make_data(spec, 300)
    pipe = _fit(spec, {"family": "logistic"}, X, y)
    model = OnnxModel(to_onnx(pipe, spec), spec)
    raw = X[:3].copy()
    raw["region"] = [None, np.nan, "north"]
    sentinel = X[:3].copy()
    sentinel["region"] = ["__missing__", "__missing__", "north"]
    np.testing.assert_array_equal(model.predict(raw).proba, model.predict(sentinel).proba)
    np.testing.assert_array_equal(
        predict_sklearn(pipe, raw).proba, predict_sklearn(pipe, sentinel).proba
    )


def test_parity_check_catches_a_different_graph() -> None:
    spec = make_spec("classification")
    X, y = make_data(spec, 400)
    a = _fit(spec, {"family": "logistic", "C": 0.01}, X, y)
    b = _fit(spec, {"family": "random_forest", **SMALL}, X, y)
    report = check_parity(a, to_onnx(b, spec), spec, X)
    assert not report.ok and report.label_agreement < 1.0
    assert "differ" in report.reason


def test_resolve_config_keeps_trees_unscaled_and_forests_odd() -> None:
    spec = make_spec("classification")
    cfg = resolve_config(spec, {"family": "random_forest", "n_estimators": 100, "C": 3.0})
    assert cfg["n_estimators"] == 101 and cfg["scaler"] == "none" and "C" not in cfg
    with pytest.raises(ValueError, match="family"):
        resolve_config(spec, {"family": "ridge"})
    with pytest.raises(ValueError, match="select_k"):
        resolve_config(spec, {"family": "logistic", "select_k": 1.5})
