"""Metrics on Predictions, written once for a full hold-out and for bootstrap resamples.

Every metric here is a function of weighted sums over rows: a resample is a vector of row
counts w, and each metric is computed from ``w @ stats`` for a few per-row statistics. One code
path therefore gives the plain score (w = 1) and thousands of paired bootstrap scores
(a matrix of counts), and the results match sklearn's metrics (tested).
"""

from __future__ import annotations

import numpy as np

from tuning.export import Prediction
from tuning.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

LOWER_IS_BETTER = ("log_loss", "rmse", "mae")
EPS = 1e-15


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement."""
    if metric not in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    return metric not in LOWER_IS_BETTER


def _proba_of_truth(y_true: np.ndarray, pred: Prediction) -> np.ndarray:
    if pred.proba is None or pred.classes is None:
        raise ValueError("log_loss needs predicted probabilities")
    index = {c: i for i, c in enumerate(pred.classes)}
    cols = np.array([index.get(str(v), -1) for v in y_true])
    p = pred.proba[np.arange(len(y_true)), np.maximum(cols, 0)]
    return np.where(cols >= 0, p, 0.0)


def per_row_loss(metric: str, y_true: np.ndarray, pred: Prediction) -> np.ndarray | None:
    """Per-row losses whose mean is the metric (or a monotone image of it), else None.

    accuracy: 1 - correct; log_loss: -log p(true); mae: |error|; rmse: squared error (its mean
    is the MSE, whose sign of difference equals the RMSE's). balanced_accuracy, f1_macro and r2
    do not decompose over rows: None.
    """
    if metric == "accuracy":
        return (np.asarray(y_true) != pred.labels).astype(np.float64)
    if metric == "log_loss":
        return -np.log(np.clip(_proba_of_truth(y_true, pred), EPS, 1.0))
    if metric == "mae":
        return np.abs(np.asarray(y_true, np.float64) - pred.labels)
    if metric == "rmse":
        return (np.asarray(y_true, np.float64) - pred.labels) ** 2
    return None


def _stats(metric: str, y_true: np.ndarray, pred: Prediction) -> tuple[np.ndarray, list[str]]:
    """Per-row statistics [n, m] the metric is a function of (after weighting)."""
    y = np.asarray(y_true)
    if len(pred.labels) != len(y):
        raise ValueError(f"{len(pred.labels)} predictions for {len(y)} true values")
    if metric in ("accuracy", "log_loss", "mae", "rmse"):
        loss = per_row_loss(metric, y, pred)
        assert loss is not None
        return loss[:, None], []
    if metric == "r2":
        yf = y.astype(np.float64)
        return np.column_stack([(yf - pred.labels) ** 2, yf, yf**2]), []
    # balanced_accuracy / f1_macro: per class, [true & correct, true, predicted].
    labels = pred.labels
    classes = sorted({str(v) for v in y} | {str(v) for v in labels})
    cols = []
    for c in classes:
        is_true, is_pred = y == c, labels == c
        cols += [is_true & is_pred, is_true, is_pred]
    return np.column_stack(cols).astype(np.float64), classes


def _from_sums(metric: str, sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Metric values from weighted sums [b, m] and the total weight [b]."""
    if metric == "accuracy":
        return 1.0 - sums[:, 0] / total
    if metric in ("log_loss", "mae"):
        return sums[:, 0] / total
    if metric == "rmse":
        return np.sqrt(sums[:, 0] / total)
    if metric == "r2":
        ss_res = sums[:, 0]
        ss_tot = sums[:, 2] - sums[:, 1] ** 2 / total
        ss_tot = np.where(np.abs(ss_tot) < 1e-12 * np.maximum(1.0, sums[:, 2]), 0.0, ss_tot)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - ss_res / ss_tot
        return np.where(ss_tot > 0, r2, np.where(ss_res == 0, 1.0, 0.0))
    tp, true, predicted = sums[:, 0::3], sums[:, 1::3], sums[:, 2::3]
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "balanced_accuracy":
            present = true > 0
            recall = np.where(present, tp / true, 0.0)
            return recall.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        if metric == "f1_macro":
            denom = true + predicted
            present = denom > 0
            f1 = np.where(present, 2 * tp / denom, 0.0)
            return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    raise ValueError(f"unknown metric {metric!r}")


def weighted_scores(
    metric: str, y_true: np.ndarray, pred: Prediction, weights: np.ndarray
) -> np.ndarray:
    """The metric under each row-count vector in ``weights`` [b, n] (bootstrap resamples)."""
    stats, _ = _stats(metric, y_true, pred)
    weights = np.asarray(weights, dtype=np.float64)
    return _from_sums(metric, weights @ stats, weights.sum(axis=1))


def score(metric: str, y_true: np.ndarray, pred: Prediction) -> float:
    """The metric on all rows (same values as sklearn's accuracy_score, f1_score(macro), ...)."""
    greater_is_better(metric)
    n = len(y_true)
    if n == 0:
        raise ValueError("cannot score zero rows")
    return float(weighted_scores(metric, y_true, pred, np.ones((1, n)))[0])
