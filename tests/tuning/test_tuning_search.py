"""tuning.search: the refit search (validation, windows, budget, determinism, narrowing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tuning.tuning_factories import make_data, make_spec
from tuning.export import predict_sklearn
from tuning.search import TuningError, tune


def test_same_seed_gives_same_best_config_and_predictions() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 5, "windows": [None, 200]})
    X, y = make_data(spec, 600, seed=4)
    first = tune(spec, X, y, seed=7)
    second = tune(spec, X, y, seed=7)
    assert first.best.config == second.best.config
    assert (first.best.kind, first.best.window, first.best.rows) == (
        second.best.kind,
        second.best.window,
        second.best.rows,
    )
    a, b = predict_sklearn(first.best.pipeline, X), predict_sklearn(second.best.pipeline, X)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.proba, b.proba)
    strip = [{k: v for k, v in t.to_json().items() if k != "seconds"} for t in first.trials]
    assert strip == [
        {k: v for k, v in t.to_json().items() if k != "seconds"} for t in second.trials
    ]


def test_result_shape_final_refit_includes_validation_rows() -> None:
    spec = make_spec("regression", retrain={"max_candidates": 4, "holdout_fraction": 0.25})
    X, y = make_data(spec, 400, seed=5)
    seen: list[float] = []
    result = tune(spec, X, y, progress=seen.append)
    best = result.best
    assert best.kind == "refit" and best.rows == (0, 400) and best.window is None
    assert np.isfinite(best.validation_score)
    json.dumps([t.to_json() for t in result.trials], allow_nan=False)  # the job result's form
    rungs = [t for t in result.trials if t.stage.startswith("rung")]
    assert len({json.dumps(t.config, sort_keys=True) for t in rungs}) == 4
    # Every candidate trains strictly before the shared validation split (newest 25% = 100 rows).
    assert all(t.rows[1] == 300 for t in rungs)
    final = result.trials[-1]
    assert final.stage == "final" and final.rows == [0, 400]
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 5
    # Successive halving: the first rung trains on the newest third, later rungs on more.
    first_rung = [t for t in rungs if t.stage == "rung 0"]
    assert all(t.rows == [200, 300] for t in first_rung)
    assert len(first_rung) == 4 and len(rungs) < 3 * 4


def test_window_is_kept_for_the_final_refit() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 2, "windows": [150]})
    X, y = make_data(spec, 500, seed=6)
    best = tune(spec, X, y).best
    assert best.window == 150 and best.rows == (350, 500)
    assert best.pipeline[-1].n_features_in_ > 0


def test_families_and_fixed_params_narrow_the_search() -> None:
    spec = make_spec(
        "classification",
        retrain={
            "max_candidates": 4,
            "families": ["logistic"],
            "fixed_params": {"C": 0.5, "scaler": "robust", "n_estimators": 11},
        },
    )
    X, y = make_data(spec, 400, seed=8)
    result = tune(spec, X, y)
    configs = [t.config for t in result.trials]
    assert all(c["family"] == "logistic" for c in configs)
    assert all(c["C"] == 0.5 and c["scaler"] == "robust" for c in configs)
    assert all("n_estimators" not in c for c in configs)  # not a logistic parameter
    assert result.best.pipeline[-1].C == 0.5


def test_fixed_family_and_unknown_keys() -> None:
    spec = make_spec(
        "regression",
        retrain={"max_candidates": 3, "fixed_params": {"family": "random_forest", "alpha": 3.0}},
    )
    X, y = make_data(spec, 300, seed=9)
    configs = [t.config for t in tune(spec, X, y).trials]
    assert {c["family"] for c in configs} == {"random_forest"}
    assert all(c["n_estimators"] % 2 == 1 and c["scaler"] == "none" for c in configs)
    bad = make_spec("regression", retrain={"fixed_params": {"colour": "blue"}})
    with pytest.raises(ValueError, match="colour"):
        tune(bad, X, y)


def test_a_tiny_time_budget_still_finishes_one_candidate() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 8, "max_seconds": 1e-6})
    X, y = make_data(spec, 300, seed=10)
    result = tune(spec, X, y)
    rungs = [t for t in result.trials if t.stage.startswith("rung")]
    assert len(rungs) == 1 and result.best.rows == (0, 300)


def test_too_few_rows() -> None:
    spec = make_spec("classification")
    X, y = make_data(spec, 12)
    with pytest.raises(TuningError, match="too few"):
        tune(spec, X, y)


def test_defaults_are_fast_on_two_thousand_rows() -> None:
    spec = make_spec("classification", n_numeric=9, retrain={"max_candidates": 6})
    X, y = make_data(spec, 2000, seed=11)
    result = tune(spec, X, y)
    total = sum(t.seconds for t in result.trials)
    assert total < 20, result.trials
