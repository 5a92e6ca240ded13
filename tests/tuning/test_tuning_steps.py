"""tuning.steps: the search as steps that may run anywhere, in any order, gives tune()'s result."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.tuning.tuning_factories import make_data, make_rows, make_spec
from tuning import data
from tuning.export import predict_sklearn
from tuning.fitting import fit_quietly
from tuning.pipeline import build_pipeline
from tuning.search import (
    FitTask,
    SearchState,
    TuneResult,
    TuningError,
    advance,
    evaluate,
    finish,
    pending,
    plan,
    tune,
)
from tuning.spec import ModelSpec
from tuning.state import Trial
from tuning.steps import done_fraction, failed_trial


def wire_trial(trial: Trial) -> Trial:
    """A trial as it comes back from a worker: through JSON."""
    return Trial.from_json(json.loads(json.dumps(trial.to_json(), allow_nan=False)))


def wire(state: SearchState) -> SearchState:
    """The state as another process sees it after a trip through a JSON message."""
    return SearchState.from_json(json.loads(json.dumps(state.to_json(), allow_nan=False)))


def without_seconds(trials: list[Trial]) -> list[dict[str, Any]]:
    return [{k: v for k, v in t.to_json().items() if k != "seconds"} for t in trials]


def drive_by_hand(
    spec: ModelSpec, X: Any, y: Any, seed: int, **champion: Any
) -> tuple[TuneResult, int]:
    """Fit each rung's tasks in reverse, report them shuffled, JSON between every step."""
    shuffle, rungs = random.Random(1), 0
    state = wire(plan(spec, len(X), seed=seed))
    while not state.finished:
        tasks = pending(wire(state))
        assert [t.run for t in tasks] == sorted(t.run for t in tasks)
        trials = [wire_trial(evaluate(spec, X, y, wire(state), t)) for t in tasks[::-1]]
        shuffle.shuffle(trials)
        state, rungs = wire(advance(spec, wire(state), trials)), rungs + 1
    assert pending(state) == []
    return finish(spec, X, y, wire(state), **champion), rungs


@pytest.mark.parametrize(
    ("task", "retrain", "with_champion"),
    [
        ("classification", {"max_candidates": 5, "windows": [None, 200]}, True),
        ("regression", {"max_candidates": 7, "windows": [None, 100, 300]}, False),
    ],
)
def test_steps_by_hand_give_the_same_result_as_tune(
    task: str, retrain: dict[str, Any], with_champion: bool
) -> None:
    spec = make_spec(task, retrain=retrain)
    rows, targets = make_rows(spec, 600, seed=12)
    X, y = data.frame(spec, rows), data.target(spec, targets)
    champion: dict[str, Any] = {}
    if with_champion:
        sgd = build_pipeline(spec, {"family": "sgd"}, random_state=0)
        champion = {"champion": fit_quietly(sgd, X[:300], y[:300]), "champion_rows_end": 300}
    one_process = tune(spec, X, y, seed=3, **champion)
    # Workers get the raw rows and labels (None for missing); evaluate normalises them itself.
    by_hand, rungs = drive_by_hand(spec, pd.DataFrame(rows), targets, 3, **champion)

    a, b = one_process.best, by_hand.best
    assert rungs == 3
    assert (a.kind, a.config, a.window, a.rows) == (b.kind, b.config, b.window, b.rows)
    assert a.validation_score == b.validation_score
    pa, pb = predict_sklearn(a.pipeline, X), predict_sklearn(b.pipeline, X)
    np.testing.assert_array_equal(pa.labels, pb.labels)
    if task == "classification":
        np.testing.assert_array_equal(pa.proba, pb.proba)
    assert without_seconds(one_process.trials) == without_seconds(by_hand.trials)
    assert any(t.kind == "warm_start" for t in by_hand.trials) == with_champion


def test_an_expired_deadline_finishes_after_the_current_rung() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 7, "families": ["logistic"]})
    X, y = make_data(spec, 400, seed=13)
    state = plan(spec, len(X), seed=1)
    assert state.deadline == pytest.approx(time.time() + 60, abs=5)
    state = advance(spec, state, [evaluate(spec, X, y, state, t) for t in pending(state)])
    assert (state.rung, state.finished, len(state.alive)) == (1, False, 3)

    late = state.to_json()
    late["deadline"] = time.time() - 1
    state = SearchState.from_json(late)
    rung_1 = [evaluate(spec, X, y, state, t) for t in pending(state)]
    done = advance(spec, state, rung_1)
    assert done.finished and done.rung == 1 and pending(done) == []
    best_first = sorted(rung_1, key=lambda t: (-t.validation_score, t.run))
    assert done.alive == [t.run for t in best_first]
    result = finish(spec, X, y, done)
    assert result.best.config == best_first[0].config
    assert [t.stage for t in result.trials][-3:] == ["rung 1", "final", "skipped"]
    # Three runs were left to fuse, but the budget is spent: the fusion says so and stands down.
    assert result.trials[-1].kind == "fusion" and "budget" in result.trials[-1].note
    assert result.best.kind == "refit"

    # A rung reported only in part (the budget ran out mid-rung) also ends the search.
    partial = advance(spec, state, rung_1[1:])
    assert partial.finished and sorted(partial.alive) == [t.run for t in rung_1[1:]]


def test_every_fit_failing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec("regression", retrain={"max_candidates": 4, "families": ["ridge"]})
    X, y = make_data(spec, 300, seed=14)
    state = plan(spec, len(X), seed=2)
    state = advance(spec, state, [evaluate(spec, X, y, state, t) for t in pending(state)])
    assert state.rung == 1

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("boom")

    monkeypatch.setattr("tuning.steps.fit_quietly", broken)
    failed = [evaluate(spec, X, y, state, t) for t in pending(state)]
    assert all(t.validation_score is None and "boom" in t.error for t in failed)
    with pytest.raises(TuningError, match=r"every candidate failed at rung 1: ValueError: boom"):
        advance(spec, state, failed)
    with pytest.raises(TuningError, match="rung 1: no fit reported"):
        advance(spec, state, [])
    with pytest.raises(TuningError, match="rung 0"):
        tune(spec, X, y)


def test_steps_refuse_what_does_not_belong_to_the_state() -> None:
    spec = make_spec("regression", retrain={"max_candidates": 4, "families": ["ridge"]})
    X, y = make_data(spec, 300, seed=15)
    state = plan(spec, len(X), seed=2)
    before = state.to_json()
    rung_0 = [evaluate(spec, X, y, state, t) for t in pending(state)]
    with pytest.raises(ValueError, match="not pending"):
        evaluate(spec, X, y, state, FitTask(0, 1, 0, 10))
    with pytest.raises(ValueError, match="planned for 300"):
        evaluate(spec, X[:-1], y[:-1], state, pending(state)[0])
    with pytest.raises(ValueError, match="duplicate"):
        advance(spec, state, [*rung_0, rung_0[0]])
    nxt = advance(spec, state, rung_0)
    assert state.to_json() == before  # advance returns a new state
    with pytest.raises(ValueError, match="not pending"):
        advance(spec, nxt, rung_0)  # last rung's trials
    with pytest.raises(ValueError, match="advance it first"):
        finish(spec, X, y, nxt)
    with pytest.raises(TuningError, match="too few"):
        plan(spec, 12)


def test_done_fraction_grows_with_the_rungs_and_stays_below_one() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 9, "families": ["logistic"]})
    X, y = make_data(spec, 400, seed=3)
    state = plan(spec, len(X), seed=2)
    seen = [done_fraction(state)]
    while not state.finished:
        state = advance(spec, state, [evaluate(spec, X, y, state, t) for t in pending(state)])
        seen.append(done_fraction(state))
    # 9 candidates race 9, then 3, then 1 fits, and a final refit is planned: 14 fits
    assert seen == pytest.approx([0, 9 / 14, 12 / 14, 13 / 14])


def test_a_fit_reported_only_as_an_error_loses_the_race() -> None:
    spec = make_spec("classification", retrain={"max_candidates": 4, "families": ["logistic"]})
    X, y = make_data(spec, 300, seed=16)
    state = plan(spec, len(X), seed=4)
    tasks = pending(state)
    trials = [evaluate(spec, X, y, state, t) for t in tasks[1:]]
    # What a worker reports when it could not even call evaluate (e.g. it lost its data).
    trials.append(failed_trial(tasks[0], "OSError: gone"))
    after = advance(spec, state, trials)
    assert 0 not in after.alive and after.runs[0].error == "OSError: gone"
    (crashed,) = [t for t in after.trials if t.run == 0]
    assert crashed.config == state.runs[0].config and crashed.stage == "rung 0"
    assert crashed.rows == [tasks[0].start, tasks[0].end]
    with pytest.raises(ValueError, match="fitted something else"):
        advance(spec, state, [dataclasses.replace(trials[0], rows=[0, 1])])
