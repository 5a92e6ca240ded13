"""Domain errors become HTTP here, in one place: routes and services never build responses
for failures. `describe` gives status and detail; v1 answers `{"detail": ...}`, the Open
Inference Protocol `{"error": "..."}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.dataplane import BatchTooLarge, VersionNotServed
from api.oip.decode import ProtocolError
from api.predlog import LogOverloaded
from api.responses import JSONResponse
from api.service import BrokerUnavailable
from api.serving import ModelNotReady
from registry.errors import Conflict, InvalidData, NotFound


class BadRequest(ValueError):
    """The body could not be read as the route's input (not JSON, wrong shape, bad CSV)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


DB_DOWN = (
    "the database is unreachable; check LOOPSERVE_DATABASE_URL and that the database is up, "
    "then retry"
)


def describe(exc: Exception) -> tuple[int, Any] | None:
    """(status, detail) of a domain error; None for anything else (a real 500)."""
    match exc:
        case NotFound() | VersionNotServed():
            return 404, str(exc)
        case Conflict():
            return 409, str(exc)
        case InvalidData():
            return 422, [
                {"loc": _loc(p), "msg": p["message"], "row": p["row"], "field": p["field"]}
                for p in exc.problems
            ]
        case BadRequest():
            loc = ["body", exc.field] if exc.field else ["body"]
            return 422, [{"loc": loc, "msg": str(exc), "field": exc.field}]
        case ProtocolError():
            return 400, str(exc)
        case BatchTooLarge():
            return 413, str(exc)
        case ModelNotReady() | BrokerUnavailable():
            return 503, str(exc)
        case LogOverloaded():
            return 503, f"{exc}: the database is not keeping up or is down; retry later"
        case OperationalError() | PoolTimeout():
            return 503, DB_DOWN
    return None


def v2_message(detail: Any) -> str:
    """The one-line `error` of the Open Inference Protocol for a v1 detail."""
    if isinstance(detail, list):
        return "; ".join(f"{d.get('field') or 'body'}: {d['msg']}" for d in detail)
    return str(detail)


HANDLED = (
    NotFound,
    VersionNotServed,
    Conflict,
    InvalidData,
    BadRequest,
    ProtocolError,
    BatchTooLarge,
    ModelNotReady,
    BrokerUnavailable,
    LogOverloaded,
    OperationalError,
    PoolTimeout,
)


def install(app: FastAPI) -> None:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        status, detail = describe(exc) or (500, "internal error")
        return JSONResponse({"detail": detail}, status_code=status)

    for kind in HANDLED:
        app.add_exception_handler(kind, handler)


def _loc(problem: dict) -> list:
    parts: list = ["body"]
    for piece in str(problem["field"]).replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index))
    return parts
