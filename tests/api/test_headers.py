"""Every answer carries the security headers and its request id, the serving handlers' and the
refusals in front of FastAPI included; /docs carries a policy that allows exactly what its page
loads, all of it from this server."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
from fastapi.testclient import TestClient

from api.routes.docs import ASSETS, STATIC
from tests.api.conftest import ADMIN, app_client
from tests.factories import churn_rows, features_only

STRICT = "default-src 'none'; frame-ancestors 'none'"


def _secured(r: httpx.Response, csp: str = STRICT) -> None:
    where = (r.request.method, r.request.url.path, r.status_code)
    assert r.headers.get("x-content-type-options") == "nosniff", where
    assert r.headers.get("x-frame-options") == "DENY", where
    assert r.headers.get_list("content-security-policy") == [csp], where
    (request_id,) = r.headers.get_list("x-request-id")  # made here: the tests send none
    assert re.fullmatch(r"[0-9a-f]{16}", request_id), where


def _answers(client: TestClient) -> list[httpx.Response]:
    rows = features_only(churn_rows(2, seed=3))
    tensor = {"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}
    return [
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/metrics"),
        client.get("/openapi.json"),
        client.get("/v1/models"),
        client.get("/v1/models/nope"),
        client.get("/nope"),
        client.get("/v2/models/churn"),
        client.post("/v1/models/churn/predict", json={"instances": rows}),
        client.post("/v1/models/churn/predict", json={"instances": [{}]}),
        client.get("/v1/models/churn/predict"),
        client.post("/v2/models/churn/infer", json={"inputs": [tensor]}),
        client.post("/v1/models/churn/feedback", json={"labels": []}),
        client.get("/v1/admin/events", headers=ADMIN),
        client.get("/v1/admin/events"),
    ]


def test_every_answer_is_secured(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    statuses = set()
    for r in _answers(client):
        _secured(r)
        statuses.add(r.status_code)
    assert statuses == {200, 400, 401, 404, 405, 422}
    big = b"{" + b" " * 2048 + b"}"
    with app_client(database_url, tmp_path, api_keys="k1", max_body_bytes=1024) as keyed:
        for r in _answers(keyed):
            _secured(r)  # all refused: 401 (but the health checks)
        key = {"Authorization": "Bearer k1"}
        for path in ("/v1/models/churn/predict", "/v1/models/churn/feedback"):
            r = keyed.post(path, content=big, headers=key)
            assert r.status_code == 413
            _secured(r)


def _urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


def test_docs_allows_exactly_what_its_page_loads(served) -> None:  # type: ignore[no-untyped-def]
    """The page loads its script, stylesheet and favicon from this server: the policy allows
    'self' and nothing from elsewhere."""
    client, _ = served
    r = client.get("/docs")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    policy = r.headers["content-security-policy"]
    _secured(r, policy)
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert directives["connect-src"] == ["'self'"]  # the schema and "Try it out"
    assert directives["frame-ancestors"] == ["'none'"]
    scripts = re.findall(r'<script src="([^"]+)"', r.text)
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert scripts and len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert directives["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert directives["style-src"] == ["'self'", "'unsafe-inline'"]
    assert directives["img-src"] == ["'self'", "data:"]
    assert "http" not in policy
    assert '"validatorUrl": null' in r.text  # no badge from a third party
    assert client.get("/redoc").status_code == 404


def test_docs_loads_nothing_from_elsewhere(served) -> None:  # type: ignore[no-untyped-def]
    """Every URL the page names is a path on this server, answered with the vendored file
    (api/static/swagger-ui, whose README names each file's hash) and its content type; a
    client that has it is answered 304."""
    client, _ = served
    page = client.get("/docs").text
    assert "http:" not in page and "https:" not in page
    urls = _urls(page)
    assert sorted(urls) == sorted(f"/docs/static/{name}" for name in ASSETS), (
        "the page loads exactly the vendored files"
    )
    vendored = (STATIC / "README.md").read_text()
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        r = client.get(url)
        name = url.rsplit("/", 1)[1]
        assert r.status_code == 200, url
        assert r.headers["content-type"] == ASSETS[name]
        assert r.content == (STATIC / name).read_bytes()
        assert f"| `{name}` | `{hashlib.sha256(r.content).hexdigest()}` |" in vendored
        _secured(r)
        again = client.get(url, headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert client.get("/docs/static/swagger-ui-bundle.js").text.startswith("/*! For license")
    assert client.get("/docs/static/index.html").status_code == 404
    assert client.get("/docs/static/../static/LICENSE").status_code == 404
    for name in ("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        assert (STATIC / name).is_file()  # the licence travels with the files


def test_the_server_sends_no_banner(live) -> None:  # type: ignore[no-untyped-def]
    for path in ("/healthz", "/v1/models/churn/predict"):
        r = httpx.get(f"{live}{path}")
        assert "server" not in r.headers, (path, r.headers)
        _secured(r)
