"""Dependencies, declared once so routes read like their contract."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from api.auth import Access
from api.dataplane import DataPlane
from api.errors import MalformedInput
from api.live import Monitor
from api.platform import Platform

# Declares the bearer scheme in /openapi.json (Swagger's "Authorize"); api.auth checks it.
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def get_dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane


def get_monitor(request: Request) -> Monitor:
    return request.app.state.monitor


def get_access(request: Request) -> Access:
    return request.app.state.access


def require_admin(
    request: Request, _: Credentials, access: Annotated[Access, Depends(get_access)]
) -> str:
    """The admin principal's name, for the audit log; Unauthorized without the admin token."""
    address = request.client.host if request.client else ""
    access.require_admin(request.headers.get("authorization"), address)
    return "admin"


def declare_key(_: Credentials) -> None:
    """Marks a route that needs a key when LOOPSERVE_API_KEYS is set, so that /openapi.json
    (and Swagger's "Authorize") shows it; api.guard checks the key, in front of FastAPI, for
    every route alike."""


async def json_body(request: Request) -> Any:
    """The request body as JSON, parsed with orjson (no per-value pydantic objects)."""
    body = await request.body()
    if not body:
        raise MalformedInput("the request body is empty; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"the request body is not valid JSON: {exc}") from exc


def field(body: Any, name: str) -> Any:
    """One top-level field of a JSON object body, or a 422 naming it."""
    if not isinstance(body, dict):
        raise MalformedInput("the body must be a JSON object", field=None)
    if name not in body:
        raise MalformedInput(f"missing field {name!r}", field=name)
    return body[name]


M = TypeVar("M", bound=BaseModel)


def json_model(
    model: type[M], *, optional: bool = False
) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency: the body read as JSON whatever its content type (as the admin routes
    always read it, so `curl -d` works), validated by `model`; a 422 naming every offending
    field otherwise. With `optional`, an empty body (or `null`) is the model's defaults.

    Routes taking a body this way document it with api.openapi.json_request."""

    async def parse(request: Request) -> M:
        if optional and not await request.body():
            return model()
        body = await json_body(request)
        if optional and body is None:
            return model()
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors, body=body) from exc

    return parse


PlatformDep = Annotated[Platform, Depends(get_platform)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
MonitorDep = Annotated[Monitor, Depends(get_monitor)]
Admin = Annotated[str, Depends(require_admin)]
Client = Depends(declare_key)
