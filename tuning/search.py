"""Find the best challenger on the newest data: a refit search and, if possible, a warm start.

The newest ``holdout_fraction`` of the rows is the validation set every candidate is scored
on; training windows come from the rows before it. Refit configurations race by successive
halving over growing training sizes (newest rows kept) within the time budget; the winner is
refit on its window *including* the validation rows. A champion whose estimator has
``partial_fit`` (SGD, MLP) may instead continue on the rows it has not seen. Same data, seed and
a budget that does not bind give the same result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tuning import data, metrics
from tuning.fitting import fit_quietly, validation_score
from tuning.pipeline import build_pipeline
from tuning.space import jsonable, sample_configs
from tuning.spec import ModelSpec
from tuning.warm import warm_start

MIN_VALIDATION_ROWS = 5
MIN_TRAIN_ROWS = 10
MIN_RUNG_ROWS = 30
RUNGS = 3  # training sizes 1/3, 2/3 and all of the window
KEEP = 3  # keep the best 1/KEEP of the candidates at each rung


class TuningError(RuntimeError):
    """Tuning could not produce any candidate (too few rows, every fit failed)."""


@dataclass
class Candidate:
    """A fitted challenger.

    rows: positions [start, end) into the X given to tune that trained the final pipeline (for
    a warm start: the new rows it continued on). config: for a refit, the resolved config
    (build_pipeline(spec, config) rebuilds it); for a warm start, family and epochs only.
    validation_score: its score on the shared validation rows, before the final (re)fit.
    """

    pipeline: Pipeline
    config: dict[str, Any]
    kind: Literal["refit", "warm_start"]
    window: int | None
    rows: tuple[int, int]
    validation_score: float


@dataclass
class TuneResult:
    """The best candidate and every trial (JSON-serialisable dicts) that led to it."""

    best: Candidate
    trials: list[dict[str, Any]]


@dataclass
class _Run:
    """One refit configuration racing through the rungs."""

    index: int
    config: dict[str, Any]
    window: int | None
    start: int  # first row of the window (before the validation split)
    score: float | None = None


def _window_start(end: int, window: int | None) -> int:
    return 0 if window is None else max(0, end - window)


def _rung_rows(run: _Run, rung: int, last: int, n_train: int) -> tuple[int, int]:
    length = n_train - run.start
    if rung == last:
        return run.start, n_train
    size = min(length, max(MIN_RUNG_ROWS, math.ceil(length * (rung + 1) / RUNGS)))
    return n_train - size, n_train


def tune(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    champion: Pipeline | None = None,
    champion_rows_end: int | None = None,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> TuneResult:
    """Search challengers for ``spec`` on rows ordered oldest -> newest.

    champion / champion_rows_end: the serving pipeline and the end position (exclusive) of
    the rows it was trained on, for the warm start; None means every row is new to it.
    progress(fraction) is called as work advances; an exception it raises aborts the tune.
    """
    seed = spec.retrain.seed if seed is None else int(seed)
    X, y = data.normalize(spec, X), data.target(spec, y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    n_val = max(MIN_VALIDATION_ROWS, math.ceil(spec.retrain.holdout_fraction * n))
    n_train = n - n_val
    if n_train < MIN_TRAIN_ROWS:
        raise TuningError(f"{n} rows are too few to tune (need {MIN_TRAIN_ROWS + n_val})")
    metric, sign = str(spec.metric), (1.0 if metrics.greater_is_better(str(spec.metric)) else -1.0)
    deadline = time.monotonic() + spec.retrain.max_seconds
    rng = np.random.default_rng(seed)
    configs = sample_configs(spec, spec.retrain.max_candidates, rng)
    windows = spec.retrain.windows
    runs = [
        _Run(i, cfg, w, _window_start(n_train, w))
        for i, cfg in enumerate(configs)
        for w in [windows[int(rng.integers(len(windows)))]]
    ]
    trials: list[dict[str, Any]] = []
    warm_fits = 1 if champion is not None and spec.retrain.warm_start else 0
    planned, done = _planned_fits(len(runs)) + warm_fits, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done / planned, 0.99))

    def utility(run: _Run) -> float:
        return -math.inf if run.score is None else sign * run.score

    alive, last, rung = runs, RUNGS - 1, 0
    while True:
        rung = last if len(alive) == 1 else rung  # a lone survivor goes to the full window
        finished: list[_Run] = []
        for run in alive:
            if finished and time.monotonic() > deadline:
                break  # out of time: rank what finished at this rung
            trials.append(_evaluate(spec, run, rung, n_train, X, y, seed))
            finished.append(run)
            tick()
        ranked = sorted(finished, key=lambda r: (-utility(r), r.index))
        if ranked[0].score is None:
            errors = "; ".join(t["error"] for t in trials[-3:])
            raise TuningError(f"every candidate failed at rung {rung}: {errors}")
        if rung == last or len(finished) < len(alive) or time.monotonic() > deadline:
            break
        alive = [r for r in ranked[: math.ceil(len(ranked) / KEEP)] if r.score is not None]
        rung += 1
    best = _final_refit(spec, [r for r in ranked if r.score is not None], X, y, seed, trials)
    tick()
    if champion is not None and spec.retrain.warm_start:
        warm = warm_start(
            spec, champion, X, y, champion_rows_end, n_train, metric=metric, trials=trials
        )
        if warm is not None and sign * warm.validation_score > sign * best.validation_score:
            best = Candidate(
                warm.pipeline, warm.config, "warm_start", None, warm.rows, warm.validation_score
            )
        tick()
    if progress is not None:
        progress(1.0)
    return TuneResult(best, trials)


def _planned_fits(candidates: int) -> int:
    """Fits successive halving will do without a binding budget, plus the final refit."""
    total, alive = 0, candidates
    for _ in range(RUNGS):
        total += alive
        if alive == 1:
            break
        alive = math.ceil(alive / KEEP)
    return total + 1


def _evaluate(
    spec: ModelSpec, run: _Run, rung: int, n_train: int, X: pd.DataFrame, y: np.ndarray, seed: int
) -> dict[str, Any]:
    """Fit ``run`` on its rows for ``rung`` and score it on the validation rows; the trial."""
    start, end = _rung_rows(run, rung, RUNGS - 1, n_train)
    t0, trial = time.monotonic(), {"kind": "refit", "stage": f"rung {rung}"}
    try:
        pipe = build_pipeline(spec, run.config, random_state=seed)
        fit_quietly(pipe, X.iloc[start:end], y[start:end])
        run.score = validation_score(str(spec.metric), pipe, X.iloc[n_train:], y[n_train:])
    except Exception as exc:  # a failing configuration only loses the race
        run.score, trial["error"] = None, f"{type(exc).__name__}: {exc}"
    trial.update(
        config=jsonable(run.config),
        window=run.window,
        rows=[start, end],
        validation_score=run.score,
        seconds=round(time.monotonic() - t0, 3),
    )
    return trial


def _final_refit(
    spec: ModelSpec, ranked: list[_Run], X: pd.DataFrame, y: np.ndarray, seed: int, trials: list
) -> Candidate:
    """Refit the best configuration on its window ending at the newest row.

    Should that fit fail (rare: e.g. a class appears only in the validation rows), the next
    best configuration is refit instead.
    """
    n, errors = len(X), []
    for run in ranked:
        start, t0 = _window_start(n, run.window), time.monotonic()
        trial = {"kind": "refit", "stage": "final", "config": jsonable(run.config)}
        trial.update(window=run.window, rows=[start, n], validation_score=run.score)
        try:
            pipe = build_pipeline(spec, run.config, random_state=seed)
            fit_quietly(pipe, X.iloc[start:n], y[start:n])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            trials.append({**trial, "error": errors[-1]})
            continue
        trials.append({**trial, "seconds": round(time.monotonic() - t0, 3)})
        assert run.score is not None
        return Candidate(pipe, jsonable(run.config), "refit", run.window, (start, n), run.score)
    raise TuningError(f"every final refit failed: {'; '.join(errors[:3])}")
