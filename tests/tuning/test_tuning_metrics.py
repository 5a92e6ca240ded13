"""tuning.metrics: same values as sklearn, and a resample path consistent with the plain score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from tuning.export import Prediction
from tuning.metrics import greater_is_better, per_row_loss, score, weighted_scores

CLASSES = ["a", "b", "c"]


def _classification(n: int = 300, seed: int = 0) -> tuple[np.ndarray, Prediction]:
    rng = np.random.default_rng(seed)
    y = np.array(rng.choice(CLASSES, n, p=[0.6, 0.3, 0.1]), dtype=object)
    proba = rng.dirichlet([1, 1, 1], n)
    proba[np.arange(n), [CLASSES.index(v) for v in y]] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    labels = np.array([CLASSES[i] for i in proba.argmax(axis=1)], dtype=object)
    return y, Prediction(labels, proba, CLASSES)


def _regression(n: int = 300, seed: int = 0) -> tuple[np.ndarray, Prediction]:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, n)
    return y, Prediction(y + rng.normal(0, 1, n), None, None)


def test_classification_metrics_match_sklearn() -> None:
    y, pred = _classification()
    labels = pred.labels.astype(str)
    assert score("accuracy", y, pred) == pytest.approx(skm.accuracy_score(y.astype(str), labels))
    assert score("balanced_accuracy", y, pred) == pytest.approx(
        skm.balanced_accuracy_score(y.astype(str), labels)
    )
    assert score("f1_macro", y, pred) == pytest.approx(
        skm.f1_score(y.astype(str), labels, average="macro")
    )
    assert score("log_loss", y, pred) == pytest.approx(
        skm.log_loss(y.astype(str), pred.proba, labels=CLASSES)
    )


def test_regression_metrics_match_sklearn() -> None:
    y, pred = _regression()
    assert score("rmse", y, pred) == pytest.approx(skm.root_mean_squared_error(y, pred.labels))
    assert score("mae", y, pred) == pytest.approx(skm.mean_absolute_error(y, pred.labels))
    assert score("r2", y, pred) == pytest.approx(skm.r2_score(y, pred.labels))


@pytest.mark.parametrize(
    "metric", ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "rmse", "mae", "r2"]
)
def test_weighted_scores_equal_scores_of_resampled_rows(metric: str) -> None:
    y, pred = _regression() if metric in ("rmse", "mae", "r2") else _classification()
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(y), size=len(y))
    weights = np.bincount(idx, minlength=len(y))[None, :]
    sub = Prediction(
        pred.labels[idx], None if pred.proba is None else pred.proba[idx], pred.classes
    )
    assert weighted_scores(metric, y, pred, weights)[0] == pytest.approx(score(metric, y[idx], sub))


def test_per_row_loss_decomposes_the_metric() -> None:
    y, pred = _classification()
    acc_loss = per_row_loss("accuracy", y, pred)
    assert acc_loss is not None and 1 - acc_loss.mean() == pytest.approx(score("accuracy", y, pred))
    log_loss = per_row_loss("log_loss", y, pred)
    assert log_loss is not None and log_loss.mean() == pytest.approx(score("log_loss", y, pred))
    assert per_row_loss("f1_macro", y, pred) is None
    yr, pr = _regression()
    mse = per_row_loss("rmse", yr, pr)
    assert mse is not None and np.sqrt(mse.mean()) == pytest.approx(score("rmse", yr, pr))


def test_log_loss_of_a_class_the_model_never_saw_is_large_not_an_error() -> None:
    y = np.array(["a", "z"], dtype=object)
    pred = Prediction(np.array(["a", "a"], dtype=object), np.array([[1.0], [1.0]]), ["a"])
    assert score("log_loss", y, pred) == pytest.approx(-np.log(1e-15) / 2)


def test_direction() -> None:
    assert greater_is_better("accuracy") and greater_is_better("r2")
    assert not greater_is_better("log_loss") and not greater_is_better("rmse")
    with pytest.raises(ValueError):
        greater_is_better("auc")
