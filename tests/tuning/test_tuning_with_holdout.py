"""A challenger that won is trained again with the hold-out rows it was judged on
(tuning.challenge.with_holdout, tuning.steps.extend): the decision is the judged one's, what is
registered has learned from the newest rows, and a challenger that lost is left as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tuning.test_tuning_search_fusion import CASES as FUSION_CASES
from tests.tuning.tuning_factories import drifting_data, make_rows, make_spec
from tuning import persist
from tuning.challenge import Champion, Outcome, Split, conclude, prepare, search
from tuning.export import OnnxModel, predict_sklearn, to_onnx
from tuning.fitting import fit_quietly
from tuning.fusion import fused_members
from tuning.pipeline import build_pipeline
from tuning.spec import ModelSpec
from tuning.warm import continue_training


def judged_only(spec: ModelSpec) -> ModelSpec:
    retrain = spec.retrain.model_copy(update={"refit_holdout": False})
    return spec.model_copy(update={"retrain": retrain})


def everything(split: Split) -> tuple[pd.DataFrame, np.ndarray]:
    return pd.concat([split.X_train, split.X_hold]), np.concatenate([split.y_train, split.y_hold])


def assert_same_decision(out: Outcome, judged: Outcome, held: int) -> None:
    assert judged.decision.promote and out.decision.promote
    assert out.decision.metrics == judged.decision.metrics
    assert out.decision.reason == (
        f"{judged.decision.reason}; then trained with the {held} hold-out rows"
    )
    assert out.holdout == judged.holdout
    assert out.with_holdout and not judged.with_holdout
    assert out.parity.ok and out.onnx and out.onnx != judged.onnx
    (trial,) = [t for t in out.trials if t.stage == "with hold-out"]
    assert trial.error is None and trial.rows == list(out.candidate.rows)
    assert not [t for t in judged.trials if t.stage == "with hold-out"]


def predictions(pipeline: object, X: pd.DataFrame, task: str) -> np.ndarray:
    p = predict_sklearn(pipeline, X)
    return p.proba if task == "classification" else p.labels


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_winning_refit_is_refit_on_its_window_up_to_the_newest_row(task: str) -> None:
    spec = make_spec(
        task,
        retrain={"max_candidates": 3, "windows": [None, 300], "fusion": False},
    )
    rows, labels = make_rows(spec, 800, seed=4)
    split = prepare(spec, rows, labels)
    result = search(spec, split, None)
    judged = conclude(judged_only(spec), split, result, None)  # a first version: vs baseline
    out = conclude(spec, split, result, None)
    n_train, n = split.holdout

    assert_same_decision(out, judged, n - n_train)
    cand, before = out.candidate, judged.candidate
    assert cand.kind == before.kind == "refit" and cand.config == before.config
    assert cand.window == before.window and before.rows[1] == n_train
    assert cand.rows == (max(0, n - (cand.window or n)), n)
    # The very config, seed and rows: the same model as a fresh fit on that window.
    X, y = everything(split)
    fresh = build_pipeline(spec, cand.config, random_state=spec.retrain.seed)
    fit_quietly(fresh, X.iloc[cand.rows[0] :], y[cand.rows[0] :])
    np.testing.assert_allclose(predictions(cand.pipeline, X, task), predictions(fresh, X, task))
    # What is registered is that model, as ONNX and as the stored pipeline.
    assert out.pipeline_bytes is not None and out.onnx is not None
    stored = persist.loads(out.pipeline_bytes)
    np.testing.assert_allclose(predictions(stored, X, task), predictions(fresh, X, task))
    served = OnnxModel(out.onnx, spec).predict(split.X_hold)
    expected = predict_sklearn(fresh, split.X_hold)
    if task == "classification":
        np.testing.assert_allclose(served.proba, expected.proba, atol=1e-4)
    else:
        np.testing.assert_allclose(served.labels, expected.labels, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_winning_fusion_refits_every_member_with_the_judged_weights(task: str) -> None:
    spec, seed = FUSION_CASES[task]
    rows, labels = make_rows(spec, 600, seed=seed)
    split = prepare(spec, rows, labels)
    result = search(spec, split, None)
    judged = conclude(judged_only(spec), split, result, None)
    out = conclude(spec, split, result, None)
    n_train, n = split.holdout

    assert judged.candidate.kind == out.candidate.kind == "fusion"
    assert_same_decision(out, judged, n - n_train)
    config, before = out.candidate.config, judged.candidate.config
    assert config["weights"] == before["weights"]
    for member, old in zip(config["members"], before["members"], strict=True):
        assert member["config"] == old["config"] and member["window"] == old["window"]
        assert old["rows"][1] == n_train
        assert member["rows"] == [max(0, n - (member["window"] or n)), n]
    assert out.candidate.rows == (min(m["rows"][0] for m in config["members"]), n)
    assert fused_members(out.candidate.pipeline)[1] == pytest.approx(before["weights"])


def test_a_winning_warm_start_continues_on_the_holdout_rows() -> None:
    n, drift = 1500, 750
    spec = make_spec("classification", retrain={"max_candidates": 2, "families": ["logistic"]})
    X, y = drifting_data(spec, n, drift_at=drift)
    pipeline = build_pipeline(spec, {"family": "sgd"}, random_state=0)
    fit_quietly(pipeline, X[:drift], y[:drift])
    champion = Champion(1, to_onnx(pipeline, spec), pipeline, drift)
    rows = X.to_dict("records")
    split = prepare(spec, rows, list(y), champion_end=drift)
    result = search(spec, split, champion)
    judged = conclude(judged_only(spec), split, result, champion)
    out = conclude(spec, split, result, champion)
    n_train, end = split.holdout

    assert judged.candidate.kind == out.candidate.kind == "warm_start"
    assert_same_decision(out, judged, end - n_train)
    assert judged.candidate.rows == (drift, n_train) and out.candidate.rows == (drift, end)
    epochs = judged.candidate.config["epochs"]
    Xa, ya = everything(split)
    expected = continue_training(
        judged.candidate.pipeline, Xa[n_train:], ya[n_train:], epochs=epochs
    )
    np.testing.assert_allclose(
        predict_sklearn(out.candidate.pipeline, Xa).proba, predict_sklearn(expected, Xa).proba
    )


def test_a_challenger_that_lost_is_registered_as_judged() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 2, "fusion": False})
    rows, labels = make_rows(spec, 600, seed=2)
    split = prepare(spec, rows, labels)
    result = search(spec, split, None)
    first = conclude(judged_only(spec), split, result, None)
    assert first.onnx is not None
    # Judged against itself as the champion: no gain, no promotion, nothing trained again.
    twin = Champion(1, first.onnx, first.candidate.pipeline, None)
    out = conclude(spec, split, result, twin)

    assert not out.decision.promote and not out.with_holdout
    assert out.candidate.rows[1] == split.holdout[0] and out.onnx == first.onnx
    assert "then trained with" not in out.decision.reason
    assert not [t for t in out.trials if t.stage == "with hold-out"]
