"""A fused challenger competes in every search (tuning.steps._fusion, in finish and in tune)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.tuning.test_tuning_steps import drive_by_hand, without_seconds
from tests.tuning.tuning_factories import make_rows, make_spec
from tuning import data, persist
from tuning.challenge import conclude, prepare, search
from tuning.export import predict_sklearn
from tuning.fusion import fused_candidate, fused_members, is_fused
from tuning.search import SearchState, advance, evaluate, finish, pending, plan, tune
from tuning.spec import ModelSpec
from tuning.state import Trial

# Cheap families, ten candidates (10 -> 4 -> 2 runs reach the last rung), two windows.
CASES = {
    "classification": (
        make_spec(
            "classification",
            metric="log_loss",
            retrain={
                "max_candidates": 10,
                "windows": [None, 150],
                "families": ["logistic", "sgd", "random_forest"],
                "fixed_params": {"n_estimators": 15},
            },
        ),
        0,
    ),
    "regression": (
        make_spec(
            "regression",
            retrain={
                "max_candidates": 10,
                "windows": [None, 150],
                "families": ["ridge", "random_forest"],
                "fixed_params": {"n_estimators": 15},
            },
        ),
        7,
    ),
}


def fusion_trials(trials: list[Trial], stage: str) -> list[Trial]:
    return [t for t in trials if t.kind == "fusion" and t.stage == stage]


def frame(spec: ModelSpec, seed: int, n: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    rows, labels = make_rows(spec, n, seed=seed)
    return data.frame(spec, rows), data.target(spec, labels)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_fusion_that_beats_the_best_run_is_the_challenger_and_exports(task: str) -> None:
    spec, seed = CASES[task]
    rows, labels = make_rows(spec, 600, seed=seed)
    split = prepare(spec, rows, labels)
    # As the search left it (a winner's training with its hold-out: test_tuning_with_holdout).
    judged = spec.model_copy(
        update={"retrain": spec.retrain.model_copy(update={"refit_holdout": False})}
    )
    out = conclude(judged, split, search(spec, split, None), None)
    best, n = out.candidate, out.holdout[0]

    assert best.kind == "fusion" and is_fused(best.pipeline)
    assert out.registrable and out.parity.ok and out.onnx
    (validate,) = fusion_trials(out.trials, "validate")
    (final,) = fusion_trials(out.trials, "final")
    assert validate.validation_score < validate.best_single  # log_loss, rmse: lower wins
    assert "beats" in validate.note and "does not" not in validate.note
    assert best.validation_score == validate.validation_score == final.validation_score
    refits = [t for t in out.trials if t.kind == "refit" and t.stage == "final"]
    assert validate.best_single == refits[-1].validation_score

    # What the worker records: kind, a JSON config, no single window, rows a tuple of ints.
    config = best.config
    assert json.loads(json.dumps(config, allow_nan=False)) == config
    assert config["family"] == "fusion" and config["weights"] == validate.weights
    assert len(config["members"]) == 2 and sum(config["weights"]) == pytest.approx(1)
    assert best.window is None and isinstance(best.rows, tuple)
    starts = [m["rows"][0] for m in config["members"]]
    assert best.rows == (min(starts), n) and all(m["rows"][1] == n for m in config["members"])
    for member, validated in zip(config["members"], validate.members, strict=True):
        assert member["config"] == validated["config"] and member["window"] == validated["window"]
        # Validated on the rows before the validation split, refit on its window up to n.
        assert validated["rows"][1] == validate.rows[1] < n
        assert member["rows"][0] == max(0, n - (member["window"] or n))
    assert config["members"] == final.members
    members, weights = fused_members(best.pipeline)
    assert len(members) == 2 and weights == pytest.approx(config["weights"])

    # The job result carries the trials: plain JSON.
    as_json = [t.to_json() for t in out.trials]
    assert json.loads(json.dumps(as_json, allow_nan=False)) == as_json
    # The registry stores the pipeline with skops: it comes back the same model.
    assert out.pipeline_bytes is not None
    loaded = persist.loads(out.pipeline_bytes)
    X = data.frame(spec, rows)
    a, b = predict_sklearn(best.pipeline, X), predict_sklearn(loaded, X)
    np.testing.assert_array_equal(a.labels, b.labels)
    if task == "classification":
        np.testing.assert_array_equal(a.proba, b.proba)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_a_fusion_that_does_not_beat_the_best_run_is_never_chosen(
    offset: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The winning case again, with the fusion's score set to the best member's (a tie) or worse."""
    spec, seed = CASES["classification"]
    X, y = frame(spec, seed)

    def no_better(*args: Any, **kwargs: Any) -> Any:
        fused, _, chosen = fused_candidate(*args, **kwargs)
        best_member = min(args[1][i][1] for i in chosen)  # log_loss: lower is better
        return fused, best_member + offset, chosen

    monkeypatch.setattr("tuning.steps.fused_candidate", no_better)
    result = tune(spec, X, y, seed=seed)
    (validate,) = fusion_trials(result.trials, "validate")
    assert validate.validation_score == validate.best_single + offset
    assert "does not beat" in validate.note
    assert fusion_trials(result.trials, "final") == []
    assert result.best.kind == "refit" and not is_fused(result.best.pipeline)
    assert result.best.validation_score == validate.best_single


def test_searches_choose_the_fusion_exactly_when_it_validates_better() -> None:
    spec, _ = CASES["classification"]
    chosen = []
    for seed in (6, 0):  # fusion loses at 6 and wins at 0 (see the validate trials)
        result = tune(spec, *frame(spec, seed), seed=seed)
        (validate,) = fusion_trials(result.trials, "validate")
        better = validate.validation_score < validate.best_single
        assert (result.best.kind == "fusion") == better
        chosen.append(result.best.kind)
    assert chosen == ["refit", "fusion"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_fusion_is_the_same_in_one_process_and_in_steps(task: str) -> None:
    spec, seed = CASES[task]
    rows, targets = make_rows(spec, 600, seed=seed)
    X, y = data.frame(spec, rows), data.target(spec, targets)
    one = tune(spec, X, y, seed=seed)
    again = tune(spec, X, y, seed=seed)
    by_hand, _ = drive_by_hand(spec, pd.DataFrame(rows), targets, seed)
    for other in (again, by_hand):
        a, b = one.best, other.best
        assert a.kind == "fusion"
        assert (a.kind, a.config, a.window, a.rows) == (b.kind, b.config, b.window, b.rows)
        assert a.validation_score == b.validation_score
        pa, pb = predict_sklearn(a.pipeline, X), predict_sklearn(b.pipeline, X)
        np.testing.assert_array_equal(pa.labels, pb.labels)
        if task == "classification":
            np.testing.assert_array_equal(pa.proba, pb.proba)
        assert without_seconds(one.trials) == without_seconds(other.trials)


def finished_state(spec: ModelSpec, X: pd.DataFrame, y: np.ndarray, seed: int) -> SearchState:
    state = plan(spec, len(X), seed=seed)
    while not state.finished:
        state = advance(spec, state, [evaluate(spec, X, y, state, t) for t in pending(state)])
    return state


def test_no_fusion_once_the_budget_is_spent() -> None:
    spec, seed = CASES["classification"]
    X, y = frame(spec, seed)
    state = finished_state(spec, X, y, seed)
    assert len(state.alive) == 2
    late = SearchState.from_json({**state.to_json(), "deadline": 0.0})
    result = finish(spec, X, y, late)
    (skipped,) = fusion_trials(result.trials, "skipped")
    assert "budget" in skipped.note and result.best.kind == "refit"
    assert finish(spec, X, y, state).best.kind == "fusion"


def test_the_spec_can_turn_fusion_off() -> None:
    spec, seed = CASES["classification"]
    X, y = frame(spec, seed)
    off = spec.model_copy(update={"retrain": spec.retrain.model_copy(update={"fusion": False})})
    result = tune(off, X, y, seed=seed)
    assert result.best.kind == "refit"
    assert not [t for t in result.trials if t.kind == "fusion"]


def test_a_failing_fusion_refit_leaves_the_best_run(monkeypatch: pytest.MonkeyPatch) -> None:
    spec, seed = CASES["regression"]
    X, y = frame(spec, seed)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("member 1 has classes ['a'], member 0 has ['a', 'b']")

    monkeypatch.setattr("tuning.steps.refit_fused", broken)
    result = tune(spec, X, y, seed=seed)
    (final,) = fusion_trials(result.trials, "final")
    assert "ValueError: member 1" in final.error
    assert result.best.kind == "refit"
    json.dumps([t.to_json() for t in result.trials], allow_nan=False)
