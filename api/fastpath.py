"""The hot routes served straight from ASGI, in front of FastAPI's middleware stack (see
api.app.LoopserveAPI; only the metrics come first).

`POST /v1/models/{name}/predict` and `POST /v2/models/{name}[/versions/{v}]/infer` do parse →
validate → one ONNX run → serialize and nothing else: no database or broker I/O (the log is
written by its own thread), no dependency injection, no per-value pydantic objects.

Parsing, validation and encoding run on the event loop: they hold the GIL wherever they run,
and a hop to a thread only adds switches and GIL hand-offs. The ONNX call alone goes to the
thread pool when the model's load-time timing says it would take longer than
LOOPSERVE_INLINE_ONNX_MS, since onnxruntime releases the GIL and the loop can serve other
requests meanwhile. Both protocols call the same decode and encode functions as the FastAPI
routes (api.codec, api.routes.v2), which stay as the documented form and the fallback when
LOOPSERVE_FAST_PATH=false.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, NamedTuple

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.codec import decode_body, encode_predictions
from api.dataplane import Served
from api.errors import HANDLED, describe, v2_message
from api.oip.decode import HEADER
from api.oip.encode import encode
from api.routes.v2 import decode_infer, parse_version
from api.serving import Columns, LoadedModel

log = logging.getLogger(__name__)
V1 = re.compile(r"^/v1/models/([^/]+)/predict$")
V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
JSON = [(b"content-type", b"application/json")]


class _Route(NamedTuple):
    """What the metrics middleware reads to label a request by its route template."""

    path: str


V1_ROUTE = _Route("/v1/models/{name}/predict")
V2_ROUTE = _Route("/v2/models/{name}/infer")


class FastPath:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if (match := V1.match(path)) is not None:
            scope["route"] = V1_ROUTE
            await self._v1(match.group(1), scope, receive, send)
        elif (match := V2.match(path)) is not None:
            scope["route"] = V2_ROUTE
            await self._v2(match.group(1), match.group(2), scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _infer(self, model: LoadedModel, columns: Columns) -> Served:
        """The ONNX call: in a thread when long, else batched with the requests of the same
        event-loop turn (LOOPSERVE_MICRO_BATCH), else right here."""
        plane, batcher = self.state.dataplane, self.state.batcher
        if columns.n >= model.offload_rows:
            return await run_in_threadpool(plane.infer, model, columns)
        if batcher is not None:
            return await batcher.infer(model, columns)
        return plane.infer(model, columns)

    async def _v1(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authorize(scope)
            body = await _read(receive)
            plane = self.state.dataplane
            model, columns = decode_body(plane, name, body)
            served = await self._infer(model, columns)
            await _respond(send, 200, encode_predictions(name, served), JSON)
        except _Unauthorized as exc:
            await _respond(send, 401, orjson.dumps({"detail": str(exc)}), _CHALLENGE)
        except HANDLED as exc:
            status, detail = describe(exc) or (500, "internal error")
            await _respond(send, status, orjson.dumps({"detail": detail}), JSON)
        except Exception:  # in front of FastAPI's error middleware: answer as it would
            log.exception("predict failed")
            await _respond(send, 500, orjson.dumps({"detail": "internal error"}), JSON)

    async def _v2(
        self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            self._authorize(scope)
            body = await _read(receive)
            header = _header(scope, HEADER.encode())
            plane = self.state.dataplane
            model, parsed, columns = decode_infer(plane, name, parse_version(version), body, header)
            served = await self._infer(model, columns)
            content, headers = encode(served, parsed)
            raw = [(k.encode(), v.encode()) for k, v in headers.items()]
            await _respond(send, 200, content, raw)
        except _Unauthorized as exc:
            await _respond(send, 401, orjson.dumps({"error": str(exc)}), _CHALLENGE)
        except HANDLED as exc:
            status, detail = describe(exc) or (500, "internal error")
            await _respond(send, status, orjson.dumps({"error": v2_message(detail)}), JSON)
        except Exception:
            log.exception("infer failed")
            await _respond(send, 500, orjson.dumps({"error": "internal error"}), JSON)

    def _authorize(self, scope: Scope) -> None:
        keys = self.state.settings.keys
        if not keys:
            return
        auth = _header(scope, b"authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not any(
            secrets.compare_digest(given.encode(), k.encode()) for k in keys
        ):
            raise _Unauthorized("API key required: Authorization: Bearer <key>")


class _Unauthorized(Exception):
    pass


_CHALLENGE = [*JSON, (b"www-authenticate", b"Bearer")]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
