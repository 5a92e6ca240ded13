"""What the periodic tick decides: which models retrain now, and which jobs to send again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from registry import catalog, jobs, labelled, monitoring
from registry.db import Database
from registry.errors import NotFound
from registry.models import Model, Trigger, utcnow
from tuning.spec import RetrainSettings
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass
class TickResult:
    """Job ids to send to the broker, with why."""

    send: list[str] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # model name -> trigger
    failed: dict[str, str] = field(default_factory=dict)  # model name -> error


def tick(db: Database, settings: WorkerSettings) -> TickResult:
    """Create jobs due by schedule or by new labels; re-queue jobs whose worker went silent;
    re-send queued jobs no worker picked up (a message the broker lost)."""
    out = TickResult()
    with db.session() as s:
        out.send += jobs.requeue_stale(
            s, timeout=settings.job_timeout_seconds, max_attempts=settings.job_max_attempts
        )
        for job_id in jobs.resend_due(s, older_than=settings.job_timeout_seconds):
            if job_id not in out.send:
                out.send.append(job_id)

    def trigger(name: str) -> None:
        with db.session() as s:
            _trigger(s, catalog.get_model(s, name), out)

    out.failed = each_model(db, trigger, "the retrain triggers")
    return out


def each_model(db: Database, work: Callable[[str], None], what: str) -> dict[str, str]:
    """`work(name)` for every model, each on its own, so that one model's broken spec or data
    fails only its own work (logged); a model deleted meanwhile is skipped. {name: error} of
    the models whose work failed."""
    with db.session() as s:
        names = sorted(catalog.model_names(s))
    failed = {}
    for name in names:
        try:
            work(name)
        except NotFound:
            continue
        except Exception as exc:
            log.exception("%s of %s failed", what, name)
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


def _trigger(s: Session, model: Model, out: TickResult) -> None:
    if jobs.open_job(s, model.id) is not None:
        return
    reason = _due(s, model, catalog.spec_of(model).retrain)
    if reason is None:
        return
    job, created = jobs.submit(s, model, trigger=reason, actor="platform")
    if created:
        out.created[model.name] = reason
        out.send.append(job.id)
        jobs.mark_sent(s, [job.id])


def _due(session: Session, model: Model, retrain: RetrainSettings) -> Trigger | None:
    last = jobs.last_finished(session, model.id)
    if retrain.min_new_labels is not None:
        new = labelled.rows_after(session, model.id, last.last_row_id if last else None)
        if new >= retrain.min_new_labels and not monitoring.young_regime(session, model):
            return Trigger.LABELS
    if retrain.schedule_seconds is not None:
        since = last.created_at if last else model.created_at
        if utcnow() - since >= timedelta(seconds=retrain.schedule_seconds):
            return Trigger.SCHEDULE
    return None
