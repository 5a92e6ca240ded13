"""API settings, read from `LOOPSERVE_*` environment variables: one object for the API
process, the registry's and the broker's settings included."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from registry.settings import RegistrySettings
from worker.settings import BrokerSettings

PLACEHOLDERS = {"changeme", "change-me", "secret", "token", "admin"}


class ApiSettings(RegistrySettings, BrokerSettings):
    # A rejected value is never echoed: it may be a secret (a short admin token, a key).
    model_config = SettingsConfigDict(
        env_prefix="LOOPSERVE_", extra="ignore", hide_input_in_errors=True
    )

    admin_token: str = Field(
        min_length=16, description="Bearer token of the admin routes (at least 16 characters)."
    )
    api_keys: str = Field(
        default="",
        description="Comma-separated keys every route but the health checks then needs (the "
        "admin token works there too); empty: only the admin routes need a token.",
    )
    auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="Failed authentications a client address may make per minute (as a burst, "
        "refilled evenly); past them its requests are answered 429 with Retry-After.",
    )
    metrics_public: bool = Field(
        default=False,
        description="With API keys set, answer /metrics without one (for a scraper that "
        "cannot send a bearer token).",
    )
    champion_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often a replica checks the champion pointers."
    )
    log_flush_seconds: float = Field(
        default=0.2, gt=0, description="Longest a prediction waits in memory before it is logged."
    )
    log_batch_size: int = Field(
        default=20_000, ge=1, description="Most prediction rows per log write (one transaction)."
    )
    log_queue_limit: int = Field(
        default=200_000, ge=1000, description="Unlogged rows held in memory before predict sheds."
    )
    log_writer_process: bool = Field(
        default=True,
        description="On PostgreSQL, write the prediction log from a child process, so that its "
        "COPY never holds the API process's GIL while requests wait.",
    )
    durable_predictions: bool = Field(
        default=False,
        description="Answer predict and infer only once their predictions are committed to the "
        "log, so that their ids are accepted as feedback after any crash of the API process; "
        "concurrent requests share one commit. Off, a crash loses the predictions of the last "
        "log_flush_seconds and of the write in progress.",
    )
    durable_wait_seconds: float = Field(
        default=2.0,
        gt=0,
        description="With durable_predictions, longest a request waits for its commit before "
        "it is answered 503.",
    )
    max_batch_rows: int = Field(default=10_000, ge=1, description="Most rows per predict call.")
    max_models: int = Field(
        default=100,
        ge=1,
        description="Most models the deployment holds: creating one more is refused (409) "
        "until one is deleted.",
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body of any route, in bytes: a larger one is answered 413, "
        "from its Content-Length before it is read, or as soon as a chunked body passes it.",
    )
    onnx_threads: int = Field(default=1, ge=1, description="onnxruntime intra-op threads.")
    inline_onnx_ms: float = Field(
        default=1.0,
        ge=0,
        description="ONNX calls expected to take longer than this (timed per model when it "
        "loads) run in the thread pool, so the event loop serves other requests meanwhile; "
        "parsing and encoding stay on the loop, where they hold the GIL either way.",
    )
    micro_batch: bool = Field(
        default=True,
        description="Gather the small requests to one model version that reach the ONNX call "
        "in the same event-loop turn into one call (adds one loop turn to each).",
    )
    gil_switch_seconds: float = Field(
        default=0.001, gt=0, description="Python's thread switch interval in the API process."
    )
    log_serving_requests: bool = Field(
        default=False,
        description="Log a line for every predict and infer answer, successes too (by default "
        "only those of 400 and above: a line each costs a measurable share of single-row "
        "throughput); every other request is logged either way.",
    )
    prediction_log: bool = Field(
        default=True, description="Log every prediction (needed for feedback by prediction id)."
    )

    @field_validator("admin_token")
    @classmethod
    def _not_placeholder(cls, v: str) -> str:
        if v.strip().lower() in PLACEHOLDERS:
            raise ValueError("LOOPSERVE_ADMIN_TOKEN is a placeholder; set a real secret")
        return v

    @cached_property
    def admin_tokens(self) -> tuple[bytes, ...]:
        """What the admin routes accept (api.auth)."""
        return (self.admin_token.encode(),)

    @cached_property
    def client_tokens(self) -> tuple[bytes, ...]:
        """What the routes that need a key accept: the API keys and the admin token; empty
        when no key is set (api.auth)."""
        keys = sorted({k.strip() for k in self.api_keys.split(",") if k.strip()})
        if not keys:
            return ()
        return (*(k.encode() for k in keys), self.admin_token.encode())
