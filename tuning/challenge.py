"""One retrain as pure ML: split the newest hold-out, tune a challenger, export and check it,
then score champion and challenger through their ONNX graphs on the same hold-out and decide.

No database, broker or HTTP here: the worker hands in rows and gets back what to register.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tuning import persist
from tuning.data import frame, target
from tuning.export import OnnxModel, ParityReport, check_parity, to_onnx
from tuning.policy import Decision, baseline_prediction, decide
from tuning.search import Candidate, SearchState, TuneResult, finish, plan, tune
from tuning.spec import ModelSpec
from tuning.state import Trial
from tuning.steps import extend

SEARCH_SHARE = 0.9  # of a retrain's progress: the search; export, parity and judging the rest


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
    trials: list[Trial] = field(default_factory=list)
    with_holdout: bool = False  # trained again with the hold-out rows after it won

    @property
    def registrable(self) -> bool:
        return self.onnx is not None


class NotEnoughData(ValueError):
    """Too few rows to train and hold out a fair evaluation set."""


def holdout_start(
    spec: ModelSpec, n: int, *, champion_end: int | None = None, change_start: int | None = None
) -> int:
    """Position where the newest hold-out starts.

    The hold-out is taken from the rows that are new to the judge: after the last row the
    champion trained on and after the start of the current regime (a detected change), never
    before either. It is ``holdout_fraction`` of those rows, but at least ``min_holdout`` of
    them while there are that many, so a decision is never made on a handful of rows when more
    fresh ones exist.
    """
    fresh_from = max(champion_end or 0, change_start or 0, 0)
    fresh = max(n - fresh_from, 0)
    wanted = max(round(fresh * spec.retrain.holdout_fraction), spec.promotion.min_holdout, 1)
    return n - min(wanted, fresh)


def split(spec: ModelSpec, n: int) -> int:
    """Position where the newest hold-out starts when every row is new to the judge."""
    return holdout_start(spec, n)


@dataclass(frozen=True)
class Split:
    """Training rows (oldest first) and the newest hold-out the decision is made on.

    change_start: position of the first row of the current regime (a detected change) within
    the training rows, or None; windows and validation rows never reach before it.
    """

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_hold: pd.DataFrame
    y_hold: np.ndarray
    change_start: int | None = None

    @property
    def holdout(self) -> tuple[int, int]:
        start = len(self.y_train)
        return start, start + len(self.y_hold)


def prepare(
    spec: ModelSpec,
    rows: list[dict[str, Any]],
    labels: list[Any],
    *,
    champion_end: int | None = None,
    change_start: int | None = None,
) -> Split:
    """Type the rows and hold out the newest; NotEnoughData when a fair split is impossible.

    champion_end: position after the last row the champion trained on; change_start: position
    of the first row after a detected change. Both only narrow the hold-out (see holdout_start).
    """
    n = len(rows)
    start = holdout_start(spec, n, champion_end=champion_end, change_start=change_start)
    if start < 20 or n - start < 5:
        raise NotEnoughData(
            f"{n} labelled rows with {n - start} new to the champion are too few to train and "
            "hold out (need ~30, and 5 rows it has not seen)"
        )
    X, y = frame(spec, rows), target(spec, labels)
    recent = change_start if change_start is not None and 0 < change_start < start else None
    first = recent or 0
    if start - first < 10:
        raise NotEnoughData(f"only {start - first} training rows since the detected change")
    if spec.task == "classification" and len(np.unique(y[first:start])) < 2:
        raise NotEnoughData("the training rows hold a single class")
    return Split(X.iloc[:start], y[:start], X.iloc[start:], y[start:], recent)


def warm_rows_end(champion: Champion | None, data: Split) -> int | None:
    """Where the rows new to the champion begin within the training rows."""
    if champion is None or not champion.rows_end:
        return None
    return min(champion.rows_end, len(data.y_train))


def search(
    spec: ModelSpec,
    data: Split,
    champion: Champion | None,
    progress: Callable[[float], None] | None = None,
) -> TuneResult:
    """The whole search for the best challenger on the split's training rows, in this process
    (tuning.search.tune); progress runs to SEARCH_SHARE, the rest is conclude's."""
    return tune(
        spec,
        data.X_train,
        data.y_train,
        **_warm(champion, data),
        recent_start=data.change_start,
        progress=None if progress is None else lambda f: progress(SEARCH_SHARE * f),
    )


def plan_search(spec: ModelSpec, data: Split) -> SearchState:
    """The same search as `search`, planned to run step by step (tuning.steps) on workers."""
    return plan(spec, len(data.y_train), recent_start=data.change_start)


def finish_search(
    spec: ModelSpec, data: Split, state: SearchState, champion: Champion | None
) -> TuneResult:
    """The end of a search run step by step: what `search` returns for the same state."""
    return finish(spec, data.X_train, data.y_train, state, **_warm(champion, data))


def _warm(champion: Champion | None, data: Split) -> dict[str, Any]:
    """The champion and the end of its rows, for the search's warm start."""
    return {
        "champion": champion.pipeline if champion else None,
        "champion_rows_end": warm_rows_end(champion, data),
    }


def conclude(
    spec: ModelSpec, data: Split, result: TuneResult, champion: Champion | None
) -> Outcome:
    """Export the search's best, check its parity, and judge it through ONNX on the hold-out;
    a winner is then trained again with the hold-out rows (`retrain.refit_holdout`)."""
    best = result.best
    onnx = to_onnx(best.pipeline, spec)
    parity = check_parity(best.pipeline, onnx, spec, data.X_hold)
    classes = _classes(best.pipeline) if spec.task == "classification" else None
    if not parity.ok:
        decision = Decision(False, f"not registered: ONNX parity failed ({parity.reason})", {})
        return Outcome(best, None, None, parity, decision, data.holdout, classes, result.trials)
    decision = judge(spec, data, onnx, champion)
    judged = Outcome(
        best,
        onnx,
        persist.dumps(best.pipeline),
        parity,
        decision,
        data.holdout,
        classes,
        result.trials,
    )
    if decision.promote and spec.retrain.refit_holdout:
        return with_holdout(spec, data, judged)
    return judged


def judge(spec: ModelSpec, data: Split, onnx: bytes, champion: Champion | None) -> Decision:
    """Champion and challenger scored through their ONNX graphs on the split's hold-out, and
    the promotion rules applied (tuning.policy.decide); without a champion the challenger
    must beat the baseline of the training targets, as a first version must."""
    challenger_pred = OnnxModel(onnx, spec).predict(data.X_hold)
    if champion is not None:
        champion_pred = OnnxModel(champion.onnx, spec).predict(data.X_hold)
        return decide(spec, data.y_hold, champion_pred, challenger_pred)
    baseline = baseline_prediction(spec, data.y_train, len(data.y_hold))
    return decide(spec, data.y_hold, None, challenger_pred, baseline=baseline)


def with_holdout(spec: ModelSpec, data: Split, judged: Outcome) -> Outcome:
    """The winner trained again with the hold-out rows it was judged on (tuning.steps.extend).

    The decision stands as made, on rows the challenger had not seen; what is served then has
    also learned from the newest rows, which right after a change are half of all there are.
    Should the refit fail or lose ONNX parity, the judged challenger is registered instead;
    either way a trial (stage "with hold-out") says what happened.
    """
    X = pd.concat([data.X_train, data.X_hold])
    y = np.concatenate([data.y_train, data.y_hold])
    kind, t0 = judged.candidate.kind, time.monotonic()
    trial = Trial(kind=kind, stage="with hold-out", config={"family": _family(judged.candidate)})
    trials = [*judged.trials, trial]
    try:
        cand = extend(spec, judged.candidate, X, y, floor=data.change_start)
        onnx = to_onnx(cand.pipeline, spec)
        parity = check_parity(cand.pipeline, onnx, spec, data.X_hold)
    except Exception as exc:  # e.g. a class only the hold-out holds; the judged one stands
        trial.error = f"{type(exc).__name__}: {exc}"
        trial.note, trial.seconds = "the judged challenger is registered", _since(t0)
        return replace(judged, trials=trials)
    trial.rows, trial.seconds = list(cand.rows), _since(t0)
    if not parity.ok:
        trial.error = f"ONNX parity failed ({parity.reason})"
        trial.note = "the judged challenger is registered"
        return replace(judged, trials=trials)
    held = len(data.y_hold)
    decision = replace(
        judged.decision,
        reason=f"{judged.decision.reason}; then trained with the {held} hold-out rows",
    )
    classes = _classes(cand.pipeline) if spec.task == "classification" else None
    return Outcome(
        cand,
        onnx,
        persist.dumps(cand.pipeline),
        parity,
        decision,
        judged.holdout,
        classes,
        trials,
        with_holdout=True,
    )


def _family(cand: Candidate) -> Any:
    return cand.config.get("family")


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


def _classes(pipeline: Pipeline) -> list[str]:
    return [str(c) for c in pipeline[-1].classes_]
