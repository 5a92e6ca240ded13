"""Model files in and out through the real app: a version's ONNX graph downloaded as the
registry stores it, and versions trained elsewhere (ONNX or skops) imported, checked against
the spec, judged on the newest hold-out and promoted only by the promotion rules."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import numpy as np
import onnx
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sqlalchemy import func, select, update

from registry import catalog, events
from registry.db import Database
from registry.models import Artifact, ModelVersion
from tests.api.conftest import ADMIN, app_client, train_version
from tests.factories import churn_rows, churn_spec, features_only
from tuning import persist
from tuning.data import frame, target
from tuning.export import OnnxModel, to_onnx
from tuning.pipeline import build_pipeline
from tuning.spec import ModelSpec

KEY = {"Authorization": "Bearer k1"}


def _fit(spec: ModelSpec, *, seed: int, flipped: bool) -> Pipeline:
    """tuning's own logistic pipeline on the factories' churn rows."""
    rows = churn_rows(300, seed=seed, flipped=flipped)
    pipe = build_pipeline(spec, {"family": "logistic"}, random_state=0)
    return pipe.fit(frame(spec, rows), target(spec, [r["churned"] for r in rows]))


def _import(
    client: TestClient, name: str, data: bytes, filename: str = "model.bin", **params: Any
) -> Any:
    return client.post(
        f"/v1/admin/models/{name}/versions",
        files={"file": (filename, data, "application/octet-stream")},
        params=params,
        headers=ADMIN,
    )


def _stored(db: Database) -> tuple[int, int, int]:
    """Versions, artifacts and audit entries in the registry."""
    with db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(ModelVersion)) or 0,
            s.scalar(select(func.count()).select_from(Artifact)) or 0,
            len(events.list_events(s)),
        )


def _rename_input(graph: bytes, old: str, new: str) -> bytes:
    model = onnx.load_from_string(graph)
    for value in model.graph.input:
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    return model.SerializeToString()


def _double_input(graph: bytes, name: str) -> bytes:
    """The graph with the numeric input `name` taken as float64 (and cast inside)."""
    model = onnx.load_from_string(graph)
    for node in model.graph.node:
        for i, used in enumerate(node.input):
            if used == name:
                node.input[i] = f"{name}_as_float"
    for value in model.graph.input:
        if value.name == name:
            value.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    cast = onnx.helper.make_node("Cast", [name], [f"{name}_as_float"], to=onnx.TensorProto.FLOAT)
    model.graph.node.insert(0, cast)
    return model.SerializeToString()


def test_a_download_is_the_registrys_bytes_and_sha256(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    r = client.get("/v1/models/churn/versions/1/onnx")
    assert r.status_code == 200, r.text
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        v1 = catalog.get_version(s, model, 1)
        stored = catalog.get_artifact(s, v1.onnx_sha256)
    assert r.content == stored
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-content-sha256"] == v1.onnx_sha256 == hashlib.sha256(r.content).hexdigest()
    digest = base64.b64encode(hashlib.sha256(r.content).digest()).decode()
    assert r.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert r.headers["content-disposition"] == 'attachment; filename="churn-v1.onnx"'
    assert r.headers["x-content-type-options"] == "nosniff"
    for url, message in (
        ("/v1/models/churn/versions/9/onnx", "has no version 9"),
        ("/v1/models/churn/versions/x/onnx", "has no version 'x'"),
        ("/v1/models/churn/versions/-1/onnx", "has no version '-1'"),
        ("/v1/models/nope/versions/1/onnx", "model 'nope' not found"),
    ):
        r = client.get(url)
        assert r.status_code == 404 and message in r.json()["detail"], (url, r.text)


def test_a_corrupt_artifact_is_never_sent(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    version = train_version(db, "churn", seed=4)
    with db.session() as s:
        row = catalog.get_version(s, catalog.get_model(s, "churn"), version)
        digest = row.onnx_sha256
        s.execute(update(Artifact).where(Artifact.sha256 == digest).values(data=b"tampered"))
    r = client.get(f"/v1/models/churn/versions/{version}/onnx")
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert f"model 'churn' v{version}: its ONNX artifact {digest} is corrupt" in detail
    assert client.get("/v1/models/churn/versions/1/onnx").status_code == 200  # the others are


def test_an_exported_version_imports_as_a_new_identical_version(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    graph = client.get("/v1/models/churn/versions/1/onnx").content
    r = _import(client, "churn", graph, "churn-v1.onnx", promote="false")
    assert r.status_code == 201, r.text
    out = r.json()
    version = out["version"]
    assert (version["version"], version["kind"], version["stage"]) == (2, "imported", "challenger")
    assert out["decision"] == "registered" and out["champion_version"] == 1
    assert "promote=false" in out["reason"] and "not promoted: accuracy" in out["reason"]
    assert version["onnx_sha256"] == hashlib.sha256(graph).hexdigest()  # stored as it came
    assert version["metrics"]["reference"] == "champion" and version["metrics"]["holdout_rows"]
    assert version["data_window"]["trained_elsewhere"] and version["data_window"]["holdout"]
    lineage = out["lineage"]
    assert version["params"]["imported"] == lineage
    assert lineage["format"] == "onnx" and lineage["filename"] == "churn-v1.onnx"
    assert lineage["sha256"] == hashlib.sha256(graph).hexdigest()
    assert (lineage["actor"], lineage["size"], lineage["parity"]) == ("admin", len(graph), None)
    assert (lineage["decision"], lineage["promote_requested"]) == ("registered", False)
    rows = churn_rows(200, seed=8)
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        spec = catalog.spec_of(model)
        v1, v2 = (catalog.get_version(s, model, v) for v in (1, 2))
        a = OnnxModel(catalog.get_artifact(s, v1.onnx_sha256), spec).predict(frame(spec, rows))
        b = OnnxModel(catalog.get_artifact(s, v2.onnx_sha256), spec).predict(frame(spec, rows))
        (entry, *_) = events.list_events(s, "churn")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.proba, b.proba)
    assert (entry["kind"], entry["version"], entry["actor"]) == ("version_imported", 2, "admin")
    assert entry["detail"]["sha256"] == lineage["sha256"]
    # a raw body, named in the query, as curl --data-binary sends it
    r = client.post(
        "/v1/admin/models/churn/versions",
        content=graph,
        params={"filename": "../x/again.onnx", "promote": "false"},
        headers={**ADMIN, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["lineage"]["filename"] == "again.onnx"


def test_an_onnx_graph_that_breaks_the_contract_is_refused_by_name(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    graph = client.get("/v1/models/churn/versions/1/onnx").content
    before = _stored(db)
    for bad, said in (
        (
            _rename_input(graph, "color", "colour"),
            [
                "no input for the feature(s) ['color']",
                "input(s) ['colour'] are not features of the model",
            ],
        ),
        (
            _double_input(graph, "x1"),
            ["input 'x1' is tensor(double); the numeric feature needs tensor(float)"],
        ),
        (b"not a model at all", ["neither a skops file"]),
    ):
        r = _import(client, "churn", bad)
        assert r.status_code == 422, r.text
        problems = r.json()["detail"]
        assert {p["field"] for p in problems} == {"file"}
        messages = [p["msg"] for p in problems]
        for expected in said:
            assert any(expected in m for m in messages), (expected, messages)
    r = client.post("/v1/admin/models/churn/versions", content=b"", headers=ADMIN)
    assert r.status_code == 422 and "no file" in r.json()["detail"][0]["msg"]
    r = client.post("/v1/admin/models/churn/versions", files={"other": ("a", b"b")}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "file"
    assert _stored(db) == before


def test_a_regression_graph_is_not_a_classifier(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    spec = churn_spec(task="regression", metric="rmse", retrain={"families": ["ridge"]})
    rows = churn_rows(100, seed=3)
    pipe = build_pipeline(spec, {"family": "ridge"}, random_state=0)
    pipe.fit(frame(spec, rows), np.arange(100, dtype=np.float64))
    before = _stored(db)
    for data, said in (
        (to_onnx(pipe, spec), "outputs are ['variable']; a classification model has exactly"),
        (persist.dumps(pipe), "its last step (Ridge) is not a fitted classifier"),
    ):
        r = _import(client, "churn", data)
        assert r.status_code == 422
        messages = " ".join(p["msg"] for p in r.json()["detail"])
        assert said in messages, messages
    assert _stored(db) == before


def _double(x: np.ndarray) -> np.ndarray:
    return 2 * x


def test_a_skops_file_with_an_untrusted_type_is_refused_and_nothing_is_stored(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    spec = churn_spec()
    trusted = _fit(spec, seed=2, flipped=False)
    pipe = Pipeline([("f", FunctionTransformer(_double)), ("m", LogisticRegression())])
    pipe.fit(np.abs(np.random.default_rng(0).normal(size=(20, 2))), ["no", "yes"] * 10)
    before = _stored(db)
    r = _import(client, "churn", sio.dumps(pipe), "evil.skops")
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert "untrusted types" in problem["msg"] and "_double" in problem["msg"]
    r = _import(client, "churn", sio.dumps(trusted.steps[-1][1]), "bare.skops")  # no Pipeline
    assert r.status_code == 422 and "Pipeline" in r.json()["detail"][0]["msg"]
    assert _stored(db) == before


def test_a_better_model_is_promoted_and_a_worse_one_is_not(served) -> None:  # type: ignore[no-untyped-def]
    """The labelled rows follow a flipped concept that the champion does not know: a pipeline
    fit on that concept wins, one fit on the old concept loses, by the spec's rules."""
    client, db = served
    spec = churn_spec("drift")
    r = client.post("/v1/admin/models", json=spec.model_dump(mode="json"), headers=ADMIN)
    assert r.status_code == 201
    rows = churn_rows(300, seed=11, flipped=True)
    r = client.post("/v1/admin/models/drift/data", json={"rows": rows}, headers=ADMIN)
    assert r.status_code == 202
    v1 = train_version(db, "drift", seed=1)
    r = client.post("/v1/admin/models/drift/promote", json={"version": v1}, headers=ADMIN)
    assert r.status_code == 200
    better = persist.dumps(_fit(spec, seed=5, flipped=True))
    worse = to_onnx(_fit(spec, seed=7, flipped=False), spec)

    r = _import(client, "drift", better, "better.skops", promote="false")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["decision"], out["champion_version"]) == ("registered", 1)
    assert "the rules said: promoted: accuracy" in out["reason"]
    lineage = out["lineage"]
    assert lineage["format"] == "skops" and lineage["parity"]["ok"]
    assert out["version"]["params"]["family"] == "LogisticRegression"

    r = _import(client, "drift", better, "better.skops")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["decision"] == "promoted" and out["version"]["stage"] == "champion"
    assert out["champion_version"] == out["version"]["version"] == 3
    assert out["reason"].startswith("imported skops file 'better.skops'; promoted: accuracy")
    gain = out["version"]["metrics"]
    assert gain["challenger"] > gain["champion"] + spec.promotion.min_delta
    with db.session() as s:
        model = catalog.get_model(s, "drift")
        v3 = catalog.get_version(s, model, 3)
        assert v3.pipeline_sha256 is not None  # the pipeline is kept, for warm starts
        kinds = [(e["kind"], e["version"], e["actor"]) for e in events.list_events(s, "drift")]
    assert kinds[:2] == [("promoted", 3, "admin"), ("version_imported", 3, "admin")]
    assert client.get("/v1/models/drift").json()["champion"]["version"] == 3
    instances = features_only(churn_rows(2, seed=12))
    deadline = time.monotonic() + 10
    while (
        client.post("/v1/models/drift/predict", json={"instances": instances}).json().get("version")
        != 3
    ):  # served without a restart
        assert time.monotonic() < deadline, "the imported champion is not served"
        time.sleep(0.05)

    r = _import(client, "drift", worse, "worse.onnx")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["decision"] == "rejected" and out["version"]["stage"] == "rejected"
    assert out["champion_version"] == 3 and "not promoted: accuracy" in out["reason"]

    # what was only registered is promoted by the admin, audited as every promotion is
    r = client.post("/v1/admin/models/drift/promote", json={"version": 2}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["previous_version"] == 3
    with db.session() as s:
        (entry, *_) = events.list_events(s, "drift")
    assert (entry["kind"], entry["version"], entry["reason"]) == ("promoted", 2, "manual promotion")


def test_a_model_without_labelled_rows_registers_what_it_cannot_judge(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    spec = churn_spec("empty")
    r = client.post("/v1/admin/models", json=spec.model_dump(mode="json"), headers=ADMIN)
    assert r.status_code == 201
    graph = client.get("/v1/models/churn/versions/1/onnx").content
    r = _import(client, "empty", graph, "churn-v1.onnx")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["decision"], out["champion_version"]) == ("registered", None)
    assert "not judged" in out["reason"] and out["version"]["classes"] == ["no", "yes"]
    assert out["version"]["data_window"]["holdout"] is None
    r = _import(client, "nope", graph)
    assert r.status_code == 404


def test_access_to_model_files(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    graph = client.get("/v1/models/churn/versions/1/onnx").content
    with app_client(database_url, tmp_path, api_keys="k1") as keyed:
        url = "/v1/models/churn/versions/1/onnx"
        r = keyed.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert keyed.get(url, headers=KEY).content == graph
        assert keyed.get(url, headers=ADMIN).content == graph
        files = {"file": ("m.onnx", graph)}
        for headers in ({}, KEY):
            r = keyed.post("/v1/admin/models/churn/versions", files=files, headers=headers)
            assert r.status_code == 401, r.text
    r = client.post("/v1/admin/models/churn/versions", files={"file": ("m.onnx", graph)})
    assert r.status_code == 401  # no keys set: the admin routes still take the admin token


def test_the_body_limit_bounds_a_file(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    graph = client.get("/v1/models/churn/versions/1/onnx").content
    before = _stored(db)
    with app_client(database_url, tmp_path, max_body_bytes=len(graph) - 1) as small:
        r = small.post(
            "/v1/admin/models/churn/versions", files={"file": ("m", graph)}, headers=ADMIN
        )
        assert r.status_code == 413, r.text
        r = small.post("/v1/admin/models/churn/versions", content=graph, headers=ADMIN)
        assert r.status_code == 413, r.text
    assert _stored(db) == before
