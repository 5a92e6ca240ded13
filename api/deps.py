"""Dependencies, declared once so routes read like their contract."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.dataplane import DataPlane
from api.errors import BadRequest
from api.live import Monitor
from api.service import Platform
from api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def get_dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane


def get_monitor(request: Request) -> Monitor:
    return request.app.state.monitor


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def require_admin(
    creds: Credentials, settings: Annotated[ApiSettings, Depends(get_settings)]
) -> str:
    """The admin principal's name, for the audit log; 401 without the admin token."""
    if creds is None or not secrets.compare_digest(
        creds.credentials.encode(), settings.admin_token.encode()
    ):
        raise HTTPException(
            401,
            "admin token required: Authorization: Bearer $LOOPSERVE_ADMIN_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return "admin"


def require_client(
    creds: Credentials, settings: Annotated[ApiSettings, Depends(get_settings)]
) -> None:
    """When LOOPSERVE_API_KEYS is set, predict and feedback need one of those keys."""
    keys = settings.keys
    if not keys:
        return
    given = creds.credentials.encode() if creds else b""
    if not any(secrets.compare_digest(given, k.encode()) for k in keys):
        raise HTTPException(
            401,
            "API key required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def json_body(request: Request) -> Any:
    """The request body as JSON, parsed with orjson (no per-value pydantic objects)."""
    body = await request.body()
    if not body:
        raise BadRequest("the request body is empty; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc


def field(body: Any, name: str) -> Any:
    """One top-level field of a JSON object body, or a 422 naming it."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field=None)
    if name not in body:
        raise BadRequest(f"missing field {name!r}", field=name)
    return body[name]


PlatformDep = Annotated[Platform, Depends(get_platform)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
MonitorDep = Annotated[Monitor, Depends(get_monitor)]
Admin = Annotated[str, Depends(require_admin)]
Client = Depends(require_client)
Body = Annotated[Any, Depends(json_body)]
