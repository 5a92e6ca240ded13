"""The API's front door: every HTTP request, the serving handlers' (api.fastpath) included,
gets a request id, its metrics and a line in the log.

The id is the client's `X-Request-ID` when it is sane (1 to 128 characters, letters, digits
and `-_.:/+=@~`), else 16 random hex digits; every answer carries it back in `X-Request-ID`,
and every log line written while the request is handled names it (`request_id`, through
`WithRequestId`). Each request is logged once, when it is answered, on the logger
`api.access`: method, route template (never the raw path), status and duration. Predict and
infer are the exception: at thousands of requests a second a line each would cost more than
it tells (see README, "Logs"), so their answers below 400 are logged only with
LOOPSERVE_LOG_SERVING_REQUESTS; their failures always are.

Per request this costs a closure, two clock reads and a dictionary lookup for the metrics,
and for the id one header scan or 8 random bytes, one context variable and one append to the
answer's header list (about 2 µs in all, README "Logs and request ids"); then the log call,
for a request that is logged.
"""

from __future__ import annotations

import binascii
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics

log = logging.getLogger("api.access")
HEADER = b"x-request-id"
MAX_ID_CHARS = 128
_SANE = re.compile(rb"[A-Za-z0-9._:/+=@~-]{1,%d}" % MAX_ID_CHARS)
# The id of the request being handled, as its header carries it.
REQUEST_ID: ContextVar[bytes | None] = ContextVar("request_id", default=None)
# Route templates whose successful answers are not logged unless asked for (api.fastpath's).
SERVING = frozenset({"/v1/models/{name}/predict", "/v2/models/{name}/infer"})


def request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's `X-Request-ID` if it is sane, else a new random one."""
    for key, value in headers:
        if key == HEADER:
            if _SANE.fullmatch(value):
                return value
            break
    return binascii.hexlify(os.urandom(8))


class WithRequestId(logging.Filter):
    """Names the request being handled in every record logged while it is (`request_id`),
    unless the record names one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = REQUEST_ID.get()
            if current is not None:
                record.request_id = current.decode("ascii")
        return True


class RequestMiddleware:
    """In front of everything: the request id, the metrics (by route template) and the log
    line of every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_serving: bool = False) -> None:
        self.app, self.metrics = app, metrics
        self.quiet = frozenset() if log_serving else SERVING
        # The labelled series, looked up once each: routes and statuses are few.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        rid = request_id(scope["headers"])
        REQUEST_ID.set(rid)  # in this request's own task: its context ends with it

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Every sender in front of FastAPI builds an answer's header list for that
                # answer alone (api.asgi.respond, api.guard): appending to it is safe.
                message["headers"].append((HEADER, rid))
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - start
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            key = (method, path, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.metrics.requests.labels(method, path, str(status)),
                    self.metrics.latency.labels(method, path),
                )
            series[0].inc()
            series[1].observe(elapsed)
            if (status >= 400 or path not in self.quiet) and log.isEnabledFor(logging.INFO):
                ms = round(elapsed * 1000, 3)
                fields = {
                    "request_id": rid.decode("ascii"),
                    "method": method,
                    "route": path,
                    "status": status,
                    "duration_ms": ms,
                }
                log.info("%s %s %d %.2f ms", method, path, status, ms, extra=fields)
