"""Find the best challenger on the newest data: a refit search and, if possible, a warm start.

The newest ``holdout_fraction`` of the rows is the validation set every candidate is scored
on; training windows come from the rows before it. Refit configurations race by successive
halving over growing training sizes (newest rows kept) within the time budget; the winner is
refit on its window *including* the validation rows. A soft-voting fusion of the last rung's
best runs (tuning.fusion) replaces it if it scores better on the validation rows. A champion
whose estimator has ``partial_fit`` (SGD, MLP) may instead continue on the rows it has not
seen. Same data, seed and
a budget that does not bind give the same result.

tune() runs the whole search in this process. The same search as steps (plan, pending,
evaluate, advance, finish; tuning.steps) lets the fits of one rung run on several workers;
tune() is the one-process driver of those steps, so both give the same result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tuning import data
from tuning.spec import ModelSpec
from tuning.state import Candidate, FitTask, SearchState, Trial, TuneResult, TuningError
from tuning.steps import (
    advance,
    evaluate,
    evaluate_frame,
    finish,
    finish_frame,
    pending,
    plan,
    planned_fits,
)

__all__ = [
    "Candidate",
    "FitTask",
    "SearchState",
    "TuneResult",
    "TuningError",
    "advance",
    "evaluate",
    "finish",
    "pending",
    "plan",
    "tune",
]


def tune(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    champion: Pipeline | None = None,
    champion_rows_end: int | None = None,
    recent_start: int | None = None,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> TuneResult:
    """Search challengers for ``spec`` on rows ordered oldest -> newest.

    champion / champion_rows_end: the serving pipeline and the end position (exclusive) of
    the rows it was trained on, for the warm start; None means every row is new to it.
    recent_start: position of the first row of the current regime (after a detected change):
    no training window and no validation row reaches before it.
    progress(fraction) is called as work advances; an exception it raises aborts the tune.
    """
    X, y = data.normalize(spec, X), data.target(spec, y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    state = plan(spec, len(X), seed=seed, recent_start=recent_start)
    warm_fits = 1 if champion is not None and spec.retrain.warm_start else 0
    fusion = 1 if getattr(spec.retrain, "fusion", True) else 0
    planned, done = planned_fits(len(state.runs)) + warm_fits + fusion, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done / planned, 0.99))

    while not state.finished:
        trials: list[Trial] = []
        for task in _best_first(state):
            if trials and time.time() > state.deadline:
                break  # out of time: advance ranks what finished at this rung
            trials.append(evaluate_frame(spec, X, y, state, task))
            tick()
        state = advance(spec, state, trials)
    result = finish_frame(spec, X, y, state, champion, champion_rows_end, tick)
    if progress is not None:
        progress(1.0)
    return result


def _best_first(state: SearchState) -> list[FitTask]:
    """Pending fits, most promising first, so a budget running out mid-rung cuts the worst."""
    order = {run: i for i, run in enumerate(state.alive)}
    return sorted(pending(state), key=lambda task: order[task.run])
