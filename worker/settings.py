"""Worker settings, read from `LOOPSERVE_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from registry.settings import HomeSettings, RegistrySettings, is_redis


class BrokerSettings(HomeSettings):
    """The Celery broker: of the worker and beat, which run tasks, and of the API, which only
    sends them."""

    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default: the embedded file-system broker in $LOOPSERVE_HOME.",
    )
    broker_poll_seconds: float = Field(
        default=0.1, gt=0, description="Polling period of the embedded broker."
    )

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def broker_folder(self) -> Path:
        return (self.home / "broker").resolve()


class WorkerSettings(RegistrySettings, BrokerSettings):
    """Everything a worker or beat process reads: the registry, the broker and its own."""

    tick_seconds: float = Field(
        default=2.0, gt=0, description="How often beat checks schedules, label counts, stale jobs."
    )
    monitor_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often beat has the champions' live errors and inputs checked for changes.",
    )
    heartbeat_seconds: float = Field(default=2.0, gt=0, description="Job heartbeat period.")
    job_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A running job silent this long is re-queued."
    )
    job_max_attempts: int = Field(default=3, ge=1, description="Runs of a job before it fails.")
    fanout: bool | None = Field(
        default=None,
        description="Fan candidate fits out across workers as Celery chords (needs a Redis "
        "broker, which is also the result backend); default: on with Redis.",
    )

    @property
    def fanout_enabled(self) -> bool:
        return is_redis(self.broker_url) and self.fanout is not False
