"""Who may call what. With LOOPSERVE_API_KEYS set, every route but the health checks needs a
key or the admin token (and /metrics too, unless LOOPSERVE_METRICS_PUBLIC), the admin routes
the admin token; without keys, only the admin routes need a token. Failed authentication is
throttled per client address."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api.auth import ADMIN_REQUIRED, KEY_REQUIRED
from api.throttle import FailureThrottle
from tests.api.conftest import ADMIN, app_client
from tests.factories import churn_rows, features_only

KEY = {"Authorization": "Bearer k2"}
HEALTH = ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"]
READS = [
    "/v1/models",
    "/v1/models/churn",
    "/v1/models/churn/versions",
    "/v1/models/churn/versions/1/onnx",
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
    many = {"auth_failures_per_minute": 10_000}  # this test fails often on purpose
    with app_client(database_url, tmp_path, api_keys="k1, k2", **many) as client:
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


def test_failed_authentication_is_throttled_per_address(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Past LOOPSERVE_AUTH_FAILURES_PER_MINUTE failures, an address gets 429 with Retry-After
    on every route that takes a token, whatever token it sends, until its budget refills;
    other addresses and the health checks are untouched."""
    body = {"instances": features_only(churn_rows(1, seed=3))}
    v2 = {"inputs": [{"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}
    wrong = {"Authorization": "Bearer wrong"}
    with app_client(database_url, tmp_path, api_keys="k2", auth_failures_per_minute=3) as client:
        for path in ("/v1/models", "/v1/admin/events", "/v1/models/churn/predict"):
            r = client.request("POST" if path.endswith("predict") else "GET", path, headers=wrong)
            assert r.status_code == 401, path
        for method, path, kwargs, shape in (
            ("POST", "/v1/models/churn/predict", {"json": body}, "detail"),
            ("POST", "/v2/models/churn/infer", {"json": v2}, "error"),
            ("GET", "/v1/models", {}, "detail"),
            ("GET", "/v2/models/churn", {}, "error"),
            ("GET", "/v1/admin/events", {}, "detail"),
        ):
            for headers in (wrong, KEY, ADMIN):
                r = client.request(method, path, headers=headers, **kwargs)
                assert r.status_code == 429, (path, headers, r.text)
                assert 1 <= int(r.headers["retry-after"]) <= 20  # a failure's worth: 60 s / 3
                assert "too many failed authentications" in r.json()[shape]
        assert client.get("/healthz").status_code == 200
        other = TestClient(client.app, client=("10.0.0.2", 50000))  # the same app
        assert other.get("/v1/models", headers=KEY).status_code == 200
        assert other.get("/v1/models", headers=wrong).status_code == 401
        throttle = client.app.state.access.throttle
        assert throttle.tracked() == 2  # the two addresses that failed, no other


def test_an_address_may_try_again_once_its_budget_refills(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = {"Authorization": "Bearer wrong"}
    with app_client(database_url, tmp_path, auth_failures_per_minute=60) as client:
        for _ in range(1000):  # no key set: the admin routes take the admin token
            r = client.get("/v1/admin/events", headers=wrong)
            if r.status_code == 429:
                break
            assert r.status_code == 401
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert client.get("/v1/admin/events", headers=ADMIN).status_code == 429
        time.sleep(1.1)  # a failure's worth: 60 s / 60
        assert client.get("/v1/admin/events", headers=ADMIN).status_code == 200
        assert client.get("/v1/models").status_code == 200  # never needed a token


def test_the_throttle_tracks_a_bounded_number_of_addresses() -> None:
    now = [0.0]
    throttle = FailureThrottle(2, max_addresses=100, clock=lambda: now[0])
    assert throttle.failed("first") == 0 and throttle.failed("first") == 0
    assert throttle.failed("first") == 30  # over: a failure's worth is 60 s / 2
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert throttle.tracked() == 100
    assert throttle.wait("first") == 0  # forgotten, the least recent
    now[0] += 1
    assert throttle.wait("10.0.39.15") == 0  # the most recent: one failure, within budget
