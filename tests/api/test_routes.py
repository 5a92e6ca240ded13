"""The HTTP contract: validation names row and field, auth, CSV upload, limits, hot swap."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from registry import catalog, labelled
from registry.catalog import NewVersion
from registry.db import Database
from registry.models import Artifact
from tests.api.conftest import ADMIN, app_client, train_version
from tests.factories import churn_rows, churn_spec, features_only


def _predict(client: TestClient, instances: list) -> dict:
    r = client.post("/v1/models/churn/predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    return r.json()


def test_predict_gives_ids_version_and_probabilities(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    out = _predict(client, features_only(churn_rows(3, seed=4)))
    assert out["model"] == "churn" and out["version"] == 1
    preds = out["predictions"]
    assert len({p["id"] for p in preds}) == 3
    for p in preds:
        assert set(p["probabilities"]) == {"no", "yes"}
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-5
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)


def test_bad_instances_are_422_naming_row_and_field(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    rows = features_only(churn_rows(3, seed=4))
    rows[0]["x1"] = "tall"
    del rows[1]["color"]
    rows[2]["height"] = 3
    r = client.post("/v1/models/churn/predict", json={"instances": rows})
    assert r.status_code == 422
    found = {(d["row"], d["field"], d["msg"]) for d in r.json()["detail"]}
    assert found == {
        (0, "instances[0].x1", "must be a finite number or null"),
        (1, "instances[1].color", "missing feature"),
        (2, "instances[2].height", "unknown feature"),
    }
    for body, field in (({"rows": []}, "instances"), ([1, 2], None)):
        r = client.post("/v1/models/churn/predict", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field
    r = client.post("/v1/models/churn/predict", content=b"{not json")
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"][0]["msg"]


def test_missing_values_are_served(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    out = _predict(client, [{"x1": None, "x2": None, "x3": None, "x4": None, "color": None}])
    assert out["predictions"][0]["label"] in ("no", "yes")


def test_batch_limit_and_unknown_model(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    big = features_only(churn_rows(51, seed=4))
    r = client.post("/v1/models/churn/predict", json={"instances": big})
    assert r.status_code == 413 and "limit of 50" in r.json()["detail"]
    r = client.post("/v1/models/nope/predict", json={"instances": big[:1]})
    assert r.status_code == 404


def test_feedback_all_or_nothing_and_never_twice(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    instances = features_only(churn_rows(18, seed=5))[-2:]  # the last one has x3 = None
    ids = [p["id"] for p in _predict(client, instances)["predictions"]]
    bad = {
        "labels": [
            {"prediction_id": ids[0], "label": "yes"},
            {"prediction_id": "f" * 32, "label": "yes"},
            {"prediction_id": ids[1], "label": "perhaps"},
        ]
    }
    r = client.post("/v1/models/churn/feedback", json=bad)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["detail"]] == [
        "labels[1].prediction_id",
        "labels[2].label",
    ]
    with db.session() as s:
        model_id = catalog.get_model(s, "churn").id
        assert labelled.rows_after(s, model_id, None) == 100
    good = {
        "labels": [
            {"prediction_id": ids[0], "label": "yes"},
            {"prediction_id": ids[1], "label": "no"},
        ]
    }
    for _ in range(2):
        r = client.post("/v1/models/churn/feedback", json=good)
        assert r.status_code == 202 and r.json() == {"accepted": 2}
    with db.session() as s:
        assert labelled.rows_after(s, model_id, None) == 102
        _, rows, labels = labelled.training_rows(s, model_id)
    # the features as the model saw them: numbers as 32-bit floats, missing ones as None
    assert rows[-2:] == [_as_float32(r) for r in instances] and labels[-2:] == ["yes", "no"]


def _as_float32(row: dict) -> dict:
    return {k: float(str(np.float32(v))) if isinstance(v, float) else v for k, v in row.items()}


def test_admin_routes_need_the_token(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        r = client.post("/v1/admin/models/churn/rollback", headers=headers)
        assert r.status_code == 401
    assert client.get("/v1/admin/events", headers=ADMIN).status_code == 200


def test_model_spec_errors_name_the_field(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    body = {
        "name": "m",
        "task": "classification",
        "target": "y",
        "features": [{"name": "a", "type": "text"}],
    }
    r = client.post("/v1/admin/models", json=body, headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "features", 0, "type"]


def test_csv_upload_is_typed_by_the_spec(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    csv = "x1,x2,x3,x4,color,churned\n1.5,2,,0.1,red,yes\n-1,0.5,3,2,blue,no\n"
    r = client.post(
        "/v1/admin/models/churn/data", content=csv, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    r = client.post(
        "/v1/admin/models/churn/data",
        headers=ADMIN,
        files={"file": ("rows.csv", "x1,x2,x3,x4,color,churned\nabc,1,1,1,red,no\n")},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "rows[0].x1"
    huge = "x1,x2,x3,x4,color,churned\n1,1,1,1," + "r" * 200_000 + ",no\n"
    r = client.post(
        "/v1/admin/models/churn/data", content=huge, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "file"
    assert "CSV line 2: field larger than field limit" in r.json()["detail"][0]["msg"]
    with db.session() as s:
        _, rows, labels = labelled.training_rows(s, catalog.get_model(s, "churn").id)
    assert len(rows) == 100 + 2  # the seeded rows and the good upload; nothing of the 422s
    assert rows[-2]["x3"] is None and rows[-2]["x1"] == 1.5 and labels[-2:] == ["yes", "no"]


def test_promotion_elsewhere_is_picked_up_without_restart(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    v2 = train_version(db, "churn", seed=2, flipped=True)
    with db.session() as s:  # as another process would: straight in the database
        model = catalog.get_model(s, "churn", lock=True)
        catalog.promote(s, model, catalog.get_version(s, model, v2), actor="other", reason="t")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _predict(client, features_only(churn_rows(1, seed=3)))["version"] == v2:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the new champion was not picked up")
    r = client.post("/v1/admin/models/churn/rollback", headers=ADMIN)
    assert r.status_code == 200 and r.json()["champion_version"] == 1


def test_health_and_metrics(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == {"churn": 1}
    _predict(client, features_only(churn_rows(1, seed=3)))
    text = client.get("/metrics").text
    assert 'loopserve_served_version{model="churn"} 1.0' in text
    assert 'route="/v1/models/{name}/predict"' in text


def test_api_keys_guard_predict_infer_and_feedback(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One check for every client route: a 401 with the Bearer challenge in the protocol's
    shape; a key or the admin token opens them, a key does not open the admin routes."""
    body = {"instances": features_only(churn_rows(1, seed=3))}
    v2 = {"inputs": [{"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}
    labels = {"labels": [{"features": body["instances"][0], "label": "yes"}]}
    with app_client(database_url, tmp_path, api_keys="k1, k2") as client:
        for headers in ({}, {"Authorization": "Bearer k3"}, {"Authorization": "Basic k1"}):
            r = client.post("/v1/models/churn/predict", json=body, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"detail": "API key required: Authorization: Bearer <key>"}
            r = client.post("/v2/models/churn/infer", json=v2, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"error": "API key required: Authorization: Bearer <key>"}
            r = client.post("/v1/models/churn/feedback", json=labels, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"detail": "API key required: Authorization: Bearer <key>"}
        for headers in ({"Authorization": "Bearer k2"}, ADMIN):
            r = client.post("/v1/models/churn/predict", json=body, headers=headers)
            assert r.status_code == 200, r.text
            r = client.post("/v1/models/churn/feedback", json=labels, headers=headers)
            assert r.status_code == 202, r.text
        r = client.post("/v1/admin/models/churn/rollback", headers={"Authorization": "Bearer k1"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "admin token required" in r.json()["detail"]


def test_refusals_are_in_each_protocols_shape(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    bad = [{**features_only(churn_rows(1, seed=8))[0], "x1": "tall"}]
    r = client.post("/v1/models/churn/predict", json={"instances": bad})
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "loc": ["body", "instances", 0, "x1"],
                "msg": "must be a finite number or null",
                "row": 0,
                "field": "instances[0].x1",
            }
        ]
    }
    r = client.post("/v2/models/churn/infer", json={"inputs": []})
    assert r.status_code == 400 and r.json() == {"error": "the request has no inputs"}
    r = client.get("/v1/models/churn/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "detail" in r.json()
    r = client.get("/v2/models/churn/versions/1/infer")
    assert r.status_code == 405 and "error" in r.json()
    r = client.get("/v2/models/churn/versions/x")
    assert r.status_code == 404 and r.json() == {"error": "version 'x' is not a version number"}
    r = client.post("/v1/models/churn/feedback", json={"labels": [{"label": None}]})
    assert r.status_code == 422
    assert {(d["field"], d["row"]) for d in r.json()["detail"]} == {("labels[0].label", 0)}


def test_a_model_name_miss_never_queries_the_database(served) -> None:  # type: ignore[no-untyped-def]
    """Unknown names are 404 and names without a champion 503, both answered from what the
    cache learnt at its last poll: no statement runs on behalf of the request."""
    client, _ = served
    r = client.post(
        "/v1/admin/models", json=churn_spec("fresh").model_dump(mode="json"), headers=ADMIN
    )
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 10  # creating it woke the poll, which learns the name
    while client.get("/v2/models/fresh/ready").status_code == 404:
        assert time.monotonic() < deadline, "the new model's name was not learnt"
        time.sleep(0.02)
    engine = client.app.state.platform.db.engine
    background = {"champion-poller", "prediction-log"}
    seen: list[str] = []

    def record(*_args: object) -> None:
        if threading.current_thread().name not in background:
            seen.append(threading.current_thread().name)

    rows = {"instances": features_only(churn_rows(1, seed=3))}
    tensors = {"inputs": [{"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            r = client.post("/v1/models/nope/predict", json=rows)
            assert r.status_code == 404 and r.json() == {"detail": "model 'nope' not found"}
            r = client.post("/v2/models/nope/infer", json=tensors)
            assert r.status_code == 404 and r.json() == {"error": "model 'nope' not found"}
            assert client.get("/v2/models/nope").status_code == 404
            r = client.post("/v1/models/fresh/predict", json=rows)
            assert r.status_code == 503, r.text
            assert "no champion loaded yet" in r.json()["detail"]
            assert "/v1/admin/models/fresh/retrain" in r.json()["detail"]
            r = client.post("/v2/models/fresh/infer", json=tensors)
            assert r.status_code == 503 and "no champion loaded yet" in r.json()["error"]
            assert client.get("/v2/models/fresh/ready").status_code == 503
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == []


def _broken_version(db: Database, name: str, how: str) -> int:
    """A challenger of `name` whose ONNX artifact cannot be served: its stored bytes truncated
    (they no longer hash to their name), or bytes that hash right but are no ONNX graph."""
    if how == "truncated":
        version = train_version(db, name, seed=7)
        with db.session() as s:
            row = catalog.get_version(s, catalog.get_model(s, name), version)
            artifact = s.get(Artifact, row.onnx_sha256)
            artifact.data = bytes(artifact.data)[: artifact.size // 2]
        return version
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        new = NewVersion("refit", b"not an ONNX graph", None, {}, {}, {}, None, None, "t", None)
        return catalog.register_version(s, model, new, stage="challenger").version


def _failures(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and words in r.getMessage()
    ]


@pytest.mark.parametrize("how", ["truncated", "not onnx"])
def test_a_champion_whose_artifact_will_not_load_is_a_503_that_says_so(served, caplog, how) -> None:  # type: ignore[no-untyped-def]
    """Predict and infer name the model, the version, the artifact and the way out; /readyz
    stays ready for the others and names the model; the log says it once, not at every poll."""
    client, db = served
    with db.session() as s:
        catalog.create_model(s, churn_spec("broken"), actor="test")
    version = _broken_version(db, "broken", how)
    r = client.post("/v1/admin/models/broken/promote", json={"version": version}, headers=ADMIN)
    assert r.status_code == 200, r.text
    rows = {"instances": features_only(churn_rows(1, seed=3))}
    deadline = time.monotonic() + 10
    while True:  # a poll may first learn the name alone, then the champion that fails
        r = client.post("/v1/models/broken/predict", json=rows)
        if "failed to load" in r.text:
            break
        assert r.status_code in (404, 503), r.text
        assert time.monotonic() < deadline, "the failed load is not reported"
        time.sleep(0.02)
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail.startswith(
        f"model broken: the ONNX artifact of its champion v{version} failed to load"
    ), detail
    for way_out in (
        "promote",
        "/v1/admin/models/broken/rollback",
        "/v1/admin/models/broken/retrain",
    ):
        assert way_out in detail
    tensors = {"inputs": [{"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}
    r = client.post("/v2/models/broken/infer", json=tensors)
    assert r.status_code == 503 and r.json() == {"error": detail}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert ready.json()["models"] == {"churn": 1}
    assert f"champion v{version}" in ready.json()["not_ready"]["broken"]
    assert "serving no version" in ready.json()["not_ready"]["broken"]
    assert _predict(client, rows["instances"])["version"] == 1  # the others are served on
    time.sleep(0.6)  # six polls more
    (logged,) = _failures(caplog, "broken")
    assert f"broken v{version}" in logged and "serving no version" in logged


@pytest.mark.parametrize("how", ["truncated", "not onnx"])
def test_a_new_champion_that_will_not_load_leaves_the_old_one_served_and_says_so(
    served, caplog, how
) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    version = _broken_version(db, "churn", how)
    r = client.post("/v1/admin/models/churn/promote", json={"version": version}, headers=ADMIN)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while "churn" not in client.get("/readyz").json().get("not_ready", {}):
        assert time.monotonic() < deadline, "the failed load is not reported"
        time.sleep(0.02)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == {"churn": 1}
    problem = ready.json()["not_ready"]["churn"]
    assert f"champion v{version}" in problem and "still serving v1" in problem, problem
    assert _predict(client, features_only(churn_rows(1, seed=3)))["version"] == 1
    assert client.get("/v2/models/churn/ready").status_code == 200
    assert client.get(f"/v2/models/churn/versions/{version}/ready").status_code == 503
    time.sleep(0.6)
    (logged,) = _failures(caplog, f"churn v{version}")
    assert "still serving v1" in logged
    r = client.post("/v1/admin/models/churn/rollback", headers=ADMIN)
    assert r.status_code == 200 and r.json()["champion_version"] == 1
    deadline = time.monotonic() + 10
    while "churn" in client.get("/readyz").json().get("not_ready", {}):
        assert time.monotonic() < deadline, "the failure outlived its champion"
        time.sleep(0.02)


def test_promoting_a_version_with_the_served_bytes_serves_its_number(served) -> None:  # type: ignore[no-untyped-def]
    """Identical ONNX bytes under a new version number: every answer gives the new number."""
    client, db = served
    with db.session() as s:
        model = catalog.get_model(s, "churn", lock=True)
        v1 = catalog.get_version(s, model, 1)
        onnx = catalog.get_artifact(s, v1.onnx_sha256)
        new = NewVersion("refit", onnx, None, {}, {}, {}, v1.classes, None, "same graph", None)
        number = catalog.register_version(s, model, new, stage="challenger").version
    r = client.post("/v1/admin/models/churn/promote", json={"version": number}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["champion_version"] == number
    instances = features_only(churn_rows(2, seed=3))
    deadline = time.monotonic() + 10
    while _predict(client, instances)["version"] != number:
        assert time.monotonic() < deadline, "the promoted version number is not served"
        time.sleep(0.02)
    assert client.get(f"/v2/models/churn/versions/{number}/ready").status_code == 200
    assert client.get("/v2/models/churn/versions/1/ready").status_code == 503
    assert client.get("/v2/models/churn").json()["versions"] == [str(number)]
    tensors = {
        "inputs": [
            {"name": k, "datatype": "BYTES" if k == "color" else "FP64", "shape": [1], "data": [v]}
            for k, v in instances[0].items()
        ]
    }
    r = client.post(f"/v2/models/churn/versions/{number}/infer", json=tensors)
    assert r.status_code == 200 and r.json()["model_version"] == str(number), r.text
    assert client.get("/readyz").json()["models"] == {"churn": number}
    assert client.get("/v1/models/churn").json()["served_version"] == number
    assert f'loopserve_served_version{{model="churn"}} {number}.0' in client.get("/metrics").text


def test_onnx_in_a_thread_or_on_the_loop_answers_alike(served, live) -> None:  # type: ignore[no-untyped-def]
    """`live` sends every ONNX call to the thread pool, `served` runs these on the loop."""
    client, _ = served
    instances = features_only(churn_rows(40, seed=8))
    on_loop = _predict(client, instances)["predictions"]
    r = httpx.post(f"{live}/v1/models/churn/predict", json={"instances": instances})
    assert r.status_code == 200
    in_thread = r.json()["predictions"]
    assert [p["probabilities"] for p in in_thread] == [p["probabilities"] for p in on_loop]
    assert len({p["id"] for p in on_loop + in_thread}) == 80


def test_an_unexpected_error_in_serving_is_a_json_500(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The serving handlers sit in front of FastAPI's error middleware, so they answer a bug
    themselves: a 500 in each protocol's error shape, and the next request is served as usual."""
    client, _ = served
    plane = client.app.state.dataplane
    instances = features_only(churn_rows(1, seed=9))

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(plane, "infer", broken)  # no real input reaches this state
    r = client.post("/v1/models/churn/predict", json={"instances": instances})
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    body = {
        "inputs": [
            {"name": k, "datatype": "BYTES" if k == "color" else "FP64", "shape": [1], "data": [v]}
            for k, v in instances[0].items()
        ]
    }
    r = client.post("/v2/models/churn/infer", json=body)
    assert r.status_code == 500 and r.json() == {"error": "internal error"}
    monkeypatch.undo()
    assert _predict(client, instances)["predictions"]
