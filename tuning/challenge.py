"""One retrain as pure ML: split the newest hold-out, tune a challenger, export and check it,
then score champion and challenger through their ONNX graphs on the same hold-out and decide.

No database, broker or HTTP here: the worker hands in rows and gets back what to register.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from tuning import persist
from tuning.data import frame, target
from tuning.export import OnnxModel, ParityReport, check_parity, to_onnx
from tuning.policy import Decision, baseline_prediction, decide
from tuning.search import Candidate, tune
from tuning.spec import ModelSpec


@dataclass(frozen=True)
class Champion:
    """The live version as the challenge needs it."""

    version: int
    onnx: bytes
    pipeline: Pipeline | None
    rows_end: int | None  # position in the training rows after the last row it trained on


@dataclass
class Outcome:
    """What a retrain produced; `onnx` is None when the challenger failed its parity check."""

    candidate: Candidate
    onnx: bytes | None
    pipeline_bytes: bytes | None
    parity: ParityReport
    decision: Decision
    holdout: tuple[int, int]
    classes: list[str] | None
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def registrable(self) -> bool:
        return self.onnx is not None


class NotEnoughData(ValueError):
    """Too few rows to train and hold out a fair evaluation set."""


def split(spec: ModelSpec, n: int) -> int:
    """Position where the newest hold-out starts."""
    holdout = max(round(n * spec.retrain.holdout_fraction), 1)
    return n - holdout


def challenge(
    spec: ModelSpec,
    rows: list[dict[str, Any]],
    labels: list[Any],
    *,
    champion: Champion | None,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """Train one challenger on all but the newest rows and judge it against the champion."""
    n = len(rows)
    start = split(spec, n)
    if start < 20 or n - start < 5:
        raise NotEnoughData(f"{n} labelled rows are too few to train and hold out (need ~30)")
    X, y = frame(spec, rows), target(spec, labels)
    X_train, y_train, X_hold, y_hold = X.iloc[:start], y[:start], X.iloc[start:], y[start:]
    if spec.task == "classification" and len(np.unique(y_train)) < 2:
        raise NotEnoughData("the training rows hold a single class")

    def report(fraction: float) -> None:
        if progress is not None:
            progress(0.9 * fraction)

    result = tune(
        spec,
        X_train,
        y_train,
        champion=champion.pipeline if champion else None,
        champion_rows_end=min(champion.rows_end, start) if champion and champion.rows_end else None,
        progress=report,
    )
    best = result.best
    onnx = to_onnx(best.pipeline, spec)
    parity = check_parity(best.pipeline, onnx, spec, X_hold)
    classes = _classes(best.pipeline) if spec.task == "classification" else None
    if not parity.ok:
        decision = Decision(False, f"not registered: ONNX parity failed ({parity.reason})", {})
        return Outcome(best, None, None, parity, decision, (start, n), classes, result.trials)
    challenger_pred = OnnxModel(onnx, spec).predict(X_hold)
    if champion is not None:
        champion_pred = OnnxModel(champion.onnx, spec).predict(X_hold)
        decision = decide(spec, y_hold, champion_pred, challenger_pred)
    else:
        baseline = baseline_prediction(spec, y_train, len(y_hold))
        decision = decide(spec, y_hold, None, challenger_pred, baseline=baseline)
    if progress is not None:
        progress(0.95)
    return Outcome(
        best,
        onnx,
        persist.dumps(best.pipeline),
        parity,
        decision,
        (start, n),
        classes,
        result.trials,
    )


def _classes(pipeline: Pipeline) -> list[str]:
    return [str(c) for c in pipeline[-1].classes_]
