"""Bearer-token checks, the same for every route: the serving handlers (api.fastpath) and the
FastAPI dependencies (api.deps) hand the raw `Authorization` header to `require_client` or
`require_admin`, which both check it with `authenticate`.

A failure raises `Unauthorized`; api.errors answers it with 401 and `WWW-Authenticate: Bearer`
in the protocol's error shape.
"""

from __future__ import annotations

import secrets

from api.settings import ApiSettings

ADMIN_REQUIRED = "admin token required: Authorization: Bearer $LOOPSERVE_ADMIN_TOKEN"
KEY_REQUIRED = "API key required: Authorization: Bearer <key>"


class Unauthorized(Exception):
    """No valid bearer token for the route; the message says which one it needs."""


def authenticate(authorization: str | None, accepted: tuple[bytes, ...], message: str) -> None:
    """Pass when the header is `Bearer <token>` with one of the `accepted` tokens.

    Every accepted token is compared, in constant time, whatever matched before: the time
    taken tells nothing about which token, or how much of one, was right.
    """
    scheme, _, given = (authorization or "").partition(" ")
    token = given.encode()
    matched = False
    for candidate in accepted:
        matched |= secrets.compare_digest(token, candidate)
    if not matched or scheme.lower() != "bearer":
        raise Unauthorized(message)


def require_admin(settings: ApiSettings, authorization: str | None) -> None:
    """The admin routes take the admin token only."""
    authenticate(authorization, settings.admin_tokens, ADMIN_REQUIRED)


def require_client(settings: ApiSettings, authorization: str | None) -> None:
    """With LOOPSERVE_API_KEYS set, predict, infer and feedback take one of those keys or the
    admin token; without it they are open."""
    if settings.client_tokens:
        authenticate(authorization, settings.client_tokens, KEY_REQUIRED)
