"""The Celery app: tiny, configured from settings, with an explicit task list.

Without LOOPSERVE_BROKER_URL it uses kombu's file-system transport under $LOOPSERVE_HOME, so
`loopserve up` needs neither Redis nor RabbitMQ; the job table makes up for what that transport
lacks (no redelivery after a killed worker).
"""

from __future__ import annotations

from celery import Celery

from worker.broker import MONITOR_TASK, TICK_TASK, broker_conf
from worker.settings import WorkerSettings


def make_celery(settings: WorkerSettings | None = None) -> Celery:
    settings = settings or WorkerSettings()
    app = Celery("loopserve", include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        beat_schedule_filename=str((settings.home / "celerybeat-schedule").resolve()),
        beat_schedule={
            "loopserve-tick": {"task": TICK_TASK, "schedule": settings.tick_seconds},
            "loopserve-monitor": {
                "task": MONITOR_TASK,
                "schedule": settings.monitor_seconds,
                # a pass that waited longer than a few periods is stale: the next one is due
                "options": {"expires": max(5.0, 5 * settings.monitor_seconds)},
            },
        },
    )
    app.conf.update(broker_conf(settings))
    return app


app = make_celery()
