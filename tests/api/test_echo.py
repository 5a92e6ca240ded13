"""An error answer quotes at most a short prefix of an offending input value, whatever route
and whichever protocol refused it: a request carrying a value of megabytes gets an answer of
a few hundred bytes back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from registry.errors import ECHO_CHARS
from tests.api.conftest import ADMIN
from tests.factories import churn_rows, churn_spec, features_only

HUGE = 2_000_000  # characters of the offending value
SMALL = 4096  # bytes: the most an answer to it may take


def _bounded(r: httpx.Response, status: int, value: str) -> Any:
    """The answer has the status, is small, and quotes the value's prefix and an ellipsis."""
    assert r.status_code == status, r.text[:500]
    assert len(r.content) < SMALL, (len(r.content), r.text[:500])
    assert value[:ECHO_CHARS] + "…" in r.text or repr(value[:ECHO_CHARS]) + "…" in r.text, r.text
    return r.json()


def _value(char: str = "a") -> str:
    return "q" + char * HUGE


def test_v1_refusals_quote_a_prefix(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    pid = _value()
    r = client.post(
        "/v1/models/churn/feedback", json={"labels": [{"prediction_id": pid, "label": "yes"}]}
    )
    problem = _bounded(r, 422, pid)["detail"][0]
    assert (
        problem["field"] == "labels[0].prediction_id" and "unknown prediction id" in problem["msg"]
    )

    label = _value("b")
    row = features_only(churn_rows(1, seed=3))[0]
    r = client.post(
        "/v1/models/churn/feedback", json={"labels": [{"features": row, "label": label}]}
    )
    assert "unknown class" in _bounded(r, 422, label)["detail"][0]["msg"]

    name = _value("c")
    r = client.post("/v1/models/churn/predict", json={"instances": [{**row, name: 1}]})
    problem = _bounded(r, 422, name)["detail"][0]
    assert problem["msg"] == "unknown feature" and problem["row"] == 0

    name = _value("d")[:20_000]  # in a URL: httpx sends at most 64 kB of one
    _bounded(client.get(f"/v1/models/{name}"), 404, name)
    _bounded(client.post(f"/v1/models/{name}/predict", json={"instances": [row]}), 404, name)
    _bounded(client.get(f"/v1/admin/jobs/{name}", headers=ADMIN), 404, name)

    spec = churn_spec("fresh").model_dump(mode="json")
    key = _value("e")
    r = client.post("/v1/admin/models", json={**spec, key: 1}, headers=ADMIN)
    assert _bounded(r, 422, key)["detail"][0]["type"] == "extra_forbidden"
    word = _value("f")  # a name the spec bounds: refused for its length, not quoted
    retrain = spec["retrain"]
    for body in (
        {**spec, "metric": word},
        {**spec, "retrain": {**retrain, "families": [word]}},
        {**spec, "retrain": {**retrain, "fixed_params": {word: 1}}},
    ):
        r = client.post("/v1/admin/models", json=body, headers=ADMIN)
        assert r.status_code == 422 and len(r.content) < SMALL, r.text[:500]
        assert "at most 64 characters" in r.text and "f" * (ECHO_CHARS + 1) not in r.text


def test_v2_refusals_quote_a_prefix(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    url = "/v2/models/churn/infer"
    name = _value()
    tensor = {"name": name, "datatype": "FP32", "shape": [1, 1], "data": [1]}
    _bounded(client.post(url, json={"inputs": [tensor]}), 400, name)
    _bounded(client.post(url, json={"inputs": [{**tensor, "datatype": name}]}), 400, name)
    data = _value("g")
    x1 = {"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [data]}
    _bounded(client.post(url, json={"inputs": [x1]}), 400, data)
    version = _value("h")[:20_000]
    _bounded(client.get(f"/v2/models/churn/versions/{version}"), 404, version)


@pytest.mark.parametrize("name", ["a[b", "a]b", "a.b[7"])
def test_a_feature_name_with_brackets_is_named(served, name: str) -> None:  # type: ignore[no-untyped-def]
    """A name of the request's that looks like a path is still a 422 naming it."""
    client, _ = served
    row = features_only(churn_rows(1, seed=3))[0]
    r = client.post("/v1/models/churn/predict", json={"instances": [{**row, name: 1}]})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == f"instances[0].{name}"
