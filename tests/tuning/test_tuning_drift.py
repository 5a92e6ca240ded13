"""Change detection (tuning.drift) and the recency rules of a retrain: which rows judge and
which rows train after a detected change."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.tuning.tuning_factories import make_spec
from tuning.challenge import holdout_start
from tuning.drift import data_drift, find_concept_change
from tuning.steps import MAX_VALIDATION_ROWS, pending, plan


def _bernoulli(rng: np.random.Generator, *parts: tuple[int, float]) -> np.ndarray:
    return np.concatenate([(rng.random(n) < p).astype(float) for n, p in parts])


def test_adwin_finds_a_rise_of_the_error_and_where_it_began() -> None:
    rng = np.random.default_rng(0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        change = find_concept_change(
            _bernoulli(rng, (3000, 0.08), (600, 0.45)), delta=0.002, min_rows=100
        )
        assert change is not None
        assert 3000 <= change.position <= 3000 + 200  # found within 200 rows
        assert abs(change.start - 3000) <= 60  # and placed near where it began
        assert change.before < 0.12 and change.after > 0.3


def test_a_fall_of_the_error_is_no_change() -> None:
    rng = np.random.default_rng(1)
    errors = _bernoulli(rng, (2000, 0.4), (2000, 0.05))
    assert find_concept_change(errors, delta=0.002, min_rows=100) is None


def test_stationary_errors_give_no_false_alarm() -> None:
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        alarms += (
            find_concept_change(_bernoulli(rng, (20_000, 0.15)), delta=0.002, min_rows=100)
            is not None
        )
        alarms += (
            find_concept_change(np.abs(rng.normal(size=20_000)), delta=0.002, min_rows=100)
            is not None
        )
    assert alarms == 0


def test_data_drift_names_the_shifted_features_with_their_tests() -> None:
    spec = make_spec("classification")
    rng = np.random.default_rng(2)

    def frame(shift: float, colours: list[str], n: int) -> pd.DataFrame:
        numeric = {f: rng.normal(size=n) for f in spec.numeric_features}
        numeric[spec.numeric_features[0]] += shift
        cats = {f: rng.choice(colours, size=n).astype(object) for f in spec.categorical_features}
        return pd.DataFrame({**numeric, **cats}, columns=spec.feature_names)

    levels = ["a", "b", "c"]
    same = data_drift(spec, frame(0, levels, 3000), frame(0, levels, 2000), threshold=0.25)
    assert same.drifted == [] and all(f.psi < 0.05 for f in same.features)
    moved = data_drift(spec, frame(0, levels, 3000), frame(1.5, ["c"], 2000), threshold=0.25)
    assert moved.drifted[0] in (spec.numeric_features[0], *spec.categorical_features)
    assert set(moved.drifted) == {spec.numeric_features[0], *spec.categorical_features}
    top = moved.to_json()["features"][0]
    assert {"feature", "psi", "test", "statistic", "p_value", "drifted"} <= set(top)
    assert {f.test for f in moved.features} == {"ks", "chi2"}


def test_the_holdout_is_fresh_to_the_champion_and_after_the_change() -> None:
    spec = make_spec("classification")  # holdout_fraction 0.2, min_holdout 50 by default
    assert holdout_start(spec, 2000) == 1600  # a first version: the newest 20 %
    # rows the champion trained on (the first 1800) never judge it
    assert holdout_start(spec, 2000, champion_end=1800) == 1950  # at least min_holdout
    assert holdout_start(spec, 5000, champion_end=1000) == 5000 - 800
    # after a detected change only rows after it
    assert holdout_start(spec, 5000, champion_end=1000, change_start=4500) == 4900
    assert holdout_start(spec, 5000, champion_end=4980) == 4980  # fewer fresh rows than wanted


def test_windows_and_validation_stay_in_the_current_regime() -> None:
    spec = make_spec("classification", retrain={"windows": [None, 4000, 500]})
    state = plan(spec, 10_000, recent_start=9000)
    assert state.floor == 9000
    assert state.n - state.n_train == 200  # 20 % of the 1000 rows since the change
    assert all(run.start >= 9000 for run in state.runs)
    assert all(task.start >= 9000 for task in pending(state))
    everything = plan(spec, 100_000)
    assert everything.n - everything.n_train == MAX_VALIDATION_ROWS  # the newest rows rank
