"""Domain errors become HTTP here, in one place: routes and services never build responses
for failures."""

from __future__ import annotations

from fastapi import FastAPI, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.dataplane import BatchTooLarge, VersionNotServed
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


def _json(status: int, detail: object) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(InvalidData)
    async def _invalid(_: Request, exc: InvalidData) -> JSONResponse:
        return _json(
            422,
            [
                {"loc": _loc(p), "msg": p["message"], "row": p["row"], "field": p["field"]}
                for p in exc.problems
            ],
        )

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return _json(
            422,
            [
                {
                    "loc": ["body", exc.field] if exc.field else ["body"],
                    "msg": str(exc),
                    "field": exc.field,
                }
            ],
        )

    @app.exception_handler(BatchTooLarge)
    async def _too_large(_: Request, exc: BatchTooLarge) -> JSONResponse:
        return _json(413, str(exc))

    @app.exception_handler(VersionNotServed)
    async def _version(_: Request, exc: VersionNotServed) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(ModelNotReady)
    async def _not_ready(_: Request, exc: ModelNotReady) -> JSONResponse:
        return _json(
            503,
            f"model {exc} has no champion loaded yet: upload labelled data and "
            f"retrain it (POST /v1/admin/models/{exc}/retrain), then retry",
        )

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        return _json(503, str(exc))

    @app.exception_handler(LogOverloaded)
    async def _overloaded(_: Request, exc: LogOverloaded) -> JSONResponse:
        return _json(503, f"{exc}: the database is not keeping up or is down; retry later")

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        return _json(
            503,
            "the database is unreachable; check LOOPSERVE_DATABASE_URL and that "
            "the database is up, then retry",
        )


def _loc(problem: dict) -> list:
    parts: list = ["body"]
    for piece in str(problem["field"]).replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index))
    return parts
