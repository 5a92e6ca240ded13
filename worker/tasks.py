"""Celery tasks: thin wrappers that take ids and call into worker.training / worker.triggers."""

from __future__ import annotations

import logging
import os
import socket
from functools import cache

from registry.db import Database
from registry.settings import RegistrySettings
from worker.app import app
from worker.broker import RETRAIN_TASK, TICK_TASK
from worker.settings import WorkerSettings
from worker.training import run_retrain
from worker.triggers import tick

log = logging.getLogger(__name__)


@cache
def _database() -> Database:
    """One engine per worker process, created on first use (after the pool forks)."""
    return Database(RegistrySettings().url)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name=RETRAIN_TASK, acks_late=True)
def retrain(job_id: str) -> None:
    run_retrain(
        _database(),
        job_id,
        worker=_worker_name(),
        heartbeat_seconds=WorkerSettings().heartbeat_seconds,
    )


@app.task(name=TICK_TASK, ignore_result=True)
def periodic_tick() -> None:
    result = tick(_database(), WorkerSettings())
    for model, trigger in result.created.items():
        log.info("retrain of %s triggered by %s", model, trigger)
    for job_id in result.send:
        app.send_task(RETRAIN_TASK, args=[job_id])
