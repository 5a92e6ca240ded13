"""Answers built here: JSON rendered by orjson for the FastAPI routes (FastAPI's own
ORJSONResponse is deprecated), and the raw ASGI answer of the handlers that run in front of
FastAPI (api.fastpath, api.guard)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.types import Send

Headers = list[tuple[bytes, bytes]]
JSON: Headers = [(b"content-type", b"application/json")]


class JSONResponse(StarletteJSONResponse):
    """A subclass of Starlette's JSONResponse, so that /openapi.json documents the routes'
    response models."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """One whole answer: its status and headers, then its body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
