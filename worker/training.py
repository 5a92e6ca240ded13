"""A retrain job from claim to decision. Celery tasks only call into here.

The ML is `tuning`; this module moves rows and artifacts between it and the registry, keeps the
job's heartbeat, and registers the outcome in one transaction that also re-checks that the
attempt is still the job's live one: the tasks of an attempt that was re-queued register
nothing.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry import catalog, events, jobs, labelled
from registry.catalog import NewVersion
from registry.db import Database
from registry.errors import Conflict
from registry.models import Decision, Model, ModelVersion, Stage
from registry.notify import ChampionNotifier
from tuning import persist
from tuning.challenge import (
    Champion,
    NotEnoughData,
    Outcome,
    Split,
    conclude,
    prepare,
    search,
)
from tuning.export import OnnxModel
from tuning.search import TuneResult, TuningError
from tuning.spec import ModelSpec

log = logging.getLogger(__name__)


def step(job_id: str, attempt: int | None, name: str, message: str, *args: object) -> None:
    """The log line of one step of a job (`started`, `searched`, `rung`, `judged`,
    `registered`, `failed`, `dropped`, `skipped`): its message after `job <id>: `, and the
    job's id, attempt and the step's name as fields of their own (`job_id`, `attempt`,
    `step`) for JSON logs."""
    extra = {"job_id": job_id, "attempt": attempt, "step": name}
    log.info("job %s: " + message, job_id, *args, extra=extra)


class JobLost(RuntimeError):
    """The attempt was re-queued or finished elsewhere while this task worked on it."""


@dataclass
class JobData:
    """One attempt of a job with everything its tasks need, loaded once per process."""

    job_id: str
    attempt: int
    model_name: str
    spec: Any
    ids: list[int]
    data: Split
    champion: Champion | None
    champion_window: dict[str, Any] | None
    champion_problem: str | None = None  # what of the registry's champion could not be used


class Heartbeat:
    """Refreshes the job's heartbeat and progress from a thread while a task works."""

    def __init__(self, db: Database, job_id: str, attempt: int, period: float) -> None:
        self._db, self._job_id, self._attempt, self._period = db, job_id, attempt, period
        self._progress: float | None = None
        self._written: float | None = None  # the progress the job row holds
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._period * 2)
        if self.lost.is_set() and exc[0] is None:
            raise JobLost(f"attempt {self._attempt} of job {self._job_id} is over")

    def progress(self, fraction: float) -> None:
        self._progress = fraction
        if self.lost.is_set():
            raise JobLost(f"attempt {self._attempt} of job {self._job_id} is over")

    def _beat(self) -> None:
        try:
            progress = self._progress
            with self._db.session() as s:
                ok = jobs.heartbeat(s, self._job_id, attempt=self._attempt, progress=progress)
            if not ok:
                self.lost.set()
            self._written = progress
        except Exception:  # a passing db error must not kill the heartbeat
            log.exception("heartbeat of job %s failed", self._job_id)

    def _run(self) -> None:
        while not self.lost.is_set() and not self._stop.wait(self._period):
            self._beat()
        if not self.lost.is_set() and self._progress != self._written:
            self._beat()  # progress reported since the last beat outlives the task


@dataclass(frozen=True)
class Skipped:
    """Why a retrain task has nothing to do: the job was not queued, or loading its data failed
    (the failure is on the job row, or the attempt was already over)."""

    reason: str


def claim(db: Database, job_id: str, *, worker: str) -> JobData | Skipped:
    """Start a new attempt of a queued job and load its data, fixing the rows it trains on
    (up to the newest labelled row now)."""
    with db.session() as s:
        job = jobs.start(s, job_id, worker=worker)
        if job is None:
            step(job_id, None, "skipped", "not queued (finished, or running elsewhere)")
            return Skipped("not queued (finished, or running elsewhere)")
        attempt = job.attempts
    with guard(db, job_id, attempt) as failed:
        data = load(db, job_id, attempt)
        champion = f"v{data.champion.version}" if data.champion else "none"
        step(
            job_id,
            attempt,
            "started",
            "attempt %d of model %s started on %s: %d training rows, %d held out, champion %s",
            attempt,
            data.model_name,
            worker,
            len(data.data.y_train),
            len(data.data.y_hold),
            champion,
        )
        return data
    return Skipped(f"attempt {attempt} could not load its data: {failed.error}")


def load(db: Database, job_id: str, attempt: int) -> JobData:
    """The rows (up to the job's last row id, so every task sees the same), spec and champion.

    After a detected change the rows before it stay loaded (the warm start and the lineage
    need their positions), but no window, validation or hold-out row reaches before it; a
    reaction job (options.reaction) searches with the spec's small reaction budget.
    """
    with db.session() as s:
        job = jobs.find(s, job_id)
        if job is None or not jobs.is_attempt(job, attempt):
            raise JobLost(f"attempt {attempt} of job {job_id} is over")
        model = s.get(Model, job.model_id)
        assert model is not None
        spec = catalog.spec_of(model)
        if (job.options or {}).get("reaction"):
            spec = reaction_spec(spec)
        bench = read_bench(s, model, spec, until_id=job.last_row_id)
    return JobData(
        job_id,
        attempt,
        model.name,
        spec,
        bench.ids,
        bench.split(spec),
        bench.champion,
        bench.champion_window,
        bench.champion_problem,
    )


@dataclass(frozen=True)
class Bench:
    """What a challenger is judged with: the model's labelled rows (oldest first), where the
    current regime starts among them, and the champion as far as it could be used."""

    ids: list[int]
    rows: list[dict[str, Any]]
    labels: list[Any]
    change_start: int | None  # position of the first row after a detected change
    champion: Champion | None
    champion_window: dict[str, Any] | None
    champion_problem: str | None

    def split(self, spec: ModelSpec) -> Split:
        """The rows typed and split at the newest hold-out new to the champion
        (tuning.challenge.prepare); NotEnoughData when a fair split is impossible."""
        champion = self.champion
        return prepare(
            spec,
            self.rows,
            self.labels,
            champion_end=champion.rows_end if champion else None,
            change_start=self.change_start or None,
        )


def read_bench(s: Session, model: Model, spec: ModelSpec, *, until_id: int | None = None) -> Bench:
    """The model's labelled rows up to `until_id` (all by default) and its champion, read in
    the caller's session: what a retrain, or an imported version, is judged with."""
    change_row = (model.change or {}).get("start_row_id")
    ids, rows, labels = labelled.training_rows(s, model.id, until_id=until_id)
    current = catalog.champion(s, model.id)
    champion, window, problem = None, None, None
    if current is not None:
        champion, problem = _champion(s, spec, current, ids)
        window = current.data_window if champion else None
    change_start = bisect.bisect_left(ids, change_row) if change_row is not None else None
    return Bench(ids, rows, labels, change_start, champion, window, problem)


def _champion(
    s: Session, spec: ModelSpec, current: ModelVersion, ids: list[int]
) -> tuple[Champion | None, str | None]:
    """The champion as the challenge needs it, and what of it could not be used, if anything.

    A graph that cannot be read or loaded is a champion no replica can serve: nothing to
    defend, so the retrain goes on without it and judges its challenger against the baseline,
    as a first retrain does (failing instead would leave retraining, the way out, closed). A
    pipeline that cannot be read only costs the warm start. Database errors still raise.
    """
    name = f"champion v{current.version}"
    try:
        onnx = catalog.get_artifact(s, current.onnx_sha256)
        OnnxModel(onnx, spec)  # what conclude does with it, checked before the search
    except SQLAlchemyError:
        raise
    except Exception as exc:  # corrupt bytes, or whatever onnxruntime refuses a graph with
        return None, (
            f"{name} not judged against: its ONNX artifact {current.onnx_sha256} does not "
            f"load ({catalog.unusable(exc)}); judged against the baseline instead"
        )
    problem, pipeline = None, None
    if current.pipeline_sha256:
        try:
            pipeline = persist.loads(catalog.get_artifact(s, current.pipeline_sha256))
        except SQLAlchemyError:
            raise
        except Exception as exc:  # corrupt bytes, or whatever skops refuses
            problem = (
                f"{name} not warm-started from: its pipeline artifact {current.pipeline_sha256} "
                f"does not load ({catalog.unusable(exc)})"
            )
    until = current.data_window.get("last_row_id")
    rows_end = sum(1 for i in ids if until is not None and i <= until)
    return Champion(current.version, onnx, pipeline, rows_end or None), problem


def reaction_spec(spec: ModelSpec) -> ModelSpec:
    """The spec of a reaction retrain: a few candidates, seconds of search, a larger share of
    the fresh rows to judge on, and every row since the change to train on (a window narrower
    than the young regime would leave the newest concept's rows unused, the same rows every
    time, as the search's draws are seeded)."""
    retrain = spec.retrain.model_copy(
        update={
            "max_candidates": spec.retrain.reaction_candidates,
            "max_seconds": spec.retrain.reaction_seconds,
            "holdout_fraction": spec.retrain.reaction_holdout_fraction,
            "windows": [None],
        }
    )
    return spec.model_copy(update={"retrain": retrain})


@dataclass
class Failure:
    """What a guard caught, if anything: the error recorded on the job, or that the attempt
    was over."""

    error: str | None = None


@contextmanager
def guard(db: Database, job_id: str, attempt: int) -> Iterator[Failure]:
    """Record a failure in the job row; an attempt that is over just stops."""
    failure = Failure()
    fields = {"job_id": job_id, "attempt": attempt}
    try:
        yield failure
    except (JobLost, Conflict):
        log.warning(
            "attempt %s of job %s is over; dropping its work",
            attempt,
            job_id,
            extra={**fields, "step": "dropped"},
        )
        failure.error = "the attempt is over"
    except (NotEnoughData, TuningError) as exc:
        failure.error = str(exc)
        _fail(db, job_id, attempt, failure.error)
        step(job_id, attempt, "failed", "failed: %s", failure.error)
    except Exception as exc:
        log.exception("job %s failed", job_id, extra={**fields, "step": "failed"})
        failure.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _fail(db, job_id, attempt, failure.error)


def _fail(db: Database, job_id: str, attempt: int, error: str) -> None:
    with db.session() as s:
        jobs.fail(s, job_id, attempt=attempt, error=error)


def run_local(
    db: Database, job: JobData, *, heartbeat_seconds: float, notifier: ChampionNotifier
) -> None:
    """The whole search in this process (the embedded default), then `complete`."""
    with guard(db, job.job_id, job.attempt):
        started = time.monotonic()
        with Heartbeat(db, job.job_id, job.attempt, heartbeat_seconds) as beat:
            result = search(job.spec, job.data, job.champion, progress=beat.progress)
        searched(job, result, time.monotonic() - started)
        complete(db, job, result, heartbeat_seconds=heartbeat_seconds, notifier=notifier)


def searched(job: JobData, result: TuneResult, seconds: float | None = None) -> None:
    """The search's step line: how many trials, and the best candidate."""
    best = result.best
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    score = best.validation_score
    step(
        job.job_id,
        job.attempt,
        "searched",
        "search done%s: %d trials, best %s (validation score %s)",
        took,
        len(result.trials),
        best.kind,
        f"{score:.4f}" if score is not None else "none",
    )


def complete(
    db: Database,
    job: JobData,
    result: TuneResult,
    *,
    heartbeat_seconds: float,
    notifier: ChampionNotifier,
) -> None:
    """Every retrain's end, whether its search ran here or fanned out: export and judge the
    best candidate (tuning.challenge.conclude), then register the outcome."""
    with Heartbeat(db, job.job_id, job.attempt, heartbeat_seconds):
        outcome = conclude(job.spec, job.data, result, job.champion)
    step(
        job.job_id,
        job.attempt,
        "judged",
        "%s challenger %s: %s",
        outcome.candidate.kind,
        "wins" if outcome.decision.promote else "does not win",
        outcome.decision.reason if outcome.registrable else outcome.parity.reason,
    )
    register(db, job, outcome, notifier)


def register(db: Database, job: JobData, outcome: Outcome, notifier: ChampionNotifier) -> None:
    """Register the challenger, promote it if it won, and finish the job: all or nothing."""
    cand, decision = outcome.candidate, outcome.decision
    promoted = decision.promote and outcome.registrable
    reason = _reason(job, outcome)
    result: dict[str, Any] = {
        "candidate_version": None,
        "champion_version": None,
        "decision": Decision.PROMOTED if promoted else Decision.REJECTED,
        "reason": reason,
        "metrics": decision.metrics,
        "candidate": {
            "kind": cand.kind,
            "config": cand.config,
            "window": cand.window,
            "validation_score": cand.validation_score,
        },
        "parity": vars(outcome.parity),
        "trials": [t.to_json() for t in outcome.trials],
    }
    if job.champion_problem:
        result["champion_problem"] = job.champion_problem
    with db.session() as s:
        row = jobs.ensure_current(s, job.job_id, attempt=job.attempt)
        model = catalog.get_model(s, job.model_name, lock=True)
        actor = f"worker:{row.worker}"
        if outcome.registrable:
            version = catalog.register_version(
                s, model, _new_version(job, outcome), stage=Stage.CHALLENGER
            )
            result["candidate_version"] = version.version
            if promoted:
                catalog.promote(s, model, version, actor=actor, reason=reason)
            else:
                version.stage = Stage.REJECTED
        champion = catalog.champion(s, model.id)  # the registry's, used by the job or not
        result["champion_version"] = champion.version if champion else None
        events.record(
            s,
            model.id,
            "retrain_finished",
            actor=actor,
            version=result["candidate_version"],
            reason=reason,
            detail={"job_id": job.job_id, "decision": result["decision"]},
        )
        jobs.finish(s, row, result)
    if promoted:
        notifier.publish(job.model_name, result["champion_version"])
    candidate = result["candidate_version"]
    step(
        job.job_id,
        job.attempt,
        "registered",
        "%s; champion v%s",
        f"v{candidate} registered, {result['decision']}" if candidate else "nothing registered",
        result["champion_version"],
    )


def _reason(job: JobData, outcome: Outcome) -> str:
    """The decision's reason, and what of the champion it was made without."""
    reason = outcome.decision.reason
    return f"{reason}; {job.champion_problem}" if job.champion_problem else reason


def _new_version(job: JobData, outcome: Outcome) -> NewVersion:
    cand, ids = outcome.candidate, job.ids
    start, end = cand.rows
    hold_start, hold_end = outcome.holdout
    kept = job.champion_window if cand.kind == "warm_start" else None
    first = kept.get("first_row_id", ids[start]) if kept else ids[start]
    window = {
        "first_row_id": first,
        "last_row_id": ids[end - 1],
        "rows": end - start,
        "window": cand.window,
        "since_change_row_id": (
            ids[job.data.change_start] if job.data.change_start is not None else None
        ),
        "holdout": {
            "first_row_id": ids[hold_start],
            "last_row_id": ids[hold_end - 1],
            "rows": hold_end - hold_start,
        },
        "with_holdout": outcome.with_holdout,  # trained on the hold-out too, after it won
    }
    parent = job.champion.version if job.champion and cand.kind == "warm_start" else None
    return NewVersion(
        kind=cand.kind,
        onnx=outcome.onnx or b"",
        pipeline=outcome.pipeline_bytes,
        params=cand.config,
        metrics={**outcome.decision.metrics, "validation_score": cand.validation_score},
        data_window=window,
        classes=outcome.classes,
        parent_version=parent,
        reason=_reason(job, outcome),
        job_id=job.job_id,
    )
