"""The broker connection, shared by the worker app and by every process that only sends tasks
by name (the API): one place decides which transport and options are in force."""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.settings import BrokerSettings

RETRAIN_TASK = "loopserve.retrain"
TICK_TASK = "loopserve.tick"
MONITOR_TASK = "loopserve.monitor"


def broker_conf(settings: BrokerSettings) -> dict[str, Any]:
    """Celery settings for the broker named by LOOPSERVE_BROKER_URL, or the embedded one."""
    if not settings.embedded_broker:
        # Longer than any training, so Redis does not redeliver a running task by itself;
        # the job table re-queues jobs whose worker died.
        return {
            "broker_url": settings.broker_url,
            "broker_transport_options": {"visibility_timeout": 6 * 3600},
            # Chords of candidate fits need a result backend; the broker's Redis serves.
            "result_backend": settings.broker_url,
            "result_expires": 24 * 3600,
        }
    folder = settings.broker_folder
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport": "worker.fsbroker:Transport",
        "broker_transport_options": {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_poll_seconds,
        },
        # The file-system transport has no fanout exchange for remote control.
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
    }


class TaskSender:
    """Sends loopserve tasks by name; it never imports the task code."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self._app = Celery("loopserve-client")
        self._app.conf.update(broker_conf(settings or BrokerSettings()))
        self._app.conf.update(broker_connection_retry=False, broker_connection_max_retries=0)

    def send_retrain(self, job_id: str) -> None:
        """Raise if the broker cannot be reached (the job stays queued and is re-sent later)."""
        self._app.send_task(RETRAIN_TASK, args=[job_id], retry=False)

    def close(self) -> None:
        self._app.close()
