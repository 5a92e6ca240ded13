"""The checks in front of every route FastAPI answers (everything but predict and infer,
which api.fastpath answers with the same checks of its own): access (api.auth), then the body
limit (api.limits); and the security headers (api.asgi) on every answer FastAPI gives.

A refusal here is answered here, in the path's protocol shape (api.errors), before FastAPI
sees the request: with API keys set, a request without one learns nothing else, not even
whether its path exists.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.asgi import client_address, header, respond, secured
from api.auth import Access
from api.errors import describe
from api.limits import BodyTooLarge, BoundedReceive, check_declared


class Guard:
    def __init__(self, app: ASGIApp, access: Access, *, max_body: int) -> None:
        self.app, self.access, self.max_body = app, access, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            if self.access.needs_key(path):
                self.access.require_client(header(scope, b"authorization"), client_address(scope))
            check_declared(scope["headers"], self.max_body)
        except Exception as exc:
            await _refuse(send, exc, path)
            return
        bounded = BoundedReceive(receive, self.max_body)
        refused = False

        async def guarded(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                if bounded.exceeded:
                    # Whatever the route made of a body over the limit, the answer is the 413.
                    refused = True
                    await _refuse(send, BodyTooLarge(self.max_body), path)
                else:
                    await send({**message, "headers": secured(message.get("headers", []))})
            elif not refused:
                await send(message)

        await self.app(scope, bounded, guarded)


async def _refuse(send: Send, exc: Exception, path: str) -> None:
    failure = describe(exc)
    await respond(send, failure.status, failure.shaped(path), failure.raw_headers())
