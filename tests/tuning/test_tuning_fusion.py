"""tuning.fusion: fused challengers export as one graph with parity, persist, weigh and pick."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.pipeline import Pipeline

from tests.tuning.tuning_factories import make_data, make_spec
from tuning import persist
from tuning.export import OnnxModel, check_parity, predict_sklearn, to_onnx
from tuning.fitting import fit_quietly, validation_score
from tuning.fusion import (
    fuse,
    fused_candidate,
    fused_members,
    fusion_weights,
    is_fused,
    refit_fused,
)
from tuning.pipeline import build_pipeline
from tuning.spec import ModelSpec

SMALL = {"n_estimators": 15, "max_depth": 5, "min_samples_leaf": 3, "hidden_layer_sizes": (16,)}
CLF_FAMILIES = ("logistic", "random_forest", "gradient_boosting", "mlp", "sgd")
REG_FAMILIES = ("ridge", "random_forest", "gradient_boosting")
TRAIN = 500


def _fit(spec: ModelSpec, family: str, X: pd.DataFrame, y: np.ndarray, **extra: Any) -> Pipeline:
    return fit_quietly(
        build_pipeline(spec, {"family": family, **SMALL, **extra}, random_state=0), X, y
    )


def _eval_frame(spec: ModelSpec, X: pd.DataFrame) -> pd.DataFrame:
    """Validation rows plus an unseen category and an all-missing row."""
    extra = pd.DataFrame(
        [
            {**{c: 0.5 for c in spec.numeric_features}, "region": "never-seen"},
            {**{c: np.nan for c in spec.numeric_features}, "region": None},
        ]
    )
    return pd.concat([X, extra], ignore_index=True)


@pytest.fixture(scope="module")
def clf() -> tuple[ModelSpec, pd.DataFrame, np.ndarray, list[Pipeline]]:
    """Three classes, 10 % missing numerics and categoricals, five families fitted on 500 rows."""
    spec = make_spec("classification")
    X, y = make_data(spec, 700, seed=1, n_classes=3)
    members = [_fit(spec, f, X[:TRAIN], y[:TRAIN]) for f in CLF_FAMILIES]
    return spec, X, y, members


@pytest.fixture(scope="module")
def reg() -> tuple[ModelSpec, pd.DataFrame, np.ndarray, list[Pipeline]]:
    spec = make_spec("regression")
    X, y = make_data(spec, 700, seed=2)
    members = [_fit(spec, f, X[:TRAIN], y[:TRAIN]) for f in REG_FAMILIES]
    return spec, X, y, members


def test_classification_mixed_families_export_as_one_graph_with_parity(clf: Any) -> None:
    spec, X, y, members = clf
    fused = fuse(spec, members, [0.3, 0.2, 0.2, 0.2, 0.1])
    assert is_fused(fused) and isinstance(fused[-1], VotingClassifier)
    assert list(fused[-1].classes_) == ["0", "1", "2"]
    onnx_bytes = to_onnx(fused, spec)
    report = check_parity(fused, onnx_bytes, spec, _eval_frame(spec, X[TRAIN:]))
    assert report.ok, report.reason
    assert report.label_agreement == 1.0 and report.max_abs_diff <= 1e-5

    # The same contract as one pipeline: inputs per raw column, label + probabilities tensor.
    single = OnnxModel(to_onnx(members[0], spec), spec).session
    model = OnnxModel(onnx_bytes, spec)
    io = [(i.name, i.type, i.shape[1:]) for i in model.session.get_inputs()]
    assert io == [(i.name, i.type, i.shape[1:]) for i in single.get_inputs()]
    outs = [(o.name, o.type, o.shape[1:]) for o in model.session.get_outputs()]
    assert outs == [(o.name, o.type, o.shape[1:]) for o in single.get_outputs()]
    assert model.classes == ["0", "1", "2"]
    graph = onnx.load_from_string(onnx_bytes).graph
    assert len([n for n in graph.node if n.op_type == "TreeEnsembleClassifier"]) == 2
    used = {name for n in graph.node for name in n.input}
    assert all(init.name in used for init in graph.initializer)  # no ORT warning on load

    # The weighted mean of the members' probabilities, and a label from the argmax.
    Xv = X[TRAIN:]
    expected = sum(
        w * m.predict_proba(Xv) for w, m in zip([0.3, 0.2, 0.2, 0.2, 0.1], members, strict=True)
    )
    pred = predict_sklearn(fused, Xv)
    np.testing.assert_allclose(pred.proba, expected, atol=1e-12)
    assert list(pred.labels) == [["0", "1", "2"][i] for i in expected.argmax(axis=1)]
    assert np.isfinite(validation_score("log_loss", fused, Xv, y[TRAIN:]))


def test_binary_string_labels_parity() -> None:
    """Non-numeric class names: the members' own labels never reach the graph's outputs."""
    spec = make_spec("classification")
    X, y = make_data(spec, 600, seed=3)
    y = np.array(["no" if v == "0" else "yes" for v in y], dtype=object)
    members = [_fit(spec, f, X[:400], y[:400]) for f in ("logistic", "random_forest", "mlp")]
    fused = fuse(spec, members, [1, 1, 1])
    report = check_parity(fused, to_onnx(fused, spec), spec, _eval_frame(spec, X[400:]))
    assert report.ok and report.max_abs_diff <= 1e-5, report.reason
    assert set(predict_sklearn(fused, X[400:]).labels) <= {"no", "yes"}


def test_regression_export_parity_and_mean(reg: Any) -> None:
    spec, X, _, members = reg
    fused = fuse(spec, members, [2, 1, 1])
    assert isinstance(fused[-1], VotingRegressor)
    onnx_bytes = to_onnx(fused, spec)
    report = check_parity(fused, onnx_bytes, spec, _eval_frame(spec, X[TRAIN:]))
    assert report.ok, report.reason
    model = OnnxModel(onnx_bytes, spec)
    assert [o.name for o in model.session.get_outputs()] == ["variable"]
    Xv = X[TRAIN:]
    expected = 0.5 * members[0].predict(Xv) + 0.25 * (
        members[1].predict(Xv) + members[2].predict(Xv)
    )
    np.testing.assert_allclose(predict_sklearn(fused, Xv).labels, expected, rtol=1e-12)
    np.testing.assert_allclose(model.predict(Xv).labels, expected, rtol=1e-4)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_persistence_round_trip(task: str, clf: Any, reg: Any) -> None:
    spec, X, _, members = clf if task == "classification" else reg
    fused = fuse(spec, members[:3], [0.5, 0.3, 0.2])
    data = persist.dumps(fused)
    assert hasattr(fused[-1], "named_estimators_")  # dumps left the original as it was
    # Nothing beyond the existing allow-list is needed.
    assert set(sio.get_untrusted_types(data=data)) <= set(persist.TRUSTED_TYPES)
    loaded = persist.loads(data)
    assert is_fused(loaded) and list(loaded[-1].named_estimators_) == ["m0", "m1", "m2"]
    assert loaded[-1].named_estimators_["m1"] is loaded[-1].estimators_[1]
    a, b = predict_sklearn(fused, X), predict_sklearn(loaded, X)
    np.testing.assert_array_equal(a.labels, b.labels)
    if a.proba is not None:
        np.testing.assert_array_equal(a.proba, b.proba)
    assert fused_members(loaded)[1] == pytest.approx([0.5, 0.3, 0.2])
    report = check_parity(loaded, to_onnx(loaded, spec), spec, X[TRAIN:])
    assert report.ok, report.reason


def test_a_file_with_a_bunch_is_still_refused(clf: Any) -> None:
    spec, _, _, members = clf
    raw = sio.dumps(fuse(spec, members[:2], [1, 1]))  # not through persist.dumps
    with pytest.raises(persist.UntrustedModelError, match="Bunch"):
        persist.loads(raw)


def test_fusion_weights() -> None:
    assert fusion_weights([0.8, 0.8, 0.8], True) == pytest.approx([1 / 3] * 3)
    w = fusion_weights([0.9, 0.7, 0.8], True)
    assert w == pytest.approx([2 / 4.5, 1 / 4.5, 1.5 / 4.5])
    assert sum(w) == pytest.approx(1.0) and w[0] == pytest.approx(2 * w[1])
    # Lower is better: the same weights for mirrored losses; scale-free.
    assert fusion_weights([1.0, 3.0, 2.0], False) == pytest.approx(w)
    assert fusion_weights([1000.0, 3000.0, 2000.0], False) == pytest.approx(w)
    assert fusion_weights([0.5, 0.7], True, max_ratio=1.0) == pytest.approx([0.5, 0.5])
    assert fusion_weights([2.0], False) == [1.0]
    assert fusion_weights([0.9, 0.7, 0.8], True) == w  # deterministic
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(ValueError):
            fusion_weights(bad, True)


def test_mismatched_classes_are_refused(clf: Any) -> None:
    spec, X, y, members = clf
    two = np.isin(y[:TRAIN], ["0", "1"])
    partial = _fit(spec, "logistic", X[:TRAIN][two], y[:TRAIN][two])
    with pytest.raises(ValueError, match="same classes"):
        fuse(spec, [members[0], partial], [1, 1])
    # fused_candidate skips it rather than failing.
    fitted = [(partial, 0.99), (members[0], 0.8), (members[1], 0.7)]
    out = fused_candidate(spec, fitted, X[TRAIN:], y[TRAIN:])
    assert out is not None and out[2] == [1, 2]


def test_members_without_probabilities_or_of_the_wrong_task_are_refused(clf: Any, reg: Any) -> None:
    spec, X, y, members = clf
    hinge = build_pipeline(spec, {"family": "sgd"}, random_state=0).set_params(model__loss="hinge")
    hinge = fit_quietly(hinge, X[:TRAIN], y[:TRAIN])
    with pytest.raises(ValueError, match="predict_proba"):
        fuse(spec, [members[0], hinge], [1, 1])
    assert fused_candidate(spec, [(hinge, 0.9), (members[0], 0.8)], X[TRAIN:], y[TRAIN:]) is None
    with pytest.raises(ValueError, match="regression"):
        fuse(reg[0], [members[0]], [1])
    with pytest.raises(ValueError, match="weights"):
        fuse(spec, members[:2], [1])
    with pytest.raises(ValueError, match="weights"):
        fuse(spec, members[:2], [0, 0])


def test_fused_candidate_picks_diverse_top_members_and_beats_the_worst(clf: Any) -> None:
    spec, X, y, members = clf
    Xv, yv = X[TRAIN:], y[TRAIN:]
    scores = [validation_score("accuracy", m, Xv, yv) for m in members]
    fitted = list(zip(members, scores, strict=True))
    out = fused_candidate(spec, fitted, Xv, yv, max_members=3)
    assert out is not None
    fused, score, used = out
    ranked = sorted(range(5), key=lambda i: (-scores[i], i))
    assert used == ranked[:3]  # five distinct families: simply the top three, best first
    assert score == validation_score("accuracy", fused, Xv, yv)
    assert score >= min(scores[i] for i in used)
    assert fused_members(fused)[1] == pytest.approx(fusion_weights([scores[i] for i in used], True))

    # Two variants of the best family: the second place goes to another family.
    twin = _fit(spec, CLF_FAMILIES[ranked[0]], X[:TRAIN], y[:TRAIN], C=0.5, alpha=2e-4)
    fitted2 = [*fitted, (twin, scores[ranked[0]])]
    _, _, used2 = fused_candidate(spec, fitted2, Xv, yv, max_members=2) or (None, None, [])
    assert used2 == [ranked[0], ranked[1]]
    # Same diversity key for all: plain top two by score (ties by index).
    _, _, used3 = fused_candidate(spec, fitted2, Xv, yv, max_members=2, groups=[0] * 6) or (
        None,
        None,
        [],
    )
    assert used3 == [ranked[0], 5]
    assert fused_candidate(spec, fitted[:1], Xv, yv) is None
    assert fused_candidate(spec, [(members[0], float("nan")), fitted[1]], Xv, yv) is None


def test_fusion_of_complementary_regressors_is_no_worse_than_its_members(reg: Any) -> None:
    """rmse of a weighted mean <= weighted mean of the rmses (Minkowski): below the worst."""
    spec, X, y, members = reg
    Xv, yv = X[TRAIN:], y[TRAIN:]
    scores = [validation_score("rmse", m, Xv, yv) for m in members]
    out = fused_candidate(spec, list(zip(members, scores, strict=True)), Xv, yv)
    assert out is not None
    fused, score, used = out
    weights = fused_members(fused)[1]
    assert used == sorted(range(3), key=lambda i: scores[i])
    assert score <= sum(w * scores[i] for w, i in zip(weights, used, strict=True)) + 1e-9
    assert score < max(scores)


def test_refit_fused_keeps_weights_and_flattens_nested_fusions(reg: Any) -> None:
    spec, X, y, members = reg
    fused = fuse(spec, members, [2, 1, 1])
    members_refit = [
        fit_quietly(build_pipeline(spec, {"family": f, **SMALL}, random_state=0), X, y)
        for f in REG_FAMILIES
    ]
    refit = refit_fused(spec, members_refit, fused_members(fused)[1])
    assert fused_members(refit)[1] == pytest.approx([0.5, 0.25, 0.25])
    assert fused_members(refit)[0][0] is members_refit[0]
    assert check_parity(refit, to_onnx(refit, spec), spec, X[TRAIN:]).ok

    nested = fuse(spec, [fuse(spec, members[:2], [1, 1]), members[2]], [1, 1])
    inner, weights = fused_members(nested)
    assert len(inner) == 3 and weights == pytest.approx([0.25, 0.25, 0.5])
