"""The request body limit (LOOPSERVE_MAX_BODY_BYTES), the same for every route: a body whose
Content-Length is over it is refused before a byte of it is read, and a body sent in chunks
is refused as soon as more than the limit has arrived, so no more than the limit of a body is
ever held in memory. api.errors answers BodyTooLarge with 413 in the protocol's shape.

The serving handlers (api.fastpath) read their bodies with `read_body`; everything FastAPI
answers reads through a `BoundedReceive` (api.guard).
"""

from __future__ import annotations

from starlette.types import Message, Receive

_CONTENT_LENGTH = b"content-length"


class BodyTooLarge(ValueError):
    """The request body is larger than LOOPSERVE_MAX_BODY_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body exceeds the limit of {limit} bytes (LOOPSERVE_MAX_BODY_BYTES)"
        )
        self.limit = limit


def check_declared(headers: list[tuple[bytes, bytes]], limit: int) -> None:
    """BodyTooLarge when the request's Content-Length is over `limit` (the server has checked
    that the header is a number, or refused the request)."""
    for key, value in headers:
        if key == _CONTENT_LENGTH:
            if int(value) > limit:
                raise BodyTooLarge(limit)
            return


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit` bytes of it arrived."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message
        if len(body) > limit:
            raise BodyTooLarge(limit)
        return body
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class BoundedReceive:
    """An ASGI `receive` that counts the body's bytes and raises BodyTooLarge once they pass
    the limit, and remembers that it did: whatever the application made of the error (FastAPI
    turns an error while it reads a body into a 400), api.guard answers 413."""

    __slots__ = ("exceeded", "limit", "receive", "size")

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive, self.limit = receive, limit
        self.size, self.exceeded = 0, False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                self.exceeded = True
                raise BodyTooLarge(self.limit)
        return message
