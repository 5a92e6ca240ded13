"""Celery tasks: thin wrappers that take ids and call into worker.training / worker.fanout."""

from __future__ import annotations

import logging
import os
import socket
from functools import cache

from celery import Task

from registry.db import Database
from registry.notify import ChampionNotifier, notify_url
from tuning.challenge import SEARCH_SHARE
from tuning.steps import done_fraction
from worker import fanout
from worker.app import app
from worker.broker import MONITOR_TASK, RETRAIN_TASK, TICK_TASK
from worker.monitor import watch
from worker.settings import WorkerSettings
from worker.training import Heartbeat, JobLost, Skipped, claim, complete, guard, run_local
from worker.triggers import tick

log = logging.getLogger(__name__)


@cache
def _process() -> tuple[Database, WorkerSettings, ChampionNotifier, fanout.JobDataCache]:
    """Per worker process, created on first use (after the pool forked): the database, the
    settings, the champion notifier and the cache of job data for candidate fits."""
    settings = WorkerSettings()
    db = Database(settings.url)
    notifier = ChampionNotifier(notify_url(settings.broker_url, settings.notify_url))
    return db, settings, notifier, fanout.JobDataCache(db)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name=RETRAIN_TASK, acks_late=True)
def retrain(job_id: str) -> None:
    db, settings, notifier, _ = _process()
    job = claim(db, job_id, worker=_worker_name())
    if isinstance(job, Skipped):  # claim logged why
        return
    if settings.fanout_enabled:
        with guard(db, job_id, job.attempt):
            fanout.start(app, job)
    else:
        run_local(db, job, heartbeat_seconds=settings.heartbeat_seconds, notifier=notifier)


@app.task(name=fanout.CANDIDATE_TASK, bind=True, acks_late=True, ignore_result=False)
def candidate(self: Task, job_id: str, attempt: int, state: dict, task: dict) -> dict:
    db, settings, _, jobs_cache = _process()
    try:
        with Heartbeat(db, job_id, attempt, settings.heartbeat_seconds):
            return fanout.fit(
                jobs_cache, job_id, attempt, state, task, worker=self.request.hostname
            )
    except JobLost:
        return {"stale": True}


@app.task(name=fanout.RUNG_TASK, acks_late=True)
def rung(trials: list[dict], job_id: str, attempt: int, state: dict) -> None:
    db, settings, notifier, jobs_cache = _process()
    with guard(db, job_id, attempt):
        with Heartbeat(db, job_id, attempt, settings.heartbeat_seconds) as beat:
            following, result = fanout.next_step(jobs_cache, job_id, attempt, state, trials)
            if following is not None:  # what the rungs so far did, as the job's progress
                beat.progress(SEARCH_SHARE * done_fraction(following))
        if following is not None:
            fanout.launch(app, job_id, attempt, following)
            return
        job = jobs_cache.get(job_id, attempt)
        complete(db, job, result, heartbeat_seconds=settings.heartbeat_seconds, notifier=notifier)


@app.task(name=TICK_TASK, ignore_result=True)
def periodic_tick() -> None:
    db, settings, _, _ = _process()
    result = tick(db, settings)
    for model, trigger in result.created.items():
        log.info("retrain of %s triggered by %s", model, trigger)
    for job_id in result.send:
        app.send_task(RETRAIN_TASK, args=[job_id])


@app.task(name=MONITOR_TASK, ignore_result=True)
def monitor() -> None:
    db, _, _, _ = _process()
    result = watch(db)
    for model, kinds in result.detected.items():
        log.info("%s: detected %s", model, ", ".join(kinds))
    for job_id in result.send:
        app.send_task(RETRAIN_TASK, args=[job_id])
