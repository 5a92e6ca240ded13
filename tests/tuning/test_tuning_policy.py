"""tuning.policy: promote only real winners, with reasons that name the numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from tests.tuning.tuning_factories import make_spec
from tuning.export import Prediction
from tuning.policy import baseline_prediction, decide, mcnemar_p, paired_bootstrap


def _labels(y: np.ndarray, correct: np.ndarray) -> Prediction:
    """Predictions right exactly where ``correct`` is True (binary labels "0"/"1")."""
    wrong = np.where(y == "1", "0", "1")
    labels = np.where(correct, y, wrong).astype(object)
    proba = np.where(labels == "1", 0.8, 0.2)
    return Prediction(labels, np.column_stack([1 - proba, proba]), ["0", "1"])


def _pair(n: int, acc_a: float, acc_b: float, seed: int = 0) -> tuple[np.ndarray, Any, Any]:
    rng = np.random.default_rng(seed)
    y = np.array(rng.choice(["0", "1"], n), dtype=object)
    return y, _labels(y, rng.random(n) < acc_a), _labels(y, rng.random(n) < acc_b)


def test_mcnemar_exact_values() -> None:
    a = np.zeros(10, bool)
    b = np.ones(10, bool)
    assert mcnemar_p(a, b) == pytest.approx(0.5**10)
    assert mcnemar_p(b, a) == pytest.approx(1.0)
    assert mcnemar_p(a, a) == 1.0
    # 30 rows only b gets right, 12 only a: the one-sided binomial test on 42 discordant rows.
    a = np.r_[np.zeros(30, bool), np.ones(12, bool), np.ones(50, bool)]
    b = np.r_[np.ones(30, bool), np.zeros(12, bool), np.ones(50, bool)]
    expected = binomtest(30, 42, 0.5, alternative="greater").pvalue
    assert mcnemar_p(a, b) == pytest.approx(expected)


def test_paired_bootstrap_is_seeded_and_signed() -> None:
    y, a, b = _pair(400, 0.75, 0.9)
    r1 = paired_bootstrap("f1_macro", y, a, b, samples=500, seed=3, alpha=0.05)
    r2 = paired_bootstrap("f1_macro", y, a, b, samples=500, seed=3, alpha=0.05)
    assert r1 == r2 and r1.delta > 0 and r1.lower > 0 and r1.p_value < 0.01
    worse = paired_bootstrap("f1_macro", y, b, a, samples=500, seed=3, alpha=0.05)
    assert worse.delta == pytest.approx(-r1.delta) and worse.lower < 0


def test_clearly_better_challenger_is_promoted_by_mcnemar() -> None:
    spec = make_spec(promotion={"min_delta": 0.01})
    y, champion, challenger = _pair(400, 0.8, 0.92)
    d = decide(spec, y, champion, challenger)
    assert d.promote, d.reason
    assert d.metrics["test"] == "mcnemar" and d.metrics["p_value"] < 0.05
    assert d.metrics["holdout_rows"] == 400 and d.metrics["champion"] < d.metrics["challenger"]
    assert "accuracy" in d.reason and "McNemar p=" in d.reason and "400 hold-out rows" in d.reason


def test_same_distribution_is_not_promoted() -> None:
    spec = make_spec()
    for seed in range(5):
        y, champion, challenger = _pair(400, 0.85, 0.85, seed=seed)
        d = decide(spec, y, champion, challenger)
        assert not d.promote, d.reason


def test_too_few_holdout_rows_is_not_promoted_with_reason() -> None:
    spec = make_spec(promotion={"min_holdout": 50})
    y, champion, challenger = _pair(40, 0.5, 1.0)
    d = decide(spec, y, champion, challenger)
    assert not d.promote and "min_holdout 50" in d.reason and "40 hold-out rows" in d.reason


def test_gain_below_min_delta_is_not_promoted() -> None:
    spec = make_spec(promotion={"min_delta": 0.2})
    y, champion, challenger = _pair(1000, 0.8, 0.92)
    d = decide(spec, y, champion, challenger)
    assert not d.promote and "min_delta 0.2" in d.reason and d.metrics["gain"] < 0.2


def test_bootstrap_for_lower_is_better_regression_metric() -> None:
    spec = make_spec("regression", promotion={"bootstrap_samples": 500})
    rng = np.random.default_rng(0)
    y = rng.normal(0, 5, 300)
    champion = Prediction(y + rng.normal(0, 2, 300), None, None)
    challenger = Prediction(y + rng.normal(0, 1, 300), None, None)
    d = decide(spec, y, champion, challenger)
    assert d.promote, d.reason
    assert d.metrics["test"] == "bootstrap" and d.metrics["ci_lower"] > 0
    assert d.metrics["challenger"] < d.metrics["champion"] and "rmse" in d.reason
    same = Prediction(y + rng.normal(0, 2, 300), None, None)
    assert not decide(spec, y, champion, same).promote


def test_mcnemar_setting_forces_the_test_for_other_metrics() -> None:
    spec = make_spec(metric="f1_macro", promotion={"test": "mcnemar"})
    y, champion, challenger = _pair(400, 0.8, 0.92)
    assert decide(spec, y, champion, challenger).metrics["test"] == "mcnemar"
    auto = make_spec(metric="f1_macro", promotion={"bootstrap_samples": 300})
    assert decide(auto, y, champion, challenger).metrics["test"] == "bootstrap"


def test_first_version_against_baseline() -> None:
    spec = make_spec()
    rng = np.random.default_rng(0)
    y_train = np.array(rng.choice(["0", "1"], 500, p=[0.7, 0.3]), dtype=object)
    y = np.array(rng.choice(["0", "1"], 300, p=[0.7, 0.3]), dtype=object)
    base = baseline_prediction(spec, y_train, len(y))
    assert set(base.labels) == {"0"} and base.classes == ["0", "1"]
    assert base.proba is not None
    np.testing.assert_allclose(base.proba[0], [np.mean(y_train == "0"), np.mean(y_train == "1")])
    good = _labels(y, rng.random(300) < 0.95)
    d = decide(spec, y, None, good, baseline=base)
    assert d.promote and "vs baseline" in d.reason and d.metrics["reference"] == "baseline"
    # A model that just echoes the majority class is no better than the baseline.
    assert not decide(spec, y, None, base, baseline=base).promote
    with pytest.raises(ValueError):
        decide(spec, y, None, good)


def test_regression_baseline_is_the_mean() -> None:
    spec = make_spec("regression")
    base = baseline_prediction(spec, np.array([1.0, 2.0, 6.0]), 4)
    assert base.labels.tolist() == [3.0] * 4 and base.proba is None
