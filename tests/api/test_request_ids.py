"""Every answer carries `X-Request-ID`: the client's when it is sane, else a new one; and the
API logs one line per request with that id, its method, route, status and duration (predict's
and infer's successes only when asked for)."""

from __future__ import annotations

import logging
import re
from contextvars import copy_context
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.requestlog import REQUEST_ID, WithRequestId, request_id
from tests.api.conftest import ADMIN, app_client
from tests.factories import churn_rows, features_only

GENERATED = re.compile(r"[0-9a-f]{16}")
SANE = ["abc", "req-1.2_3:4/5+6=7@8~9", "A" * 128, "0123456789abcdef0123456789abcdef"]
INSANE: list[str | bytes] = ["", "has space", "A" * 129, 'quote"d', "semi;colon", "ünï".encode()]


def _requests(client: TestClient, headers: dict[str, Any]) -> list[httpx.Response]:
    rows = features_only(churn_rows(1, seed=3))
    tensor = {"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}
    return [
        client.post("/v1/models/churn/predict", json={"instances": rows}, headers=headers),
        client.post("/v1/models/churn/predict", json={"instances": [{}]}, headers=headers),
        client.get("/v1/models/churn/predict", headers=headers),
        client.post("/v2/models/churn/infer", json={"inputs": [tensor]}, headers=headers),
        client.get("/v1/models", headers=headers),
        client.get("/v1/admin/events", headers={**headers, **ADMIN}),
        client.get("/v1/admin/events", headers=headers),  # 401, refused in front of FastAPI
        client.get("/nope", headers=headers),
        client.get("/docs", headers=headers),
        client.get("/metrics", headers=headers),
    ]


@pytest.mark.parametrize("sent", SANE)
def test_a_sane_client_id_is_answered_back(served, sent) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    for r in _requests(client, {"X-Request-ID": sent}):
        assert r.headers.get_list("x-request-id") == [sent], (r.request.url, r.status_code)


@pytest.mark.parametrize("sent", [*INSANE, None])
def test_otherwise_a_new_id_is_made(served, sent) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    headers = {} if sent is None else {"X-Request-ID": sent}
    answered = [r.headers.get_list("x-request-id") for r in _requests(client, headers)]
    assert all(len(ids) == 1 and GENERATED.fullmatch(ids[0]) for ids in answered), answered
    assert len({ids[0] for ids in answered}) == len(answered)  # one per request


def test_a_body_too_large_and_a_missing_key_carry_it_too(database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with app_client(database_url, tmp_path, api_keys="k1", max_body_bytes=1024) as client:
        big = b"{" + b" " * 2048 + b"}"
        key = {"Authorization": "Bearer k1", "X-Request-ID": "big-1"}
        for path in ("/v1/models/churn/predict", "/v1/models/churn/feedback"):
            r = client.post(path, content=big, headers=key)
            assert r.status_code == 413 and r.headers["x-request-id"] == "big-1"
        r = client.get("/v1/models", headers={"X-Request-ID": "nokey-1"})
        assert r.status_code == 401 and r.headers["x-request-id"] == "nokey-1"


def test_the_header_is_read_as_sent() -> None:
    assert request_id([(b"x-request-id", b"abc")]) == b"abc"
    assert GENERATED.fullmatch(request_id([(b"x-request-id", b"a b")]).decode())
    assert GENERATED.fullmatch(request_id([]).decode())
    first = [(b"x-request-id", b"one"), (b"x-request-id", b"two")]
    assert request_id(first) == b"one"  # the first, as every other header is read


def _access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "api.access"]


def test_one_line_per_request_with_its_id(served, caplog) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    rows = features_only(churn_rows(1, seed=3))
    with caplog.at_level(logging.INFO, logger="api.access"):
        caplog.clear()
        client.get("/v1/models/churn", headers={"X-Request-ID": "get-1"})
        client.post("/v1/models/churn/predict", json={"instances": rows})  # a success: quiet
        bad = client.post("/v1/models/churn/predict", json={"instances": [{}]})
        client.get("/v1/admin/jobs", headers=ADMIN)
    lines = _access(caplog)
    assert [(r.method, r.route, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("GET", "/v1/models/{name}", 200),
        ("POST", "/v1/models/{name}/predict", 422),
        ("GET", "/v1/admin/jobs", 200),
    ]
    assert lines[0].request_id == "get-1"  # type: ignore[attr-defined]
    assert lines[1].request_id == bad.headers["x-request-id"]  # type: ignore[attr-defined]
    for r in lines:
        assert r.levelno == logging.INFO and r.duration_ms >= 0  # type: ignore[attr-defined]
        assert r.getMessage().startswith(f"{r.method} {r.route} {r.status} ")  # type: ignore[attr-defined]


def test_served_predictions_are_logged_when_asked_for(db, database_url, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    with (
        app_client(database_url, tmp_path, log_serving_requests=True) as client,
        caplog.at_level(logging.INFO, logger="api.access"),
    ):
        caplog.clear()
        client.post("/v1/models/nope/predict", json={"instances": []})
        client.post("/v2/models/nope/infer", json={"inputs": []})
    assert [r.route for r in _access(caplog)] == [  # type: ignore[attr-defined]
        "/v1/models/{name}/predict",
        "/v2/models/{name}/infer",
    ]


def test_every_line_logged_during_a_request_names_it() -> None:
    record = logging.LogRecord("api.platform", logging.WARNING, "", 0, "m", None, None)
    assert WithRequestId().filter(record) and not hasattr(record, "request_id")

    def during() -> logging.LogRecord:
        REQUEST_ID.set(b"req-9")
        inner = logging.LogRecord("api.platform", logging.WARNING, "", 0, "m", None, None)
        WithRequestId().filter(inner)
        return inner

    assert copy_context().run(during).request_id == "req-9"  # type: ignore[attr-defined]
    named = logging.LogRecord("api.access", logging.INFO, "", 0, "m", None, None)
    named.request_id = "mine"
    WithRequestId().filter(named)
    assert named.request_id == "mine"
