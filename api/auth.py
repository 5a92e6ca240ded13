"""Who may call what, for every route, and the one bearer-token check (`authenticate`) behind
it.

Without LOOPSERVE_API_KEYS, only the admin routes (`/v1/admin/...`) need a token: the admin
token. With keys set, every other route needs one of the keys or the admin token as well,
but for the health checks a load balancer or orchestrator polls (OPEN_PATHS), and `/metrics`
when LOOPSERVE_METRICS_PUBLIC is set. `Access` holds that policy; api.guard applies it in front
of FastAPI, the serving handlers (api.fastpath) to predict and infer, and api.deps to the
admin routes.

A failure raises `Unauthorized`; api.errors answers it with 401 and `WWW-Authenticate: Bearer`
in the protocol's error shape. Failures are counted per client address (api.throttle): past
LOOPSERVE_AUTH_FAILURES_PER_MINUTE, that address's requests raise `Throttled` (429 with
Retry-After) until its budget refills, whatever token they carry.
"""

from __future__ import annotations

import math
import secrets

from api.settings import ApiSettings
from api.throttle import FailureThrottle

ADMIN_REQUIRED = "admin token required: Authorization: Bearer $LOOPSERVE_ADMIN_TOKEN"
KEY_REQUIRED = "API key required: Authorization: Bearer <key>"
# What answers without a key, always: liveness and readiness, in both protocols.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})


class Unauthorized(Exception):
    """No valid bearer token for the route; the message says which one it needs."""


class Throttled(Exception):
    """Too many failed authentications from this client address lately."""

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))  # whole seconds, as Retry-After takes them
        super().__init__(
            "too many failed authentications from this address; "
            f"retry in {self.retry_after} s (LOOPSERVE_AUTH_FAILURES_PER_MINUTE)"
        )


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


class Access:
    """The access policy of one app, from its settings: which paths need a key, the tokens
    each kind of route accepts, and the throttle of the addresses that fail."""

    def __init__(self, settings: ApiSettings) -> None:
        self.admin_tokens = settings.admin_tokens
        # The API keys and the admin token; empty when no key is set.
        self.client_tokens = settings.client_tokens
        self.open_paths = OPEN_PATHS | ({"/metrics"} if settings.metrics_public else set())
        self.throttle = FailureThrottle(settings.auth_failures_per_minute)

    def needs_key(self, path: str) -> bool:
        """Whether a request to `path` needs a key (or the admin token)."""
        return bool(self.client_tokens) and path not in self.open_paths

    def require_admin(self, authorization: str | None, address: str) -> None:
        """The admin routes take the admin token only."""
        self._check(authorization, self.admin_tokens, ADMIN_REQUIRED, address)

    def require_client(self, authorization: str | None, address: str) -> None:
        """With LOOPSERVE_API_KEYS set, one of those keys or the admin token; else nothing."""
        if self.client_tokens:
            self._check(authorization, self.client_tokens, KEY_REQUIRED, address)

    def _check(
        self, authorization: str | None, accepted: tuple[bytes, ...], message: str, address: str
    ) -> None:
        """`authenticate`, unless the client's address is waiting; a failure is counted."""
        wait = self.throttle.wait(address)
        if wait:
            raise Throttled(wait)
        try:
            authenticate(authorization, accepted, message)
        except Unauthorized:
            wait = self.throttle.failed(address)
            if wait:
                raise Throttled(wait) from None
            raise
