"""What the routes do, without HTTP: serving, feedback and administration.

Routes parse and authenticate, then call one method here; tests can call it the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import modelfiles
from api.champions import ModelCache
from api.predlog import PredictionLog
from api.records import (
    EventRecord,
    ImportLineage,
    JobPage,
    JobRecord,
    ModelDeleted,
    ModelRecord,
    Promoted,
    Readiness,
    RetrainQueued,
    RolledBack,
    VersionImported,
    VersionRecord,
)
from registry import catalog, events, jobs, labelled
from registry.db import Database
from registry.errors import InvalidData, NotFound
from registry.models import JobStatus, Model, ModelVersion, Trigger
from registry.notify import ChampionNotifier
from registry.predlog import reads
from registry.predlog.ids import is_recent
from tuning.spec import ModelSpec
from worker.broker import TaskSender

log = logging.getLogger(__name__)

# A prediction issued longer ago than this is logged by now or was never issued: feedback on it
# never waits (a replica's buffer is written every few hundred milliseconds; backlogs while the
# database is down are what this leaves a margin for).
BUFFERED_SECONDS = 30.0


class BrokerUnavailable(RuntimeError):
    """The retrain job is recorded but could not be sent to the broker."""


class Platform:
    """Feedback and administration; serving is the data plane's (api.dataplane)."""

    def __init__(
        self,
        db: Database,
        cache: ModelCache,
        log: PredictionLog,
        sender: TaskSender,
        notifier: ChampionNotifier,
        *,
        feedback_wait_seconds: float,
        max_models: int,
    ) -> None:
        self.db, self.cache, self.log, self.sender = db, cache, log, sender
        self.notifier = notifier
        self.feedback_wait_seconds = feedback_wait_seconds
        self.max_models = max_models

    # --- feedback ----------------------------------------------------------------------

    async def feedback(self, name: str, labels: Sequence[Mapping[str, Any]]) -> int:
        """Store true labels (a non-empty list, as api.schemas.FeedbackRequest has it), all or
        nothing, each checked by registry.labelled.add_feedback; committed when this returns.

        Labels for recent prediction ids not yet in the log wait a moment for the replica
        holding them to write them — on the event loop, so no waiting request holds a thread —
        and so do those for ids this replica still holds, however old (its backlog after the
        database was down for long). Any other unknown id is refused at once: it costs what a
        known one does.
        """
        ids = {pid for item in labels if (pid := item.get("prediction_id")) is not None}
        waiting = {pid for pid in ids if is_recent(pid, BUFFERED_SECONDS)} | self.log.holds(ids)
        if waiting:
            await run_in_threadpool(self.log.flush, self.feedback_wait_seconds)
            await self._wait_for_predictions(name, waiting)
        return await run_in_threadpool(self._store_feedback, name, labels)

    def _store_feedback(self, name: str, labels: Sequence[Mapping[str, Any]]) -> int:
        """The model is read without a lock (feedback must not queue behind a promotion): a
        delete committed between that read and the insert fails the rows' foreign key, which
        is the model not found, as for feedback sent after the delete."""
        try:
            with self.db.session() as s:
                model = catalog.get_model(s, name)
                return labelled.add_feedback(s, model, catalog.spec_of(model), labels)
        except IntegrityError:
            with self.db.session() as s:
                catalog.get_model(s, name)  # NotFound once the delete has committed
            raise

    async def _wait_for_predictions(self, name: str, ids: set[str]) -> None:
        """Another replica may still hold a recent prediction in its log buffer: give it
        `feedback_wait_seconds`, polling the log every 0.1 s."""
        deadline = time.monotonic() + self.feedback_wait_seconds
        while True:
            missing = await run_in_threadpool(self._missing_predictions, name, ids)
            if not missing or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.1)

    def _missing_predictions(self, name: str, ids: set[str]) -> set[str]:
        with self.db.session() as s:
            model = catalog.get_model(s, name)
            return set(reads.missing_predictions(s, model.id, ids))

    # --- administration ----------------------------------------------------------------

    def create_model(self, spec: ModelSpec, *, actor: str) -> ModelRecord:
        """Create a model, refused (Conflict) beyond `max_models`: a client must not fill the
        deployment with models no one deletes."""
        with self.db.session() as s:
            model = catalog.create_model(s, spec, actor=actor, max_models=self.max_models)
            out = self._model_record(s, model)
        self.cache.wake(spec.name)  # serving learns the name now, not at the next poll
        return out

    def delete_model(self, name: str, *, actor: str) -> ModelDeleted:
        """Delete the model with all that is its own (registry.catalog.delete_model). Then no
        replica serves it: this one before answering, the others when notified (or at their
        next poll), as when a champion changes."""
        with self.db.session() as s:
            gone = catalog.delete_model(s, name, actor=actor)
        try:
            self.cache.refresh()
        except Exception:  # the poller retries; the model's rows are gone either way
            log.exception("could not drop %s from this replica's champions at once", name)
            self.cache.wake(name)
        self.notifier.publish(name, None)
        return ModelDeleted(model=name, **gone)

    def upload(self, name: str, rows: Any, *, actor: str) -> int:
        if not isinstance(rows, list) or not rows:
            raise InvalidData(
                "rows must be a non-empty list",
                [{"row": None, "field": "rows", "message": "must be a non-empty list"}],
            )
        with self.db.session() as s:
            model = catalog.get_model(s, name, lock=True)
            n = labelled.add_rows(s, model, catalog.spec_of(model), rows)
            events.record(s, model.id, "data_uploaded", actor=actor, detail={"rows": n})
            return n

    def retrain(self, name: str, *, actor: str) -> RetrainQueued:
        """Create or join the model's retrain job; send it only once it is committed. The
        model is locked, so a request during its deletion waits for it and finds no model."""
        with self.db.session() as s:
            model = catalog.get_model(s, name, lock=True)
            job, created = jobs.submit(s, model, trigger=Trigger.ADMIN, actor=actor)
            out = RetrainQueued(job_id=job.id, status=job.status, joined=not created)
        if created:
            try:
                self.sender.send_retrain(job.id)
                with self.db.session() as s:
                    jobs.mark_sent(s, [job.id])
            except Exception as exc:  # its text may say to restart; nothing needs one
                log.warning("sending job %s failed: %s: %s", job.id, type(exc).__name__, exc)
                raise BrokerUnavailable(
                    f"job {job.id} is queued but the broker is unreachable "
                    f"({type(exc).__name__}); it is sent again once the broker is back, with no "
                    "restart needed. Check LOOPSERVE_BROKER_URL."
                ) from exc
        return out

    def job(self, job_id: str) -> JobRecord:
        with self.db.session() as s:
            job = jobs.get(s, job_id)
            model = s.get(Model, job.model_id)
            assert model is not None  # jobs go with their model
            return JobRecord.model_validate(jobs.as_dict(job, model.name, job.result))

    def jobs(
        self, *, model: str | None, status: JobStatus | None, limit: int, cursor: str | None
    ) -> JobPage:
        """A page of retrain jobs, newest first (registry.jobs.list_jobs); NotFound for a model
        name no model has (its jobs went with it)."""
        with self.db.session() as s:
            model_id = catalog.get_model(s, model).id if model is not None else None
            page, after = jobs.list_jobs(
                s, model_id=model_id, status=status, limit=limit, cursor=cursor
            )
            return JobPage(jobs=[JobRecord.model_validate(j) for j in page], next_cursor=after)

    def promote(self, name: str, version: int, *, actor: str, reason: str | None) -> Promoted:
        with self.db.session() as s:
            model = catalog.get_model(s, name, lock=True)
            target = catalog.get_version(s, model, version)
            reason = reason or "manual promotion"
            previous = catalog.promote(s, model, target, actor=actor, reason=reason)
            out = Promoted(
                model=name,
                champion_version=target.version,
                previous_version=previous.version if previous else None,
            )
        self._announce(name, target.version)
        return out

    def rollback(self, name: str, *, actor: str, reason: str | None) -> RolledBack:
        with self.db.session() as s:
            model = catalog.get_model(s, name, lock=True)
            current = catalog.champion(s, model.id)
            reason = reason or "manual rollback"
            restored = catalog.rollback(s, model, actor=actor, reason=reason)
            out = RolledBack(
                model=name,
                champion_version=restored.version,
                retired_version=current.version if current else None,
            )
        self._announce(name, restored.version)
        return out

    def onnx_file(self, name: str, version: str) -> modelfiles.OnnxFile:
        """A version's ONNX graph as stored, checked against its sha256."""
        return modelfiles.onnx_file(self.db, name, version)

    def import_version(
        self, name: str, data: bytes, *, filename: str | None, actor: str, promote: bool
    ) -> VersionImported:
        """Check, judge and register a file trained elsewhere (api.modelfiles); a version that
        won is served at once, as a promotion is."""
        done = modelfiles.import_version(
            self.db,
            name,
            data,
            filename=modelfiles.clean_filename(filename),
            actor=actor,
            promote=promote,
        )
        if done.decision == "promoted":
            self._announce(name, done.version.version)
        return VersionImported(
            model=name,
            version=_version_record(done.version),
            decision=done.decision,
            reason=done.reason,
            champion_version=done.champion_version,
            lineage=ImportLineage.model_validate(done.lineage),
        )

    def _announce(self, name: str, version: int) -> None:
        """After the commit: this replica reloads now, the others when notified (or polled)."""
        self.cache.wake(name)
        self.notifier.publish(name, version)

    def events(self, model: str | None) -> list[EventRecord]:
        """The audit log, of one model name when given: a deleted model's entries too, and
        NotFound for a name that no model has and no entry names."""
        with self.db.session() as s:
            found = events.list_events(s, model)
            if model is not None and not found:
                catalog.get_model(s, model)
            return [EventRecord.model_validate(e) for e in found]

    def models(self) -> list[ModelRecord]:
        with self.db.session() as s:
            return [self._model_record(s, m) for m in catalog.list_models(s)]

    def model(self, name: str) -> ModelRecord:
        with self.db.session() as s:
            return self._model_record(s, catalog.get_model(s, name))

    def versions(self, name: str) -> list[VersionRecord]:
        with self.db.session() as s:
            model = catalog.get_model(s, name)
            return [_version_record(v) for v in catalog.versions(s, model.id)]

    def _model_record(self, s: Session, model: Model) -> ModelRecord:
        champ = catalog.champion(s, model.id)
        return ModelRecord(
            name=model.name,
            spec=catalog.spec_of(model),
            classes=model.classes,
            champion=_version_record(champ) if champ else None,
            served_version=self.cache.versions().get(model.name),
            labelled_rows=labelled.rows_after(s, model.id, None),
            created_at=model.created_at.isoformat(),
        )

    # --- health ------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ready when the database answers and the champions were loaded once."""
        problems = []
        try:
            self.db.ping()
        except Exception as exc:
            problems.append(f"database unreachable: {type(exc).__name__}")
        if not self.cache.loaded_once.is_set():
            problems.append("champions not loaded yet")
        return Readiness(
            status="not ready" if problems else "ready",
            problems=problems,
            models=self.cache.versions(),
            not_ready=self.cache.not_ready(),
        )


def _version_record(v: ModelVersion) -> VersionRecord:
    return VersionRecord(
        version=v.version,
        stage=v.stage,
        kind=v.kind,
        params=v.params,
        metrics=v.metrics,
        data_window=v.data_window,
        parent_version=v.parent_version,
        reason=v.reason,
        onnx_sha256=v.onnx_sha256,
        classes=v.classes,
        job_id=v.job_id,
        created_at=v.created_at.isoformat(),
        promoted_at=v.promoted_at.isoformat() if v.promoted_at else None,
    )


__all__ = ["BrokerUnavailable", "NotFound", "Platform"]
