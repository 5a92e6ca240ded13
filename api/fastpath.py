"""The serving handlers, straight from ASGI in front of FastAPI's middleware stack (see
api.app.LoopserveAPI; only api.requestlog comes first). They alone answer `POST
/v1/models/{name}/predict` and `POST /v2/models/{name}[/versions/{v}]/infer`; /openapi.json
documents them from api.schemas.

Each does parse → validate → one ONNX run → serialize and nothing else: no database or broker
I/O (models come from memory, the log is written by its own thread), no dependency injection,
no per-value pydantic objects. With LOOPSERVE_DURABLE_PREDICTIONS the answer also awaits the
log's commit of its rows (api.predlog), without blocking the loop. Auth is api.auth's, the body
limit api.limits' and failures are answered by api.errors, as for the FastAPI routes.

Parsing, validation and encoding run on the event loop: they hold the GIL wherever they run,
and a hop to a thread only adds switches and GIL hand-offs. The ONNX call alone goes to the
thread pool when the model's load-time timing says it would take longer than
LOOPSERVE_INLINE_ONNX_MS, since onnxruntime releases the GIL and the loop can serve other
requests meanwhile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi import JSON, client_address, header, respond
from api.auth import Access
from api.champions import Columns, LoadedModel
from api.codec import decode_body, encode_predictions
from api.dataplane import Served
from api.errors import Failure, describe
from api.limits import check_declared, read_body
from api.oip.decode import HEADER, decode_infer
from api.oip.encode import encode

log = logging.getLogger(__name__)
V1 = re.compile(r"^/v1/models/([^/]+)/predict$")
V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_HEADER = HEADER.encode()


class _Route(NamedTuple):
    """What the metrics middleware reads to label a request by its route template."""

    path: str


V1_ROUTE = _Route("/v1/models/{name}/predict")
V2_ROUTE = _Route("/v2/models/{name}/infer")


class FastPath:
    def __init__(
        self, app: ASGIApp, state: Any, access: Access, *, max_body: int, durable: bool = False
    ) -> None:
        self.app, self.state, self.access, self.max_body = app, state, access, max_body
        # Chosen once: the default path does no durability work at all.
        self._serve: Callable[[LoadedModel, Columns], Awaitable[Served]] = (
            self._infer_durably if durable else self._infer
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if scope["method"] != "POST":  # answered here: FastAPI has no route for these paths
            if V1.match(path):
                await respond(send, 405, b'{"detail":"Method Not Allowed"}', _ALLOW_POST)
            elif V2.match(path):
                await respond(send, 405, b'{"error":"Method Not Allowed"}', _ALLOW_POST)
            else:
                await self.app(scope, receive, send)
        elif (match := V1.match(path)) is not None:
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

    async def _infer_durably(self, model: LoadedModel, columns: Columns) -> Served:
        """_infer, returned once the prediction log has committed the rows
        (LOOPSERVE_DURABLE_PREDICTIONS): awaited on the loop, which serves other requests
        meanwhile, and shared by the requests that one write commits."""
        served = await self._infer(model, columns)
        await self.state.dataplane.log.written(served.ids)
        return served

    async def _v1(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authorize(scope)
            body = await self._read(scope, receive)
            model, columns = decode_body(self.state.dataplane, name, body)
            served = await self._serve(model, columns)
            await respond(send, 200, encode_predictions(name, served), JSON)
        except Exception as exc:  # in front of FastAPI's error handling: api.errors answers
            failure = _failure(exc, "predict")
            await respond(send, failure.status, failure.v1(), failure.raw_headers())

    async def _v2(
        self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            self._authorize(scope)
            body = await self._read(scope, receive)
            length = header(scope, _HEADER)
            model, parsed, columns = decode_infer(self.state.dataplane, name, version, body, length)
            served = await self._serve(model, columns)
            content, headers = encode(served, parsed)
            raw = [(k.encode(), v.encode()) for k, v in headers.items()]
            await respond(send, 200, content, raw)
        except Exception as exc:
            failure = _failure(exc, "infer")
            await respond(send, failure.status, failure.v2(), failure.raw_headers())

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        """The body, within LOOPSERVE_MAX_BODY_BYTES: its Content-Length checked first."""
        check_declared(scope["headers"], self.max_body)
        return await read_body(receive, self.max_body)

    def _authorize(self, scope: Scope) -> None:
        access = self.access
        if access.client_tokens:  # no header lookup while the routes are open
            access.require_client(header(scope, b"authorization"), client_address(scope))


_ALLOW_POST = [*JSON, (b"allow", b"POST")]


def _failure(exc: Exception, operation: str) -> Failure:
    failure = describe(exc)
    if failure.status == 500:
        log.exception("%s failed", operation)
    return failure
