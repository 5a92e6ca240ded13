"""Where the registry keeps its state."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HomeSettings(BaseSettings):
    """`LOOPSERVE_*` variables, and the one state directory of the embedded mode that every
    process kind's settings share: the SQLite database, the file-system broker and the
    generated admin token live under it."""

    # A rejected value is never echoed: URLs and tokens may carry secrets.
    model_config = SettingsConfigDict(
        env_prefix="LOOPSERVE_", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(default=Path("./var"), description="State directory of the embedded mode.")


class RegistrySettings(HomeSettings):
    """Database settings."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite at $LOOPSERVE_HOME/loopserve.db.",
    )

    notify_url: str | None = Field(
        default=None,
        description="Redis URL for champion-change notifications; default: the broker if Redis.",
    )

    @property
    def url(self) -> str:
        """The database URL in force, creating the home directory for the SQLite default."""
        if self.database_url:
            return _normalise(self.database_url)
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'loopserve.db').resolve()}"


def is_redis(url: str | None) -> bool:
    """Whether a broker or notify URL names Redis (plain or TLS)."""
    return url is not None and url.startswith(("redis://", "rediss://"))


def _normalise(url: str) -> str:
    """Accept the common `postgres://` / `postgresql://` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
