"""The refit search as steps, so one retrain's candidate fits can run on several machines.

plan -> (pending -> evaluate each task, anywhere -> advance)* -> finish. Only SearchState and
the trial dicts travel between steps; evaluate depends on nothing but the seed, the run's
config and the rows, so fits done in any order, in any process, give the result tune() gives
in one. tune() is exactly this loop.

finish refits the best run on its window up to the newest row; then a fusion of the best runs
of the last rung (tuning.fusion, soft voting) competes on the validation rows, and the warm
start competes against whichever of the two is better.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tuning import data, metrics
from tuning.fitting import fit_quietly, validation_score
from tuning.fusion import _pick, fused_candidate, fused_members, refit_fused
from tuning.pipeline import build_pipeline
from tuning.space import jsonable, sample_configs
from tuning.spec import ModelSpec
from tuning.state import Candidate, FitTask, Run, SearchState, Trial, TuneResult, TuningError
from tuning.warm import continue_training, warm_start

MIN_VALIDATION_ROWS = 5
MIN_TRAIN_ROWS = 10
MIN_RUNG_ROWS = 30
MAX_VALIDATION_ROWS = 1000  # the newest rows rank candidates; more would reach into the past
RUNGS = 3  # training sizes 1/3, 2/3 and all of the window
KEEP = 3  # keep the best 1/KEEP of the candidates at each rung
LAST = RUNGS - 1
FUSION_MEMBERS = 3  # most members of a fused challenger (each is refit twice in finish)


def _window_start(end: int, window: int | None, floor: int | None = None) -> int:
    """First row of a window ending at `end`; never before `floor` (a detected change)."""
    start = 0 if window is None else max(0, end - window)
    return max(start, floor or 0)


def _rung_rows(run: Run, rung: int, n_train: int) -> tuple[int, int]:
    length = n_train - run.start
    if rung == LAST:
        return run.start, n_train
    size = min(length, max(MIN_RUNG_ROWS, math.ceil(length * (rung + 1) / RUNGS)))
    return n_train - size, n_train


def _sign(spec: ModelSpec) -> float:
    return 1.0 if metrics.greater_is_better(str(spec.metric)) else -1.0


def _rank(spec: ModelSpec, runs: list[Run]) -> list[Run]:
    """Best first; failed runs last; ties by run index, so the order never depends on timing."""
    sign = _sign(spec)
    return sorted(runs, key=lambda r: (math.inf if r.score is None else -sign * r.score, r.index))


def plan(
    spec: ModelSpec, n_rows: int, *, seed: int | None = None, recent_start: int | None = None
) -> SearchState:
    """Draw the configurations and windows (all randomness of the search) and set rung 0.

    The validation rows are the newest ``holdout_fraction`` of the rows of the current regime
    (all rows, or those from ``recent_start`` on), at most MAX_VALIDATION_ROWS; every window
    starts at ``recent_start`` at the earliest.
    """
    seed = spec.retrain.seed if seed is None else int(seed)
    floor = recent_start if recent_start and 0 < recent_start < n_rows else None
    regime = n_rows - (floor or 0)
    n_val = max(MIN_VALIDATION_ROWS, math.ceil(spec.retrain.holdout_fraction * regime))
    n_val = min(n_val, MAX_VALIDATION_ROWS)
    n_train = n_rows - n_val
    if n_train - (floor or 0) < MIN_TRAIN_ROWS:
        raise TuningError(f"{regime} rows are too few to tune (need {MIN_TRAIN_ROWS + n_val})")
    deadline = time.time() + spec.retrain.max_seconds
    rng = np.random.default_rng(seed)
    configs = sample_configs(spec, spec.retrain.max_candidates, rng)
    windows = spec.retrain.windows
    runs = [
        Run(i, jsonable(cfg), w, _window_start(n_train, w, floor))
        for i, cfg in enumerate(configs)
        for w in [windows[int(rng.integers(len(windows)))]]
    ]
    rung = LAST if len(runs) == 1 else 0  # a lone run goes straight to the full window
    alive = [r.index for r in runs]
    return SearchState(seed, n_rows, n_train, runs, rung, alive, deadline, floor=floor)


def pending(state: SearchState) -> list[FitTask]:
    """The fits of the current rung, in run order; [] once the search is finished."""
    if state.finished:
        return []
    return [
        FitTask(i, state.rung, *_rung_rows(state.runs[i], state.rung, state.n_train))
        for i in sorted(state.alive)
    ]


def _frame(spec: ModelSpec, X: pd.DataFrame, y: Any, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = data.normalize(spec, X), data.target(spec, y)
    if len(X) != n or len(y) != n:
        raise ValueError(f"X has {len(X)} rows and y {len(y)}; the search was planned for {n}")
    return X, y


def evaluate(
    spec: ModelSpec, X: pd.DataFrame, y: np.ndarray, state: SearchState, task: FitTask
) -> Trial:
    """Fit one pending task and score it on the validation rows; its trial.

    X, y: the full training frame given to plan/tune, on every worker.
    """
    if task not in pending(state):
        raise ValueError(f"{task} is not pending at rung {state.rung}")
    X, y = _frame(spec, X, y, state.n)
    return evaluate_frame(spec, X, y, state, task)


def evaluate_frame(
    spec: ModelSpec, X: pd.DataFrame, y: np.ndarray, state: SearchState, task: FitTask
) -> Trial:
    """evaluate on a frame already normalised (tuning.data) to the planned rows, unchecked:
    the one-process driver (tuning.search.tune) normalises once, not once per fit."""
    run, (start, end), n_train = state.runs[task.run], (task.start, task.end), state.n_train
    t0, trial, score = time.monotonic(), _trial(run, task), None
    try:
        pipe = build_pipeline(spec, run.config, random_state=state.seed)
        fit_quietly(pipe, X.iloc[start:end], y[start:end])
        score = validation_score(str(spec.metric), pipe, X.iloc[n_train:], y[n_train:])
    except Exception as exc:  # a failing configuration only loses the race
        trial.error = f"{type(exc).__name__}: {exc}"
    trial.validation_score, trial.seconds = score, round(time.monotonic() - t0, 3)
    return trial


def _trial(run: Run, task: FitTask) -> Trial:
    """What a rung trial says about its fit, before the outcome."""
    return Trial(
        kind="refit",
        stage=f"rung {task.rung}",
        run=run.index,
        rung=task.rung,
        config=jsonable(run.config),
        window=run.window,
        rows=[task.start, task.end],
    )


def failed_trial(task: FitTask, error: str) -> Trial:
    """The trial of a fit that never reported (its worker crashed); advance fills in the rest."""
    return Trial(kind="refit", stage=f"rung {task.rung}", run=task.run, rung=task.rung, error=error)


def advance(spec: ModelSpec, state: SearchState, trials: list[Trial]) -> SearchState:
    """Record the rung's trials (any order), keep the best 1/KEEP, and move on or finish.

    Fewer trials than pending tasks (the budget ran out mid-rung) finish the search with what
    was fitted, as does a passed deadline. A trial needs only its run, rung and validation
    score (or an error, e.g. from a worker that crashed); the rest is filled in. Returns a new
    state; ``state`` and ``trials`` are left as they were.
    """
    if state.finished:
        raise ValueError("the search is already finished")
    state = SearchState.from_json(state.to_json())
    expected = {t.run: t for t in pending(state)}
    trials = sorted(
        (copy.deepcopy(t) for t in trials), key=lambda t: -1 if t.run is None else t.run
    )
    runs = [t.run for t in trials]
    if len(set(runs)) < len(runs):
        raise ValueError(f"duplicate trials for runs {runs} at rung {state.rung}")
    for t in trials:
        task = expected.get(t.run) if t.run is not None else None
        if task is None or t.rung != task.rung:
            raise ValueError(f"trial of run {t.run}, rung {t.rung} is not pending")
        run = state.runs[task.run]
        head = _trial(run, task)
        if t.rows not in (None, head.rows) or t.config not in (None, head.config):
            raise ValueError(f"trial of run {run.index} fitted something else: {t}")
        t.config, t.window, t.rows = head.config, head.window, head.rows  # the rest was reported
        if t.validation_score is None and t.error is None:
            t.error = "no validation score"
        run.score, run.error = t.validation_score, t.error
    state.trials.extend(trials)
    done = [state.runs[t.run] for t in trials if t.run is not None]
    ranked = _rank(spec, done)
    if not ranked or ranked[0].score is None:
        errors = "; ".join(str(r.error) for r in done[:3]) or "no fit reported"
        raise TuningError(f"every candidate failed at rung {state.rung}: {errors}")
    if state.rung == LAST or len(done) < len(expected) or time.time() > state.deadline:
        state.alive, state.finished = [r.index for r in ranked if r.score is not None], True
        return state
    keep = ranked[: math.ceil(len(ranked) / KEEP)]
    state.alive = [r.index for r in keep if r.score is not None]
    state.rung = LAST if len(state.alive) == 1 else state.rung + 1  # a lone survivor: full window
    return state


def finish(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    state: SearchState,
    *,
    champion: Pipeline | None = None,
    champion_rows_end: int | None = None,
) -> TuneResult:
    """Refit the winner on its window up to the newest row, try the warm start; the result.

    champion / champion_rows_end: as for tune.
    """
    X, y = _frame(spec, X, y, state.n)
    return finish_frame(spec, X, y, state, champion, champion_rows_end, lambda: None)


def finish_frame(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    state: SearchState,
    champion: Pipeline | None,
    champion_rows_end: int | None,
    tick: Callable[[], None],
) -> TuneResult:
    """finish on a normalised frame, calling tick() after each of its fits (for progress)."""
    if not state.finished:
        raise ValueError(f"the search is still at rung {state.rung}; advance it first")
    trials = copy.deepcopy(state.trials)
    alive = [state.runs[i] for i in state.alive]
    best, best_run = _final_refit(spec, alive, X, y, state.seed, trials, state.floor)
    tick()
    if spec.retrain.fusion:
        best = _fusion(spec, X, y, state, best, best_run, trials)
        tick()
    if champion is not None and spec.retrain.warm_start:
        metric, sign = str(spec.metric), _sign(spec)
        warm = warm_start(
            spec, champion, X, y, champion_rows_end, state.n_train, metric=metric, trials=trials
        )
        if warm is not None and sign * warm.validation_score > sign * best.validation_score:
            best = Candidate(
                warm.pipeline, warm.config, "warm_start", None, warm.rows, warm.validation_score
            )
        tick()
    return TuneResult(best, trials)


def extend(
    spec: ModelSpec, cand: Candidate, X: pd.DataFrame, y: np.ndarray, *, floor: int | None
) -> Candidate:
    """``cand`` trained again up to the newest row of X, which continues the rows it knew.

    A refit is refit on its window ending at the newest row (never before ``floor``, a
    detected change), a fusion's members likewise with the same weights, and a warm start
    continues on the new rows with its epochs. Same config and seed as in the search.
    """
    n, seed = len(X), spec.retrain.seed
    if cand.kind == "warm_start":
        end = cand.rows[1]
        epochs = int(cand.config["epochs"])
        pipe = continue_training(cand.pipeline, X.iloc[end:n], y[end:n], epochs=epochs)
        return Candidate(
            pipe, cand.config, cand.kind, None, (cand.rows[0], n), cand.validation_score
        )
    if cand.kind == "fusion":
        refits, members = [], []
        for member in cand.config["members"]:
            start = _window_start(n, member["window"], floor)
            pipe = build_pipeline(spec, member["config"], random_state=seed)
            refits.append(fit_quietly(pipe, X.iloc[start:n], y[start:n]))
            members.append({**member, "rows": [start, n]})
        pipeline = refit_fused(spec, refits, cand.config["weights"])
        rows = (min(m["rows"][0] for m in members), n)
        config = {**cand.config, "members": members}
        return Candidate(pipeline, config, "fusion", None, rows, cand.validation_score)
    start = _window_start(n, cand.window, floor)
    pipe = build_pipeline(spec, cand.config, random_state=seed)
    fit_quietly(pipe, X.iloc[start:n], y[start:n])
    return Candidate(pipe, cand.config, "refit", cand.window, (start, n), cand.validation_score)


def _final_refit(
    spec: ModelSpec,
    ranked: list[Run],
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    trials: list[Trial],
    floor: int | None = None,
) -> tuple[Candidate, Run]:
    """Refit the best configuration on its window ending at the newest row; it and its run.

    Should that fit fail (rare: e.g. a class appears only in the validation rows), the next
    best configuration is refit instead.
    """
    n, errors = len(X), []
    for run in ranked:
        start, t0 = _window_start(n, run.window, floor), time.monotonic()
        trial = Trial(
            kind="refit",
            stage="final",
            run=run.index,
            config=jsonable(run.config),
            window=run.window,
            rows=[start, n],
            validation_score=run.score,
        )
        trials.append(trial)
        try:
            pipe = build_pipeline(spec, run.config, random_state=seed)
            fit_quietly(pipe, X.iloc[start:n], y[start:n])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            trial.error = errors[-1]
            continue
        trial.seconds = round(time.monotonic() - t0, 3)
        assert run.score is not None
        cand = Candidate(pipe, jsonable(run.config), "refit", run.window, (start, n), run.score)
        return cand, run
    raise TuningError(f"every final refit failed: {'; '.join(errors[:3])}")


def _fusion(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    state: SearchState,
    best: Candidate,
    best_run: Run,
    trials: list[Trial],
) -> Candidate:
    """A soft-voting fusion of the last rung's best runs, if it beats ``best`` on validation.

    The runs that finished the search (state.alive) were fitted on their rows of the last rung
    and scored on the validation rows. Up to FUSION_MEMBERS of the best, diverse by (family,
    window), are fitted again on those very rows (same config and seed: the pipelines that
    were scored) and fused with weights from their scores (tuning.fusion.fused_candidate).
    Only a fusion that strictly beats ``best``'s validation score is refit: each member on its
    own window up to the newest row (the best run's final refit is reused), with the
    validated weights. Otherwise, or if anything fails, ``best`` stands. Every step leaves a
    trial (kind "fusion") saying what happened; a search whose last rung has a single run
    (at most 9 candidates, KEEP = 3) has nothing to fuse and leaves none. Skipped when the
    deadline has passed.
    """

    def trial(stage: str, **fields: Any) -> Trial:
        out = Trial(kind="fusion", stage=stage, config={"family": "fusion"}, **fields)
        trials.append(out)
        return out

    runs = _rank(spec, [state.runs[i] for i in state.alive if state.runs[i].score is not None])
    if len(runs) < 2:
        return best
    if time.time() > state.deadline:
        trial("skipped", note="the time budget is spent", seconds=0.0)
        return best
    n, n_train, sign = state.n, state.n_train, _sign(spec)
    keys = [(r.config.get("family"), r.window) for r in runs]
    pool = list(range(min(len(runs), 2 * FUSION_MEMBERS)))
    t0 = time.monotonic()
    fitted: list[tuple[Pipeline, float]] = []
    members: list[tuple[Run, tuple[int, int]]] = []
    errors: list[str] = []
    for i in _pick(pool, keys, FUSION_MEMBERS):
        run, rows = runs[i], _rung_rows(runs[i], state.rung, n_train)
        try:
            pipe = build_pipeline(spec, run.config, random_state=state.seed)
            fit_quietly(pipe, X.iloc[rows[0] : rows[1]], y[rows[0] : rows[1]])
        except Exception as exc:  # a member less; the fusion may still stand
            errors.append(f"run {run.index}: {type(exc).__name__}: {exc}")
            continue
        assert run.score is not None
        fitted.append((pipe, run.score))
        members.append((run, rows))
    found = None
    if len(fitted) >= 2:
        groups = [(r.config.get("family"), r.window) for r, _ in members]
        X_val, y_val = X.iloc[n_train:], y[n_train:]
        try:
            found = fused_candidate(
                spec, fitted, X_val, y_val, max_members=FUSION_MEMBERS, groups=groups
            )
        except ValueError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    if found is None:
        trial(
            "skipped",
            note="fewer than 2 of the best runs fit together",
            seconds=round(time.monotonic() - t0, 3),
            error="; ".join(errors) or None,
        )
        return best
    fused, score, chosen = found
    weights = fused_members(fused)[1]
    chosen_members = [members[i] for i in chosen]
    wins = sign * score > sign * best.validation_score
    verdict = "beats" if wins else "does not beat"
    trial(
        "validate",
        members=[_member(run, rows) for run, rows in chosen_members],
        weights=weights,
        rows=[min(rows[0] for _, rows in chosen_members), n_train],
        validation_score=score,
        best_single=best.validation_score,
        note=f"fusion {verdict} the best single candidate ({score:.6g} vs "
        f"{best.validation_score:.6g})",
        seconds=round(time.monotonic() - t0, 3),
        error="; ".join(errors) or None,
    )
    if not wins:
        return best
    t0, refits, final_members = time.monotonic(), [], []
    try:
        for run, _ in chosen_members:
            start = _window_start(n, run.window, state.floor)
            if run.index == best_run.index:  # its final refit is this very fit
                pipe = best.pipeline
            else:
                pipe = build_pipeline(spec, run.config, random_state=state.seed)
                fit_quietly(pipe, X.iloc[start:n], y[start:n])
            refits.append(pipe)
            final_members.append(_member(run, (start, n)))
        pipeline = refit_fused(spec, refits, weights)
    except Exception as exc:  # e.g. a wider window brought a class another member lacks
        seconds = round(time.monotonic() - t0, 3)
        trial("final", weights=weights, seconds=seconds, error=f"{type(exc).__name__}: {exc}")
        return best
    rows = (min(m["rows"][0] for m in final_members), n)
    config = {"family": "fusion", "members": final_members, "weights": weights}
    trial(
        "final",
        members=final_members,
        weights=weights,
        rows=list(rows),
        validation_score=score,
        seconds=round(time.monotonic() - t0, 3),
    )
    return Candidate(pipeline, jsonable(config), "fusion", None, rows, score)


def _member(run: Run, rows: tuple[int, int]) -> dict[str, Any]:
    """A fusion member as trials and the candidate's config show it."""
    return {
        "run": run.index,
        "config": jsonable(run.config),
        "window": run.window,
        "rows": [rows[0], rows[1]],
        "validation_score": run.score,
    }


def planned_fits(candidates: int) -> int:
    """Fits successive halving will do without a binding budget, plus the final refit."""
    total, alive = 0, candidates
    for _ in range(RUNGS):
        total += alive
        if alive == 1:
            break
        alive = math.ceil(alive / KEEP)
    return total + 1


def done_fraction(state: SearchState) -> float:
    """How far the search is, by the fits it recorded, in [0, 1): for a job's progress."""
    return min(len(state.trials) / planned_fits(len(state.runs)), 0.99)
