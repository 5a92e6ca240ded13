"""Raw ASGI for the handlers that run in front of FastAPI (api.fastpath, api.guard): read a
request header, send a whole answer."""

from __future__ import annotations

from starlette.types import Scope, Send

Headers = list[tuple[bytes, bytes]]
JSON: Headers = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> str | None:
    """The request's first header called `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def client_address(scope: Scope) -> str:
    """The client's address as the server reports it (behind a proxy that uvicorn trusts,
    the one in X-Forwarded-For); empty when unknown."""
    client = scope.get("client")
    return client[0] if client else ""


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
