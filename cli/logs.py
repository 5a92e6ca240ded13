"""How every loopserve process logs (`loopserve api`, `worker`, `beat`): one line per record
on standard error, as JSON or as text.

LOOPSERVE_LOG_FORMAT picks: `json`, `text`, or `auto` (the default): JSON when standard error
is not a terminal (a container, a service manager, a file: whatever collects logs parses
them), text in a terminal (`loopserve up` run by hand). A JSON line is one object: `time`
(ISO 8601, UTC), `level`, `logger`, `message`, then whatever the record carries besides (the
API's `request_id`, `method`, `route`, `status`, `duration_ms`; the worker's `job_id`,
`attempt`, `step`, ...), and `exception` with the traceback, if any. A text line is
`time level logger [request id]: message`, the traceback on the lines after it.

LOOPSERVE_LOG_LEVEL is the least level written (default `info`). uvicorn's and Celery's own
loggers write through the same handler.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

FORMATS = ("auto", "json", "text")
LEVELS = ("debug", "info", "warning", "error", "critical")
# What every record has: the rest of a record's attributes are what its caller added.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's, with terminal codes
)


def is_json(log_format: str) -> bool:
    """Whether records are written as JSON: asked for, or `auto` off a terminal."""
    if log_format == "auto":
        stream = sys.__stderr__
        return not (stream is not None and stream.isatty())
    return log_format == "json"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """A record as a line for a person: time, level, logger, the request id if any, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request_id", None)
        record.context = f" [{request}]" if request else ""
        return super().format(record)


def config(log_format: str, level: str, *, request_ids: bool = False) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a process: every record, uvicorn's and Celery's
    included, through one handler on standard error in the format asked for; with
    `request_ids` (the API), each names the HTTP request it was logged for."""
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        # The process's own stderr: Celery replaces sys.stderr with a proxy that logs.
        "stream": "ext://sys.__stderr__",
        "formatter": "json" if is_json(log_format) else "text",
    }
    filters: dict[str, Any] = {}
    if request_ids:
        filters["request_id"] = {"()": "api.requestlog.WithRequestId"}
        handler["filters"] = ["request_id"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # uvicorn's loggers come with handlers of their own: through the root's instead.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
