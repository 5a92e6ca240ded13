"""The refit search's data: what it produces, and the state that travels between its steps.

SearchState crosses process and machine boundaries (inside Celery messages), so it holds JSON
values only: configs JSON-shaped (lists, not tuples; build_pipeline resolves them back), finite
scores, and the deadline as epoch seconds, since a monotonic clock means nothing on another
machine. The steps themselves live in tuning.steps.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from sklearn.pipeline import Pipeline


class TuningError(RuntimeError):
    """Tuning could not produce any candidate (too few rows, every fit failed)."""


@dataclass
class Candidate:
    """A fitted challenger.

    rows: positions [start, end) into the X given to tune that trained the final pipeline (for
    a warm start: the new rows it continued on; for a fusion: from the first row of its widest
    member's window). config: for a refit, the resolved config (build_pipeline(spec, config)
    rebuilds it); for a warm start, family and epochs only; for a fusion (tuning.fusion),
    ``{"family": "fusion", "members": [{"config", "window", "rows", "validation_score"}],
    "weights": [...]}`` with window None (each member has its own).
    validation_score: its score on the shared validation rows, before the final (re)fit.
    """

    pipeline: Pipeline
    config: dict[str, Any]
    kind: Literal["refit", "warm_start", "fusion"]
    window: int | None
    rows: tuple[int, int]
    validation_score: float


@dataclass
class Trial:
    """One step of the search as the job's leaderboard shows it: a rung fit, a final refit, a
    warm start's probe or continuation, a fusion's validation or refit, or why one was skipped.

    kind: "refit", "warm_start" or "fusion"; stage: "rung N", "final", "validation",
    "validate", "skipped", "failed" or "with hold-out" (the winner trained again with the rows
    it was judged on). rows: [start, end) of the rows fitted; window: the
    newest rows a refit may use (None: all of them); run and rung: the refit run and rung.
    """

    kind: str
    stage: str
    config: dict[str, Any] | None = None
    window: int | None = None
    run: int | None = None
    rung: int | None = None
    rows: list[int] | None = None
    validation_score: float | None = None
    seconds: float | None = None
    error: str | None = None
    note: str | None = None
    members: list[dict[str, Any]] | None = None  # a fusion's
    weights: list[float] | None = None  # a fusion's
    best_single: float | None = None  # what a fusion had to beat
    worker: str | None = None  # the worker that fitted a fanned-out rung trial

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, without the fields this trial does not have (window and score stay:
        null says something there)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None or f.name in ("window", "validation_score")
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trial:
        return cls(**d)


@dataclass
class TuneResult:
    """The best candidate and every trial that led to it."""

    best: Candidate
    trials: list[Trial]


@dataclass
class Run:
    """One refit configuration racing through the rungs; score/error are of its latest fit."""

    index: int
    config: dict[str, Any]
    window: int | None
    start: int  # first row of the window (before the validation split)
    score: float | None = None
    error: str | None = None


@dataclass
class SearchState:
    """Everything between two steps of the search, so that any worker can take the next one.

    n: rows of the training frame; the newest n - n_train are the shared validation rows.
    floor: first row of the current regime (after a detected change), or None.
    alive: indices of the runs still racing, best first (by the previous rung; run order at
    rung 0). Once finished, the successful runs of the last rung, best first: the order the
    final refit tries them in. deadline: epoch seconds (time.time()).
    """

    seed: int
    n: int
    n_train: int
    runs: list[Run]
    rung: int
    alive: list[int]
    deadline: float
    trials: list[Trial] = field(default_factory=list)
    finished: bool = False
    floor: int | None = None  # first row of the current regime; no window starts before it

    def to_json(self) -> dict[str, Any]:
        """A deep, plain-JSON copy (raises if anything in it is not strict JSON); trials in
        the form job results show them."""
        d = {**dataclasses.asdict(self), "trials": [t.to_json() for t in self.trials]}
        return json.loads(json.dumps(d, allow_nan=False))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchState:
        """The state back from to_json(); copies, so ``d`` stays independent of it."""
        d = json.loads(json.dumps(d, allow_nan=False))
        runs, trials = [Run(**r) for r in d["runs"]], [Trial.from_json(t) for t in d["trials"]]
        return cls(**{**d, "runs": runs, "trials": trials})


@dataclass(frozen=True)
class FitTask:
    """One candidate fit of the current rung: which run, which rung, rows [start, end)."""

    run: int
    rung: int
    start: int
    end: int
