"""What the command line reads from `LOOPSERVE_*` variables; its flags override them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from registry.settings import HomeSettings


class CliSettings(HomeSettings):
    url: str = Field(
        default="http://127.0.0.1:8000", description="The API the admin commands talk to."
    )
    admin_token: str | None = Field(
        default=None, description="Admin token; default: the one `loopserve up` kept in home."
    )
    api_host: str = Field(default="127.0.0.1", description="`loopserve api --host`.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="`loopserve api --port`.")
    api_workers: int = Field(default=1, ge=1, description="`loopserve api --workers`.")
    worker_concurrency: int = Field(
        default=2, ge=1, description="`loopserve worker --concurrency`."
    )
    worker_name: str | None = Field(default=None, description="`loopserve worker --hostname`.")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="How api, worker and beat write their logs: `json` lines, `text`, or "
        "`auto`: JSON when standard error is not a terminal.",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="The least level api, worker and beat log."
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def token_file(self) -> Path:
        """Where `loopserve up` keeps the admin token it generated."""
        return self.home / "admin-token"

    def token(self) -> str | None:
        """LOOPSERVE_ADMIN_TOKEN, else the token `loopserve up` kept in home, if any."""
        if self.admin_token:
            return self.admin_token
        path = self.token_file
        return path.read_text().strip() if path.exists() else None
