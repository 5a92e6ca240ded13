"""A retrain job from claim to decision. Celery tasks only call into here.

The ML is `tuning.challenge`; this module moves rows and artifacts between it and the
registry, keeps the job's heartbeat, and registers the outcome in one transaction that also
re-checks the job is still ours: a worker whose job was re-queued registers nothing.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from registry import catalog, data, events, jobs
from registry.catalog import NewVersion
from registry.db import Database
from registry.models import Model
from tuning import persist
from tuning.challenge import Champion, NotEnoughData, Outcome, challenge

log = logging.getLogger(__name__)


class JobLost(RuntimeError):
    """The job was re-queued or finished by someone else while we worked on it."""


@dataclass
class _Loaded:
    job_id: str
    model_name: str
    spec: Any
    ids: list[int]
    rows: list[dict[str, Any]]
    labels: list[Any]
    champion: Champion | None
    champion_window: dict[str, Any] | None


class Heartbeat:
    """Refreshes the job's heartbeat and progress from a thread while training runs."""

    def __init__(self, db: Database, job_id: str, worker: str, period: float) -> None:
        self._db, self._job_id, self._worker, self._period = db, job_id, worker, period
        self._progress: float | None = None
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._period * 2)

    def progress(self, fraction: float) -> None:
        self._progress = fraction
        if self.lost.is_set():
            raise JobLost(f"job {self._job_id} is no longer ours")

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                with self._db.session() as s:
                    if not jobs.heartbeat(
                        s, self._job_id, worker=self._worker, progress=self._progress
                    ):
                        self.lost.set()
                        return
            except Exception:  # a passing db error must not kill the heartbeat
                log.exception("heartbeat of job %s failed", self._job_id)


def run_retrain(db: Database, job_id: str, *, worker: str, heartbeat_seconds: float) -> None:
    """Run one retrain job if it is still queued; record success or failure in the job row."""
    loaded = _claim_and_load(db, job_id, worker)
    if loaded is None:
        log.info("job %s is not queued any more; nothing to do", job_id)
        return
    try:
        with Heartbeat(db, job_id, worker, heartbeat_seconds) as beat:
            outcome = challenge(
                loaded.spec,
                loaded.rows,
                loaded.labels,
                champion=loaded.champion,
                progress=beat.progress,
            )
            if beat.lost.is_set():
                raise JobLost(f"job {job_id} is no longer ours")
        _register(db, loaded, outcome, worker)
    except JobLost:
        log.warning("job %s was taken over; dropping its result", job_id)
    except NotEnoughData as exc:
        with db.session() as s:
            jobs.fail(s, job_id, worker=worker, error=str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with db.session() as s:
            jobs.fail(s, job_id, worker=worker, error=detail)


def _claim_and_load(db: Database, job_id: str, worker: str) -> _Loaded | None:
    with db.session() as s:
        job = jobs.get(s, job_id)
        model = s.get(Model, job.model_id)
        assert model is not None
        last = data.last_row_id(s, model.id)
        if jobs.start(s, job_id, worker=worker, last_row_id=last) is None:
            return None
        spec = catalog.spec_of(model)
        ids, rows, labels = data.training_rows(s, model.id, until_id=last)
        current = catalog.champion(s, model.id)
        champion, window = None, None
        if current is not None:
            pipeline = None
            if current.pipeline_sha256:
                pipeline = persist.loads(catalog.get_artifact(s, current.pipeline_sha256))
            window = current.data_window
            trained_until = window.get("last_row_id")
            rows_end = sum(1 for i in ids if trained_until is not None and i <= trained_until)
            champion = Champion(
                current.version,
                catalog.get_artifact(s, current.onnx_sha256),
                pipeline,
                rows_end or None,
            )
        return _Loaded(job_id, model.name, spec, ids, rows, labels, champion, window)


def _register(db: Database, loaded: _Loaded, outcome: Outcome, worker: str) -> None:
    """Register the challenger, promote it if it won, and finish the job: all or nothing."""
    cand, decision = outcome.candidate, outcome.decision
    result: dict[str, Any] = {
        "candidate_version": None,
        "champion_version": loaded.champion.version if loaded.champion else None,
        "decision": "promoted" if decision.promote and outcome.registrable else "rejected",
        "reason": decision.reason,
        "metrics": decision.metrics,
        "candidate": {
            "kind": cand.kind,
            "config": cand.config,
            "window": cand.window,
            "validation_score": cand.validation_score,
        },
        "parity": vars(outcome.parity),
        "trials": outcome.trials,
    }
    with db.session() as s:
        job = jobs.ensure_owner(s, loaded.job_id, worker=worker)
        model = catalog.get_model(s, loaded.model_name, lock=True)
        if outcome.registrable:
            version = catalog.register_version(
                s, model, _new_version(loaded, outcome), stage="challenger"
            )
            result["candidate_version"] = version.version
            if decision.promote:
                catalog.promote(s, model, version, actor=f"worker:{worker}", reason=decision.reason)
                result["champion_version"] = version.version
            else:
                version.stage = "rejected"
        events.record(
            s,
            model.id,
            "retrain_finished",
            actor=f"worker:{worker}",
            version=result["candidate_version"],
            reason=decision.reason,
            detail={"job_id": loaded.job_id, "decision": result["decision"]},
        )
        jobs.finish(s, job, result)


def _new_version(loaded: _Loaded, outcome: Outcome) -> NewVersion:
    cand, ids = outcome.candidate, loaded.ids
    start, end = cand.rows
    hold_start, hold_end = outcome.holdout
    first = (
        ids[start]
        if cand.kind == "refit" or not loaded.champion_window
        else loaded.champion_window.get("first_row_id", ids[start])
    )
    window = {
        "first_row_id": first,
        "last_row_id": ids[end - 1],
        "rows": end - start,
        "window": cand.window,
        "holdout": {
            "first_row_id": ids[hold_start],
            "last_row_id": ids[hold_end - 1],
            "rows": hold_end - hold_start,
        },
    }
    parent = loaded.champion.version if loaded.champion and cand.kind == "warm_start" else None
    return NewVersion(
        kind=cand.kind,
        onnx=outcome.onnx or b"",
        pipeline=outcome.pipeline_bytes,
        params=cand.config,
        metrics={**outcome.decision.metrics, "validation_score": cand.validation_score},
        data_window=window,
        classes=outcome.classes,
        parent_version=parent,
        reason=outcome.decision.reason,
        job_id=loaded.job_id,
    )
