"""Domain errors become HTTP here, and only here: routes, services and the serving handlers raise
what went wrong and never build a failure response themselves.

`describe` gives an error's status and detail; each protocol has its own shape for them:
v1 `{"detail": ...}` (FastAPI's), the Open Inference Protocol `{"error": "..."}`. The serving
handlers (api.fastpath) call `Failure.v1`/`Failure.v2`; `install` registers the same mapping as
FastAPI's exception handlers, which answer in the V2 shape under `/v2`.

    registry.errors.NotFound, api.dataplane.VersionNotServed       404
    registry.errors.Conflict                                       409
    registry.errors.InvalidData, MalformedInput, request validation 422, every row and field
    api.oip.decode.ProtocolError                                   400
    api.dataplane.BatchTooLarge, api.limits.BodyTooLarge           413
    api.auth.Unauthorized                                          401, WWW-Authenticate: Bearer
    api.auth.Throttled                                             429, Retry-After
    api.champions.ModelNotReady, api.platform.BrokerUnavailable,
from api.predlog import LogNotDurable, LogOverloaded
from registry.errors import Conflict, CorruptArtifact, InvalidData, NotFound, clip
    anything else                                                  500 "internal error"

No answer sends an input back whole: messages quote offending values through
registry.errors.excerpt where they are raised, and `describe` bounds what it is handed
besides (MESSAGE_CHARS per message, registry.errors.ECHO_CHARS per name in a field path), so
that a message built elsewhere (a validator's, numpy's) cannot echo a megabyte either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import Response

from api.auth import Throttled, Unauthorized
from api.champions import ModelNotReady
from api.dataplane import BatchTooLarge, VersionNotServed
from api.limits import BodyTooLarge
from api.oip.decode import ProtocolError
from api.platform import BrokerUnavailable
from api.predlog import LogNotDurable, LogOverloaded
from registry.errors import Conflict, CorruptArtifact, InvalidData, NotFound, clip


class MalformedInput(ValueError):
    """The body could not be read as the route's input (not JSON, wrong shape, bad CSV)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


DB_DOWN = (
    "the database is unreachable; check LOOPSERVE_DATABASE_URL and that the database is up, "
    "then retry"
)
JSON = "application/json"
MESSAGE_CHARS = 1024  # the longest message an answer carries: ours are shorter, an echo is not


@dataclass(frozen=True, slots=True)
class Failure:
    """How an error is answered: its status, its detail (a message, or the problems of an
    input, each with `loc`, `msg`, `row` and `field`) and any extra headers."""

    status: int
    detail: str | list[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)

    def v1(self) -> bytes:
        return orjson.dumps({"detail": self.detail})

    def v2(self) -> bytes:
        """The Open Inference Protocol's one-line `error`."""
        if isinstance(self.detail, str):
            return orjson.dumps({"error": self.detail})
        message = "; ".join(f"{d.get('field') or 'body'}: {d['msg']}" for d in self.detail)
        return orjson.dumps({"error": message})

    def shaped(self, path: str) -> bytes:
        """The body in the shape of the path's protocol: V2 under `/v2`, else v1."""
        return self.v2() if path == "/v2" or path.startswith("/v2/") else self.v1()

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The answer's headers as ASGI sends them, its content type first."""
        return [(b"content-type", b"application/json")] + [
            (k.encode(), v.encode()) for k, v in self.headers.items()
        ]


INTERNAL = Failure(500, "internal error")
CHALLENGE = {"www-authenticate": "Bearer"}


def describe(exc: BaseException) -> Failure:
    """The answer to an error; INTERNAL for anything that is not a known domain error."""
    match exc:
        case NotFound() | VersionNotServed():
            return Failure(404, _message(exc))
        case Conflict():
            return Failure(409, _message(exc))
        case InvalidData():
            return Failure(422, [_invalid(p) for p in exc.problems])
        case MalformedInput():
            loc = ["body", exc.field] if exc.field else ["body"]
            return Failure(
                422, [{"loc": loc, "msg": _message(exc), "row": None, "field": exc.field}]
            )
        case RequestValidationError():
            return Failure(422, [_problem(e) for e in exc.errors()])
        case ProtocolError():
            return Failure(400, _message(exc))
        case BatchTooLarge() | BodyTooLarge():
            return Failure(413, str(exc))
        case Unauthorized():
            return Failure(401, str(exc), CHALLENGE)
        case Throttled():
            return Failure(429, str(exc), {"retry-after": str(exc.retry_after)})
        case ModelNotReady() | BrokerUnavailable():
            return Failure(503, _message(exc))
        case LogOverloaded():
            return Failure(503, f"{exc}: the database is not keeping up or is down; retry later")
        case LogNotDurable():
            return Failure(
                503,
                f"{exc}, so the predictions were not answered (LOOPSERVE_DURABLE_PREDICTIONS): "
                "check LOOPSERVE_DATABASE_URL and that the database is up, then retry",
            )
        case OperationalError() | PoolTimeout():
            return Failure(503, DB_DOWN)
        case CorruptArtifact():
            return Failure(500, _message(exc))
    return INTERNAL


def install(app: FastAPI) -> None:
    """Answer errors raised under FastAPI (dependencies, routes) as `describe` says, in the
    shape of the path's protocol. Unexpected errors are still raised to the server's log."""

    async def handler(request: Request, exc: Exception) -> Response:
        failure = describe(exc)
        body = failure.shaped(request.url.path)
        return Response(body, failure.status, failure.headers, media_type=JSON)

    for kind in (
        NotFound,
        VersionNotServed,
        Conflict,
        InvalidData,
        MalformedInput,
        RequestValidationError,
        ProtocolError,
        BatchTooLarge,
        BodyTooLarge,
        Unauthorized,
        Throttled,
        ModelNotReady,
        BrokerUnavailable,
        LogOverloaded,
        LogNotDurable,
        OperationalError,
        PoolTimeout,
        CorruptArtifact,
        Exception,
    ):
        app.add_exception_handler(kind, handler)


def _message(exc: BaseException) -> str:
    return clip(str(exc), MESSAGE_CHARS)


def _invalid(problem: dict[str, Any]) -> dict[str, Any]:
    """One of InvalidData's problems as an answer lists it."""
    field = _field(problem["field"])
    msg = clip(str(problem["message"]), MESSAGE_CHARS)
    return {"loc": _loc(field), "msg": msg, "row": problem["row"], "field": field}


def _field(field: Any) -> Any:
    """A problem's field path, its names cut as registry.errors.clip cuts them (a field path
    may hold a name the request made up)."""
    return field if field is None else ".".join(clip(part) for part in str(field).split("."))


def _problem(error: Any) -> dict[str, Any]:
    """A pydantic validation error in the shape of InvalidData's problems: `field` is the
    dotted path below the body (`labels[2].label`), `row` the index of a list item in it.
    A name in the path (a key of the request's) and the message are cut to their bounds."""
    loc = [clip(part) if isinstance(part, str) else part for part in error["loc"]]
    path = loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc
    if error["type"] == "json_invalid":  # its loc ends with a character position
        path = []
    row = path[1] if len(path) > 1 and isinstance(path[1], int) else None
    return {
        "loc": loc,
        "msg": clip(str(error["msg"]), MESSAGE_CHARS),
        "type": error["type"],
        "row": row,
        "field": _dotted(path) or None,
    }


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _loc(field: Any) -> list[str | int]:
    parts: list[str | int] = ["body"]
    for piece in str(field).replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:  # a row's index; a name of the request's may hold a bracket too
            parts.append(int(index) if index.isdigit() else index)
    return parts
