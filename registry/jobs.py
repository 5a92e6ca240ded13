"""Retrain jobs. The job table is the truth about what runs, not the broker:

- one open (queued or running) job per model, by a partial unique index: a second trigger joins;
- a running job belongs to its current attempt while some task of it heart-beats; a job whose
  heartbeat stopped is re-queued as a new attempt (the embedded brokers never redeliver a task
  whose worker was killed, Redis only after its visibility timeout);
- tasks carry their attempt number: a task of an old attempt must not register anything. With
  candidates fanned out, tasks on several workers act for one attempt;
- a job deleted with its model (registry.catalog.delete_model) is over for every task still
  working on it, as a re-queued attempt is: its tasks drop their work instead of failing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from registry import events, labelled
from registry.errors import Conflict, NotFound, excerpt
from registry.models import JOB_OPEN, Job, JobStatus, Model, Trigger, storable, utcnow


def submit(
    session: Session,
    model: Model,
    *,
    trigger: Trigger,
    actor: str,
    options: dict[str, Any] | None = None,
) -> tuple[Job, bool]:
    """Create a retrain job for the model, or join the open one. Returns (job, created).

    The caller sends the task only after this transaction commits (and the platform re-sends
    queued jobs that no worker picked up, see `resend_due`).
    """
    existing = open_job(session, model.id)
    if existing is not None:
        return existing, False
    job = Job(
        model_id=model.id, trigger=trigger, status=JobStatus.QUEUED, progress=0.0, options=options
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = open_job(session, model.id)
        if existing is None:
            raise
        return existing, False
    events.record(
        session,
        model.id,
        "retrain_requested",
        actor=actor,
        detail={"job_id": job.id, "trigger": trigger, **({"options": options} if options else {})},
    )
    return job, True


def open_job(session: Session, model_id: int) -> Job | None:
    return session.scalar(select(Job).where(Job.model_id == model_id, Job.status.in_(JOB_OPEN)))


def get(session: Session, job_id: str, *, lock: bool = False) -> Job:
    job = find(session, job_id, lock=lock)
    if job is None:
        raise NotFound(f"job {excerpt(job_id)} not found")
    return job


def find(session: Session, job_id: str, *, lock: bool = False) -> Job | None:
    """The job, or None when there is none (never was, or deleted with its model)."""
    if not storable(job_id):
        return None
    query = select(Job).where(Job.id == job_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def start(session: Session, job_id: str, *, worker: str) -> Job | None:
    """Start a new attempt of a queued job, fixing the rows it trains on (up to the model's
    newest labelled row now); None when it is not queued (done, running, or deleted with its
    model)."""
    job = find(session, job_id, lock=True)
    if job is None or job.status != JobStatus.QUEUED:
        return None
    now = utcnow()
    job.status, job.worker, job.attempts = JobStatus.RUNNING, worker, job.attempts + 1
    job.started_at = job.heartbeat_at = now
    job.progress, job.error = 0.0, None
    job.last_row_id = labelled.last_row_id(session, job.model_id)
    return job


def is_attempt(job: Job, attempt: int) -> bool:
    """Whether `attempt` is the job's live one (running, not re-queued since)."""
    return job.status == JobStatus.RUNNING and job.attempts == attempt


def heartbeat(session: Session, job_id: str, *, attempt: int, progress: float | None) -> bool:
    """Refresh the heartbeat; False when `attempt` is no longer the job's live attempt (or the
    job is gone)."""
    job = find(session, job_id, lock=True)
    if job is None or not is_attempt(job, attempt):
        return False
    job.heartbeat_at = utcnow()
    if progress is not None:
        job.progress = max(0.0, min(1.0, progress))
    return True


def ensure_current(session: Session, job_id: str, *, attempt: int) -> Job:
    """Lock the job and check `attempt` is still its live attempt; raise Conflict otherwise."""
    job = find(session, job_id, lock=True)
    if job is None:
        raise Conflict(f"attempt {attempt} of job {job_id} is over: the job was deleted")
    if not is_attempt(job, attempt):
        raise Conflict(f"attempt {attempt} of job {job_id} is over")
    return job


def finish(session: Session, job: Job, result: dict[str, Any]) -> None:
    job.status, job.result, job.progress, job.finished_at = (
        JobStatus.SUCCEEDED,
        result,
        1.0,
        utcnow(),
    )


def fail(session: Session, job_id: str, *, attempt: int | None, error: str) -> bool:
    """Mark the job failed with its error, if it is open and `attempt` (when given) is still
    the live one."""
    job = find(session, job_id, lock=True)
    if job is None or job.status not in JOB_OPEN:
        return False
    if attempt is not None and not is_attempt(job, attempt):
        return False
    job.status, job.error, job.finished_at = JobStatus.FAILED, error, utcnow()
    events.record(
        session,
        job.model_id,
        "retrain_failed",
        actor=job.worker or "platform",
        reason=error[:2000],
        detail={"job_id": job.id},
    )
    return True


def supersede(session: Session, job: Job, *, reason: str, actor: str = "monitor") -> None:
    """End an open job because its work became moot (newer data after a detected change, or
    its model is being deleted): its running attempt sees it is no longer live at its next
    heartbeat and drops its work."""
    job.status, job.error, job.finished_at = JobStatus.FAILED, f"superseded: {reason}", utcnow()
    events.record(
        session,
        job.model_id,
        "retrain_superseded",
        actor=actor,
        reason=reason,
        detail={"job_id": job.id, "trigger": job.trigger},
    )


def last_created(session: Session, model_id: int, *, triggers: tuple[Trigger, ...]) -> Job | None:
    """The newest job of the model with one of these triggers."""
    return session.scalar(
        select(Job)
        .where(Job.model_id == model_id, Job.trigger.in_(triggers))
        .order_by(Job.created_at.desc())
        .limit(1)
    )


def requeue_stale(session: Session, *, timeout: float, max_attempts: int) -> list[str]:
    """Re-queue running jobs whose heartbeat is older than `timeout` seconds; fail those that
    used up their attempts. Returns the ids to send again."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    stale = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff)
        .with_for_update()
    ).all()
    again = []
    for job in stale:
        if job.attempts >= max_attempts:
            fail(
                session,
                job.id,
                attempt=None,
                error=f"worker {job.worker} stopped heart-beating; gave up after "
                f"{job.attempts} attempts",
            )
            continue
        events.record(
            session,
            job.model_id,
            "retrain_requeued",
            actor="platform",
            reason=f"worker {job.worker} stopped heart-beating",
            detail={"job_id": job.id, "attempt": job.attempts},
        )
        job.status, job.worker, job.sent_at = JobStatus.QUEUED, None, utcnow()
        again.append(job.id)
    return again


def resend_due(session: Session, *, older_than: float) -> list[str]:
    """Queued jobs sent (or re-queued) over `older_than` seconds ago that no worker picked up:
    the message was lost or is stuck. Marks them sent now, so each is re-sent once a period."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    due = session.scalars(
        select(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            or_(Job.sent_at < cutoff, and_(Job.sent_at.is_(None), Job.created_at < cutoff)),
        )
        .with_for_update()
    ).all()
    for job in due:
        job.sent_at = now
    return [job.id for job in due]


def mark_sent(session: Session, job_ids: list[str]) -> None:
    now = utcnow()
    for job_id in job_ids:
        get(session, job_id).sent_at = now


def last_finished(session: Session, model_id: int) -> Job | None:
    return session.scalar(
        select(Job)
        .where(Job.model_id == model_id, Job.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED)))
        .order_by(Job.finished_at.desc())
        .limit(1)
    )


def list_jobs(
    session: Session,
    *,
    model_id: int | None,
    status: JobStatus | None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of jobs, newest first (by creation time, then id), of one model and one status
    when given, each as `as_dict` has it with its result less the search's trials (which stay
    in the database), and the cursor of the next page (None on the last).

    The cursor names the page's last job by its creation time and id: the next page starts
    just after it (keyset pagination), so pages neither repeat nor skip a job while new ones
    are created, and a deep page costs what the first does. Raises ValueError for a cursor
    `page_cursor` did not make.
    """
    query = (
        select(Job, Model.name, _result_without_trials(session).label("summary"))
        .join(Model, Model.id == Job.model_id)
        .options(defer(Job.result))
    )
    if model_id is not None:
        query = query.where(Job.model_id == model_id)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor is not None:
        at, job_id = parse_cursor(cursor)
        query = query.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < job_id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    page = [as_dict(job, name, summary) for job, name, summary in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    last = rows[limit - 1][0]
    return page, page_cursor(last.created_at, last.id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
CURSOR = re.compile(r"(\d{1,17})\.([0-9A-Za-z_-]{1,32})")


def page_cursor(created_at: datetime, job_id: str) -> str:
    """The cursor of the page after this job: its creation time in microseconds since the
    epoch, a dot, its id (URL-safe as it is)."""
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{job_id}"


def parse_cursor(text: str) -> tuple[datetime, str]:
    """The creation time and id a cursor names; ValueError when `text` is not a cursor."""
    match = CURSOR.fullmatch(text)
    if match is None:
        raise ValueError("not a cursor of this listing: pass `next_cursor` as it was answered")
    return _EPOCH + int(match.group(1)) * _MICROSECOND, match.group(2)


def _result_without_trials(session: Session) -> ColumnElement[Any]:
    """The result document less its `trials`, removed by the database (whose JSON functions
    differ: PostgreSQL's `-` takes jsonb and refuses a scalar, SQLite's json_remove takes
    any JSON text)."""
    if session.get_bind().dialect.name == "postgresql":
        document = cast(Job.result, JSONB)
        trimmed = case(
            (func.jsonb_typeof(document) == "object", document.op("-")(literal("trials"))),
            else_=document,
        )
        return type_coerce(trimmed, JSON)
    return type_coerce(func.json_remove(Job.result, "$.trials"), JSON)


def as_dict(job: Job, model: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The job as the API answers it (api.records.JobRecord), with `result` for its result."""
    return {
        "job_id": job.id,
        "model": model,
        "status": job.status,
        "progress": round(job.progress, 4),
        "trigger": job.trigger,
        "options": job.options,
        "attempts": job.attempts,
        "result": result,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
