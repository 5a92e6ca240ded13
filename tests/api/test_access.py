"""Who may call what. With LOOPSERVE_API_KEYS set, every route but the health checks needs a
key or the admin token (and /metrics too, unless LOOPSERVE_METRICS_PUBLIC), the admin routes
the admin token; without keys, only the admin routes need a token."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.auth import ADMIN_REQUIRED, KEY_REQUIRED
from tests.api.conftest import ADMIN, app_client

KEY = {"Authorization": "Bearer k2"}
HEALTH = ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"]
READS = [
    "/v1/models",
    "/v1/models/churn",
    "/v1/models/churn/versions",
    "/v1/models/churn/performance",
    "/v1/models/churn/drift",
    "/v2",
    "/v2/models/churn",
    "/v2/models/churn/ready",
    "/v2/models/churn/versions/1",
    "/v2/models/churn/versions/1/ready",
    "/metrics",
    "/docs",
    "/openapi.json",
]
ADMIN_READS = ["/v1/admin/events", "/v1/admin/jobs/" + "0" * 32]


def _refused(client: TestClient, path: str, headers: dict[str, str], message: str) -> None:
    r = client.get(path, headers=headers)
    assert r.status_code == 401, (path, r.status_code, r.text[:200])
    assert r.headers["www-authenticate"] == "Bearer"
    shape = "error" if path.startswith("/v2") else "detail"
    assert r.json() == {shape: message}, path


def test_with_keys_every_route_but_health_needs_one(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with app_client(database_url, tmp_path, api_keys="k1, k2") as client:
        for path in HEALTH:
            assert client.get(path).status_code == 200, path
        for path in [*READS, "/nope", "/v2/nope"]:
            for bad in ({}, {"Authorization": "Bearer k3"}, {"Authorization": "Basic k2"}):
                _refused(client, path, bad, KEY_REQUIRED)
        for path in READS:
            for good in (KEY, ADMIN):
                assert client.get(path, headers=good).status_code == 200, (path, good)
        assert client.get("/nope", headers=KEY).status_code == 404  # found out with a key only
        for path in ADMIN_READS:
            _refused(client, path, {}, KEY_REQUIRED)
            _refused(client, path, KEY, ADMIN_REQUIRED)
            assert client.get(path, headers=ADMIN).status_code in (200, 404)
        r = client.post("/v1/models/churn/feedback", json={"labels": []})
        assert r.status_code == 401  # before the body is looked at


def test_metrics_can_be_public(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with app_client(database_url, tmp_path, api_keys="k1", metrics_public=True) as client:
        r = client.get("/metrics")
        assert r.status_code == 200 and "loopserve_http_requests_total" in r.text
        for path in READS:
            if path != "/metrics":
                _refused(client, path, {}, KEY_REQUIRED)


def test_without_keys_only_the_admin_routes_need_a_token(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    for path in [*HEALTH, *READS]:
        assert client.get(path).status_code == 200, path
    for path in ADMIN_READS:
        _refused(client, path, {}, ADMIN_REQUIRED)
        assert client.get(path, headers=ADMIN).status_code in (200, 404)
