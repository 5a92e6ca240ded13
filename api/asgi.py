"""Raw ASGI for the handlers that run in front of FastAPI (api.fastpath, api.guard): read a
request header, send a whole answer, and the security headers every answer carries.

Every answer says `X-Content-Type-Options: nosniff` (a browser never runs a JSON body as
something else), `X-Frame-Options: DENY` and a Content-Security-Policy that lets a page load
nothing and be framed nowhere (`/docs` sends its own, api.routes.docs). They are built once,
here: the serving handlers append them as they are.
"""

from __future__ import annotations

from starlette.types import Scope, Send

Headers = list[tuple[bytes, bytes]]
JSON: Headers = [(b"content-type", b"application/json")]
CSP = b"content-security-policy"
STRICT_CSP = b"default-src 'none'; frame-ancestors 'none'"
FRAMING: Headers = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
SECURITY: Headers = [*FRAMING, (CSP, STRICT_CSP)]


def secured(headers: Headers) -> Headers:
    """An answer's headers with the security headers added (a new list, the answer's own:
    api.requestlog appends the request id to it); its own policy, if it has one, is kept."""
    own = any(key == CSP for key, _ in headers)
    return [*headers, *(FRAMING if own else SECURITY)]


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
    """One whole answer: its status, its headers and the security headers, then its body. The
    header list is this answer's own: api.requestlog appends the request id to it."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, *SECURITY, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
