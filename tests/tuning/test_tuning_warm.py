"""Warm start: a partial_fit champion continues on new rows and follows a drifted concept."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from tests.tuning.tuning_factories import drifting_data, make_data, make_spec
from tuning.export import check_parity, predict_sklearn, to_onnx
from tuning.fitting import fit_quietly, validation_score
from tuning.pipeline import build_pipeline
from tuning.search import tune

N, DRIFT = 1500, 750


@pytest.mark.parametrize("family", ["sgd", "mlp"])
def test_warm_start_follows_a_shifted_concept(family: str) -> None:
    spec = make_spec("classification", retrain={"max_candidates": 2, "families": ["logistic"]})
    X, y = drifting_data(spec, N, drift_at=DRIFT)
    champion = fit_quietly(
        build_pipeline(spec, {"family": family}, random_state=0), X[:DRIFT], y[:DRIFT]
    )
    before = predict_sklearn(champion, X).proba
    n_train = N - 300  # holdout_fraction 0.2
    stale = validation_score("accuracy", champion, X[n_train:], y[n_train:])

    result = tune(spec, X, y, champion=champion, champion_rows_end=DRIFT)

    warm = [t for t in result.trials if t.kind == "warm_start" and t.stage == "validation"]
    assert warm and all(t.rows == [DRIFT, n_train] for t in warm)
    assert max(t.validation_score for t in warm) > stale + 0.2
    best = result.best
    # A logistic refit over both concepts cannot follow the flip; the continued champion can.
    assert best.kind == "warm_start" and best.rows == (DRIFT, N) and best.window is None
    assert best.config["family"] == family and best.config["epochs"] >= 5
    assert best.validation_score > stale + 0.2
    np.testing.assert_array_equal(predict_sklearn(champion, X).proba, before)  # not mutated
    assert check_parity(best.pipeline, to_onnx(best.pipeline, spec), spec, X[-200:]).ok


@pytest.mark.parametrize("family", ["sgd", "mlp"])
def test_warm_start_regression(family: str) -> None:
    spec = make_spec("regression", retrain={"max_candidates": 1, "families": ["ridge"]})
    X, y = drifting_data(spec, N, drift_at=DRIFT)
    champion = fit_quietly(
        build_pipeline(spec, {"family": family}, random_state=0), X[:DRIFT], y[:DRIFT]
    )
    result = tune(spec, X, y, champion=champion, champion_rows_end=DRIFT)
    warm = [t for t in result.trials if t.kind == "warm_start" and t.stage == "validation"]
    stale = validation_score("rmse", champion, X[N - 300 :], y[N - 300 :])
    assert min(t.validation_score for t in warm) < stale


def test_warm_start_skips_with_reasons() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 1, "families": ["logistic"]})
    X, y = make_data(spec, 400, seed=3)
    forest = fit_quietly(build_pipeline(spec, {"family": "random_forest"}, random_state=0), X, y)
    sgd = fit_quietly(build_pipeline(spec, {"family": "sgd"}, random_state=0), X[:200], y[:200])

    def note(champion: Pipeline, rows_end: int) -> str:
        trials = tune(spec, X, y, champion=champion, champion_rows_end=rows_end).trials
        (skip,) = [t for t in trials if t.kind == "warm_start"]
        assert skip.stage == "skipped"
        return str(skip.note)

    assert "no partial_fit" in note(forest, 200)
    assert "validation" in note(sgd, 380)  # it saw rows the validation set is made of
    y_new = y.copy()
    y_new[300:] = "2"
    with_new_class = tune(spec, X, y_new, champion=sgd, champion_rows_end=200).trials
    (skip,) = [t for t in with_new_class if t.kind == "warm_start"]
    assert "never saw" in skip.note
    off = make_spec("classification", retrain={"max_candidates": 1, "warm_start": False})
    trials = tune(off, X, y, champion=sgd, champion_rows_end=200).trials
    assert not [t for t in trials if t.kind == "warm_start"]
