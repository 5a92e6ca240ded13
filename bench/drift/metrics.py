"""Test-then-train metrics on per-row scores, kept pure so tests can check them by hand.

A learner's predictions become one score per stream row: 1/0 for a right/wrong class, the
squared error for a regression. Accuracy is the mean of the former, RMSE the root of the mean of
the latter, so every span and window below is the same two lines of arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

WINDOW, STEP = 500, 100
PRE = 2000  # rows before a change that define a learner's pre-change level
AFTER = 2000  # rows after a change in the "after change" column
LAST = 5000
ACC_TOLERANCE, RMSE_TOLERANCE = 0.02, 0.10  # "recovered": within 2 points / within 10 %


def scores(task: str, truth: Sequence[Any], pred: Sequence[Any]) -> np.ndarray:
    """Per-row scores: correct (1.0/0.0) for a classifier, squared error for a regressor.
    A missing prediction (None) is wrong, or an infinite error."""
    if task == "classification":
        pairs = zip(truth, pred, strict=True)
        return np.array([p is not None and str(p) == str(t) for t, p in pairs], dtype=float)
    p = np.array([np.inf if v is None else float(v) for v in pred])
    return (p - np.asarray(truth, dtype=float)) ** 2


def metric(task: str, s: np.ndarray) -> float:
    """Accuracy or RMSE of a span of scores; NaN when the span is empty."""
    if len(s) == 0:
        return float("nan")
    mean = float(np.mean(s))
    return mean if task == "classification" else float(np.sqrt(mean))


def higher_is_better(task: str) -> bool:
    return task == "classification"


def better_or_equal(task: str, a: float, b: float) -> bool:
    """a is at least as good as b."""
    return a >= b if higher_is_better(task) else a <= b


def windows(
    task: str, s: np.ndarray, window: int = WINDOW, step: int = STEP, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(first row, metric) of every full window starting at `start`, `start + step`, …"""
    firsts = np.arange(start, len(s) - window + 1, step)
    if len(firsts) == 0:
        return firsts, np.array([])
    sums = np.concatenate([[0.0], np.cumsum(s)])
    means = (sums[firsts + window] - sums[firsts]) / window
    return firsts, means if task == "classification" else np.sqrt(means)


def worst_window(
    task: str, s: np.ndarray, window: int = WINDOW, step: int = STEP
) -> tuple[int | None, float]:
    """The first row and metric of the worst full window (lowest accuracy, highest RMSE)."""
    firsts, values = windows(task, s, window, step)
    if len(values) == 0:
        return None, float("nan")
    i = int(np.argmin(values) if higher_is_better(task) else np.argmax(values))
    return int(firsts[i]), float(values[i])


def recovered(task: str, value: float, level: float) -> bool:
    """Within 2 accuracy points of `level`, or an RMSE within 10 % of it."""
    if higher_is_better(task):
        return value >= level - ACC_TOLERANCE
    return value <= level * (1 + RMSE_TOLERANCE)


def rows_to_recover(
    task: str, s: np.ndarray, change: int, window: int = WINDOW, step: int = STEP, pre: int = PRE
) -> int | None:
    """Rows from `change` to the end of the first window (starting at the change, then every
    `step` rows) whose metric is back at the learner's own pre-change level, the metric of the
    `pre` rows before the change; None if it never gets there. The end of the window is what a
    trailing 500-row monitor would show, so a learner the change does not hurt scores `window`.
    """
    level = metric(task, s[max(0, change - pre) : change])
    if np.isnan(level):
        return None
    firsts, values = windows(task, s, window, step, start=change)
    for first, value in zip(firsts, values, strict=True):
        if recovered(task, float(value), level):
            return int(first + window - change)
    return None


def summary(task: str, s: np.ndarray, change: int | None) -> dict[str, Any]:
    """The report's numbers for one learner on one stream."""
    worst_at, worst = worst_window(task, s)
    out: dict[str, Any] = {
        "overall": metric(task, s),
        "last": metric(task, s[-LAST:]),
        "worst": worst,
        "worst_at": worst_at,
        "pre_change": None,
        "after_change": None,
        "recover": None,
    }
    if change is not None and 0 < change < len(s):
        out["pre_change"] = metric(task, s[max(0, change - PRE) : change])
        out["after_change"] = metric(task, s[change : change + AFTER])
        out["recover"] = rows_to_recover(task, s, change)
    return out
