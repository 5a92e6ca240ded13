"""Live performance: the spec's metric over what was served and later labelled.

Pure functions of LiveRows (registry.monitoring.outcomes reads them from the database),
ordered by prediction time, so a late label counts when its prediction
was made. Three views:

- by rows: consecutive windows of ``window`` rows, aligned on the newest row (the last window
  is always the newest ``window`` rows; only the oldest may be shorter), and the same for each
  version's own rows;
- by time: buckets of ``bucket_seconds`` aligned on the epoch (stable from call to call), only
  those holding rows;
- current: one value over the newest ``window`` rows (of the champion, when the caller passes
  the champion's outcomes).

Values are the spec's metric; a window where it is undefined (log_loss without any served
probability) has value None. ``end`` of a window is the position just past its newest row in
the ordered outcomes, the axis the caller's event marks use too. Maps by version are keyed by
the version as a string: these are JSON documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tuning.export import Prediction
from tuning.metrics import EPS, score

DEFAULT_WINDOW = 500
DEFAULT_BUCKET_SECONDS = 60.0


@dataclass
class LiveRows:
    """Labelled served predictions, oldest prediction first.

    at: prediction times [N]; versions: int [N]; labels / served: the true and the served
    answer [N] (str objects for a classifier, float64 for a regressor); errors: 0/1 or the
    absolute error [N]; true_proba: the probability given to the true class, NaN if unknown [N].
    """

    at: Sequence[datetime]
    versions: np.ndarray
    labels: np.ndarray
    served: np.ndarray
    errors: np.ndarray
    true_proba: np.ndarray

    def __len__(self) -> int:
        return len(self.errors)


def metric_value(metric: str, rows: LiveRows, index: np.ndarray | slice) -> float | None:
    """The metric over ``rows[index]``; None when no row (with what it needs) is there."""
    errors = np.asarray(rows.errors, dtype=np.float64)[index]
    if len(errors) == 0:
        return None
    if metric == "accuracy":
        return float(1.0 - errors.mean())
    if metric == "mae":
        return float(errors.mean())
    if metric == "rmse":
        return float(math.sqrt(float(np.mean(errors**2))))
    if metric == "log_loss":
        proba = np.asarray(rows.true_proba, dtype=np.float64)[index]
        proba = proba[~np.isnan(proba)]
        if len(proba) == 0:
            return None
        return float(np.mean(-np.log(np.clip(proba, EPS, 1.0))))
    served = np.asarray(rows.served)[index]
    return score(metric, np.asarray(rows.labels)[index], Prediction(served, None, None))


def _iso(value: datetime) -> str:
    return value.isoformat()


def _window(metric: str, rows: LiveRows, positions: np.ndarray) -> dict[str, Any]:
    """One window over the rows at ``positions`` (ascending) of the ordered outcomes."""
    versions, counts = np.unique(np.asarray(rows.versions)[positions], return_counts=True)
    return {
        "end": int(positions[-1]) + 1,
        "from": _iso(rows.at[int(positions[0])]),
        "to": _iso(rows.at[int(positions[-1])]),
        "rows": len(positions),
        "value": metric_value(metric, rows, positions),
        "versions": {str(v): int(c) for v, c in zip(versions, counts, strict=True)},
    }


def _chunks(positions: np.ndarray, window: int) -> list[np.ndarray]:
    """``positions`` cut into runs of ``window``, the newest run full."""
    cuts = list(range(len(positions) % window, len(positions), window))
    if cuts and cuts[0] == 0:
        cuts = cuts[1:]
    return [c for c in np.split(positions, cuts) if len(c)]


def by_rows(metric: str, rows: LiveRows, *, window: int = DEFAULT_WINDOW) -> list[dict[str, Any]]:
    """Consecutive windows of ``window`` rows, oldest first, the newest one full."""
    if window < 1:
        raise ValueError("window must be at least 1")
    every = np.arange(len(rows))
    return [_window(metric, rows, chunk) for chunk in _chunks(every, window)]


def by_version(
    metric: str, rows: LiveRows, *, window: int = DEFAULT_WINDOW
) -> dict[str, list[dict[str, Any]]]:
    """For each version, the windows of ``window`` of its own rows (``end`` still on the
    axis of all rows, so the series of all versions share one plot)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    versions = np.asarray(rows.versions)
    out: dict[str, list[dict[str, Any]]] = {}
    for version in np.unique(versions):
        own = np.flatnonzero(versions == version)
        out[str(version)] = [_window(metric, rows, chunk) for chunk in _chunks(own, window)]
    return out


def by_time(
    metric: str, rows: LiveRows, *, bucket_seconds: float = DEFAULT_BUCKET_SECONDS
) -> list[dict[str, Any]]:
    """Buckets of ``bucket_seconds`` of prediction time holding rows, oldest first, with the
    metric over all of their rows and per version."""
    if not bucket_seconds > 0:
        raise ValueError("bucket_seconds must be positive")
    if len(rows) == 0:
        return []
    stamps = np.array([t.timestamp() for t in rows.at], dtype=np.float64)
    keys = np.floor(stamps / bucket_seconds)  # floats: a tiny bucket must not overflow int64
    order = np.argsort(keys, kind="stable")
    found, starts = np.unique(keys[order], return_index=True)
    versions = np.asarray(rows.versions)
    out = []
    for key, positions in zip(found, np.split(order, starts[1:]), strict=True):
        own = versions[positions]
        out.append(
            {
                "start": _iso(datetime.fromtimestamp(key * bucket_seconds, UTC)),
                "end": _iso(datetime.fromtimestamp((key + 1) * bucket_seconds, UTC)),
                "rows": len(positions),
                "value": metric_value(metric, rows, positions),
                "by_version": {
                    str(v): metric_value(metric, rows, positions[own == v]) for v in np.unique(own)
                },
            }
        )
    return out


def current(metric: str, rows: LiveRows, *, window: int = DEFAULT_WINDOW) -> dict[str, Any]:
    """The metric over the newest ``window`` rows: {"rows", "value", "from", "to"}."""
    if window < 1:
        raise ValueError("window must be at least 1")
    n = len(rows)
    newest = np.arange(max(0, n - window), n)
    if n == 0:
        return {"rows": 0, "value": None, "from": None, "to": None}
    return {
        "rows": len(newest),
        "value": metric_value(metric, rows, newest),
        "from": _iso(rows.at[int(newest[0])]),
        "to": _iso(rows.at[int(newest[-1])]),
    }


def positions_after(rows: LiveRows, moments: Sequence[datetime]) -> list[int | None]:
    """For each moment, the position of the first row predicted after it, or None when no
    row was (the mark lies past the newest row)."""
    if len(rows) == 0:
        return [None] * len(moments)
    stamps = np.array([t.timestamp() for t in rows.at], dtype=np.float64)
    found = np.searchsorted(stamps, [m.timestamp() for m in moments], side="right")
    return [int(i) if i < len(rows) else None for i in found]


__all__ = [
    "DEFAULT_BUCKET_SECONDS",
    "DEFAULT_WINDOW",
    "LiveRows",
    "by_rows",
    "by_time",
    "by_version",
    "current",
    "metric_value",
    "positions_after",
]
