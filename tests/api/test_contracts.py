"""/openapi.json types every JSON route besides predict, infer and feedback (test_openapi.py
holds those): the admin routes, the model listings, live performance and drift, health, and
the Open Inference Protocol's health and metadata. A real app answers each of them, successes
and failures alike; every answer must be documented for its status and fit the schema published
for it, and every status documented for these routes must be answered here at least once. The
documents the worker and the monitor store come from their real writers (a retrain run, a
monitor pass), and their keys must be the ones their types name."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, get_args

import httpx
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, ValidationError
from sqlalchemy import update

from api.records import MarkKind
from registry import catalog, events, monitoring
from registry.db import Database
from registry.models import Artifact
from registry.notify import ChampionNotifier
from tests.api.conftest import ADMIN, app_client, train_version
from tests.factories import churn_rows, churn_spec, features_only
from worker.monitor import watch
from worker.training import Skipped, claim, run_local

SERVING = {"/v1/models/{name}/predict", "/v1/models/{name}/feedback"}
NONE: frozenset[str] = frozenset()
JSON = "application/json"
CSV = "x1,x2,x3,x4,color,churned\n1.5,2,,0.1,red,yes\n-1,0.5,3,2,blue,no\n"


def _validate(document: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    root = {**schema, "components": document["components"]}  # for "#/components/..." refs
    Draft202012Validator(root).validate(value)


def _component(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


class Contract:
    """Checks answers against the document and remembers which (method, path, status) were
    answered."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response, status: int) -> Any:
        """The answer has this status, is documented for it and fits its schema; its body."""
        assert response.status_code == status, (method, response.url, response.text)
        answers = self.document["paths"][path][method]["responses"]
        assert str(status) in answers, f"{method} {path}: {status} undocumented"
        media = answers[str(status)]["content"]["application/json"]
        body = response.json()
        _validate(self.document, media["schema"], body)
        self.seen.add((method, path, status))
        return body

    def check_file(self, path: str, response: httpx.Response) -> bytes:
        """A 200 carrying a file: its media type and headers are the documented ones."""
        assert response.status_code == 200, (response.url, response.text)
        answer = self.document["paths"][path]["get"]["responses"]["200"]
        (media,) = answer["content"]
        assert response.headers["content-type"] == media
        for name, header in answer["headers"].items():
            _validate(self.document, header["schema"], response.headers[name])
        self.seen.add(("get", path, 200))
        return response.content

    def documented(self) -> set[tuple[str, str, int]]:
        """Every status documented for the routes this file covers."""
        return {
            (method, path, int(status))
            for path, item in self.document["paths"].items()
            if path not in SERVING and not path.endswith("/infer") and path != "/metrics"
            for method, operation in item.items()
            for status in operation["responses"]
        }


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _keys(
    document: dict[str, Any], name: str, value: dict[str, Any], *, absent: frozenset[str] = NONE
) -> None:
    """A stored document has exactly the keys its type names (less those `absent` for now)."""
    named = set(_component(document, name)["properties"])
    assert set(value) == named - absent, (name, set(value) ^ (named - absent))


def test_every_route_answers_as_published(served, database_url, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    document = client.get("/openapi.json").json()
    c = Contract(document)
    _health_and_v2(client, c)
    _create(client, c)
    _upload(client, c)
    _retrain_and_jobs(client, db, c, monkeypatch)
    _models(client, c)
    _promote_and_rollback(client, db, c)
    _performance_and_drift(client, db, c)
    _events(client, c)
    _model_files(client, db, c, database_url, tmp_path)
    _delete(client, c)
    _database_down(database_url, tmp_path, c)
    _front_door(database_url, tmp_path, c)
    assert c.documented() - c.seen == set(), "documented but never answered"
    assert c.seen <= c.documented()


def _health_and_v2(client: TestClient, c: Contract) -> None:
    assert c.check("get", "/healthz", client.get("/healthz"), 200) == {"status": "ok"}
    ready = c.check("get", "/readyz", client.get("/readyz"), 200)
    assert ready == {"status": "ready", "problems": [], "models": {"churn": 1}, "not_ready": {}}
    assert c.check("get", "/v2", client.get("/v2"), 200)["extensions"] == ["binary_tensor_data"]
    assert c.check("get", "/v2/health/live", client.get("/v2/health/live"), 200)["live"]
    assert c.check("get", "/v2/health/ready", client.get("/v2/health/ready"), 200)["ready"]
    meta = "/v2/models/{name}"
    out = c.check("get", meta, client.get("/v2/models/churn"), 200)
    assert out["versions"] == ["1"] and len(out["inputs"]) == 5
    c.check("get", meta, client.get("/v2/models/nope"), 404)
    meta_v = "/v2/models/{name}/versions/{version}"
    c.check("get", meta_v, client.get("/v2/models/churn/versions/1"), 200)
    for bad in ("9", "x"):
        c.check("get", meta_v, client.get(f"/v2/models/churn/versions/{bad}"), 404)
    ready_path, ready_v = "/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready"
    assert c.check("get", ready_path, client.get("/v2/models/churn/ready"), 200)["ready"]
    c.check("get", ready_path, client.get("/v2/models/nope/ready"), 404)
    c.check("get", ready_v, client.get("/v2/models/churn/versions/1/ready"), 200)
    for bad in ("9", "x"):  # not the version served: not ready, as before
        r = client.get(f"/v2/models/churn/versions/{bad}/ready")
        assert c.check("get", ready_v, r, 503) == {"name": "churn", "ready": False}
    for bad in ("1", "x"):  # no such model, whatever the version
        c.check("get", ready_v, client.get(f"/v2/models/nope/versions/{bad}/ready"), 404)


def _create(client: TestClient, c: Contract) -> None:
    path = "/v1/admin/models"
    spec = churn_spec("fresh").model_dump(mode="json")
    out = c.check("post", path, client.post(path, json=spec, headers=ADMIN), 201)
    assert out["spec"] == spec and out["champion"] is None and out["served_version"] is None
    assert out["labelled_rows"] == 0
    c.check("post", path, client.post(path, json=spec, headers=ADMIN), 409)
    bad = {**spec, "features": [{"name": "a", "type": "text"}]}
    problems = c.check("post", path, client.post(path, json=bad, headers=ADMIN), 422)["detail"]
    assert problems[0]["field"] == "features[0].type"
    for bad in (b"{not json", b'{"name": "\xff\xfe"}', b"[" * 100_000):  # nor UTF-8, too deep
        r = client.post(path, content=bad, headers={**ADMIN, "Content-Type": JSON})
        assert "not valid JSON" in c.check("post", path, r, 422)["detail"][0]["msg"]
    c.check("post", path, client.post(path, json=spec), 401)
    # a model without a champion: metadata says why it is not served, ready says no
    _until(lambda: client.get("/v2/models/fresh/ready").status_code != 404, "fresh not learnt")
    c.check("get", "/v2/models/{name}", client.get("/v2/models/fresh"), 503)
    out = c.check("get", "/v2/models/{name}/ready", client.get("/v2/models/fresh/ready"), 503)
    assert out == {"name": "fresh", "ready": False}
    r = client.get("/v2/models/fresh/versions/1")
    c.check("get", "/v2/models/{name}/versions/{version}", r, 503)


def _upload(client: TestClient, c: Contract) -> None:
    path, url = "/v1/admin/models/{name}/data", "/v1/admin/models/churn/data"
    r = client.post(url, json={"rows": churn_rows(20, seed=3)}, headers=ADMIN)
    assert c.check("post", path, r, 202) == {"accepted": 20}
    r = client.post(url, content=CSV, headers={**ADMIN, "Content-Type": "text/csv"})
    assert c.check("post", path, r, 202) == {"accepted": 2}
    r = client.post(url, files={"file": ("rows.csv", CSV)}, headers=ADMIN)
    assert c.check("post", path, r, 202) == {"accepted": 2}
    for body in ({"rows": []}, {"instances": []}, {"rows": [{"x1": 1}]}):
        c.check("post", path, client.post(url, json=body, headers=ADMIN), 422)
    r = client.post(url, files={"other": ("rows.csv", CSV)}, headers=ADMIN)
    assert c.check("post", path, r, 422)["detail"][0]["field"] == "file"
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=b"):  # unreadable
        r = client.post(url, content=CSV, headers={**ADMIN, "Content-Type": ctype})
        assert c.check("post", path, r, 422)["detail"][0]["field"] == "file"
    r = client.post(
        "/v1/admin/models/nope/data", json={"rows": churn_rows(1, seed=3)}, headers=ADMIN
    )
    c.check("post", path, r, 404)
    c.check("post", path, client.post(url, json={"rows": churn_rows(1, seed=3)}), 401)


def _retrain_and_jobs(client: TestClient, db: Database, c: Contract, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, url = "/v1/admin/models/{name}/retrain", "/v1/admin/models/churn/retrain"
    queued = c.check("post", path, client.post(url, headers=ADMIN), 202)
    assert queued["status"] == "queued" and not queued["joined"]
    again = c.check("post", path, client.post(url, headers=ADMIN), 202)
    assert again == {**queued, "joined": True}
    c.check("post", path, client.post("/v1/admin/models/nope/retrain", headers=ADMIN), 404)
    c.check("post", path, client.post(url), 401)

    def refuse(job_id: str) -> None:  # what the Celery client raises without a broker
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(client.app.state.platform.sender, "send_retrain", refuse)
    r = client.post("/v1/admin/models/fresh/retrain", headers=ADMIN)
    assert "broker is unreachable" in c.check("post", path, r, 503)["detail"]
    monkeypatch.undo()

    job_path, job_url = "/v1/admin/jobs/{job_id}", f"/v1/admin/jobs/{queued['job_id']}"
    out = c.check("get", job_path, client.get(job_url, headers=ADMIN), 200)
    assert out["status"] == "queued" and out["result"] is None and out["trigger"] == "admin"
    job = claim(db, queued["job_id"], worker="w")  # the worker's own code, in this process
    assert not isinstance(job, Skipped)
    run_local(db, job, heartbeat_seconds=0.5, notifier=ChampionNotifier(None))
    out = c.check("get", job_path, client.get(job_url, headers=ADMIN), 200)
    assert out["status"] == "succeeded" and out["progress"] == 1.0, out["error"]
    document, result = c.document, out["result"]
    _keys(document, "JobResult", result)
    _keys(document, "CandidateSummary", result["candidate"])
    _keys(document, "ParityReport", result["parity"])
    trial = set(_component(document, "TrialRecord")["properties"])
    assert result["trials"] and all(set(t) <= trial for t in result["trials"])
    c.check("get", job_path, client.get("/v1/admin/jobs/" + "0" * 32, headers=ADMIN), 404)
    c.check("get", job_path, client.get(job_url), 401)
    _list_jobs(client, c, out)


def _list_jobs(client: TestClient, c: Contract, churn_job: dict[str, Any]) -> None:
    """Two jobs by now: churn's, which succeeded, then fresh's, queued (never sent)."""
    path = "/v1/admin/jobs"
    every = c.check("get", path, client.get(path, headers=ADMIN), 200)
    assert [(j["model"], j["status"]) for j in every["jobs"]] == [
        ("fresh", "queued"),
        ("churn", "succeeded"),
    ]
    assert every["next_cursor"] is None
    whole = {**churn_job, "result": dict(churn_job["result"])}
    whole["result"].pop("trials")
    assert every["jobs"][1] == whole  # the job's own record, less the search's trials
    first = c.check("get", path, client.get(path, params={"limit": 1}, headers=ADMIN), 200)
    assert first["jobs"] == every["jobs"][:1] and first["next_cursor"]
    r = client.get(path, params={"limit": 1, "cursor": first["next_cursor"]}, headers=ADMIN)
    assert c.check("get", path, r, 200) == {"jobs": every["jobs"][1:], "next_cursor": None}
    r = client.get(path, params={"model": "churn", "status": "succeeded"}, headers=ADMIN)
    assert c.check("get", path, r, 200)["jobs"] == every["jobs"][1:]
    for params, field in (
        ({"status": "done"}, "status"),
        ({"limit": 501}, "limit"),
        ({"cursor": "page-2"}, "cursor"),
    ):
        r = client.get(path, params=params, headers=ADMIN)
        assert [p["field"] for p in c.check("get", path, r, 422)["detail"]] == [field]
    c.check("get", path, client.get(path, params={"model": "nope"}, headers=ADMIN), 404)
    c.check("get", path, client.get(path), 401)


def _models(client: TestClient, c: Contract) -> None:
    listed = c.check("get", "/v1/models", client.get("/v1/models"), 200)
    assert [m["name"] for m in listed] == ["churn", "fresh"]
    path = "/v1/models/{name}"
    churn = c.check("get", path, client.get("/v1/models/churn"), 200)
    assert churn["labelled_rows"] == 100 + 24
    same = {k for k in churn if k != "served_version"}  # the cache may reload in between
    assert {k: churn[k] for k in same} == {k: listed[0][k] for k in same}
    assert churn["champion"]["stage"] == "champion"
    c.check("get", path, client.get("/v1/models/nope"), 404)
    versions_path = "/v1/models/{name}/versions"
    versions = c.check("get", versions_path, client.get("/v1/models/churn/versions"), 200)
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert c.check("get", versions_path, client.get("/v1/models/fresh/versions"), 200) == []
    c.check("get", versions_path, client.get("/v1/models/nope/versions"), 404)


def _promote_and_rollback(client: TestClient, db: Database, c: Contract) -> None:
    with db.session() as s:
        before = catalog.champion(s, catalog.get_model(s, "churn").id)
        assert before is not None
        champion = before.version
    version = train_version(db, "churn", seed=2)
    path, url = "/v1/admin/models/{name}/promote", "/v1/admin/models/churn/promote"
    form = {**ADMIN, "Content-Type": "application/x-www-form-urlencoded"}  # as curl -d sends
    r = client.post(url, content=f'{{"version": {version}}}', headers=form)
    assert c.check("post", path, r, 200) == {
        "model": "churn",
        "champion_version": version,
        "previous_version": champion,
    }
    # 2.0 is the integer 2, as the published schema has it
    r = client.post(url, json={"version": float(version), "reason": "again"}, headers=ADMIN)
    assert "champion already" in c.check("post", path, r, 409)["detail"]
    c.check("post", path, client.post(url, json={"version": 99}, headers=ADMIN), 404)
    for body, field in (
        ({"version": "2"}, "version"),
        ({"version": True}, "version"),
        ({"version": 0}, "version"),
        ({"version": 2.5}, "version"),
        ({}, "version"),
        ({"version": 2, "reason": ["why"]}, "reason"),
    ):
        r = client.post(url, json=body, headers=ADMIN)
        assert [p["field"] for p in c.check("post", path, r, 422)["detail"]] == [field]
    r = client.post(url, content=b"{not json", headers=ADMIN)
    c.check("post", path, r, 422)
    c.check("post", path, client.post(url, json={"version": version}), 401)

    path, url = "/v1/admin/models/{name}/rollback", "/v1/admin/models/churn/rollback"
    assert c.check("post", path, client.post(url, headers=ADMIN), 200) == {
        "model": "churn",
        "champion_version": champion,
        "retired_version": version,
    }
    r = client.post("/v1/admin/models/fresh/rollback", json={"reason": "t"}, headers=ADMIN)
    assert "no champion" in c.check("post", path, r, 409)["detail"]
    r = client.post(url, json={"reason": ["why"]}, headers=ADMIN)
    assert c.check("post", path, r, 422)["detail"][0]["field"] == "reason"
    c.check("post", path, client.post("/v1/admin/models/nope/rollback", headers=ADMIN), 404)
    c.check("post", path, client.post(url), 401)


def _performance_and_drift(client: TestClient, db: Database, c: Contract) -> None:
    """Served predictions, labelled right and then wrong: the monitor records a concept
    change and a data-drift report, which both routes pass on."""
    served: list[dict[str, Any]] = []
    for seed in (31, 32, 33):
        rows = features_only(churn_rows(50, seed=seed))
        r = client.post("/v1/models/churn/predict", json={"instances": rows})
        assert r.status_code == 200, r.text
        served += r.json()["predictions"]
    flip = {"yes": "no", "no": "yes"}
    for part, wrong in ((served[:100], False), (served[100:], True)):
        labels = [
            {"prediction_id": p["id"], "label": flip[p["label"]] if wrong else p["label"]}
            for p in part
        ]
        assert client.post("/v1/models/churn/feedback", json={"labels": labels}).status_code == 202
    watch(db)  # the monitor's pass, as beat runs it

    path = "/v1/models/{name}/performance"
    out = c.check("get", path, client.get("/v1/models/churn/performance?window=50"), 200)
    assert [w["rows"] for w in out["by_rows"]] == [50, 50, 50] and out["by_time"]
    assert "change_detected" in {m["kind"] for m in out["events"]}  # after the first row
    change = out["change"]
    _keys(c.document, "ConceptChange", change, absent=frozenset({"reaction_job", "reactions"}))
    c.check("get", path, client.get("/v1/models/churn/performance?window=9"), 422)
    c.check("get", path, client.get("/v1/models/churn/performance?bucket_seconds=inf"), 422)
    c.check("get", path, client.get("/v1/models/nope/performance"), 404)
    fresh = c.check("get", path, client.get("/v1/models/fresh/performance"), 200)
    assert fresh["current"]["value"] is None and fresh["change"] is None

    path = "/v1/models/{name}/drift"
    out = c.check("get", path, client.get("/v1/models/churn/drift"), 200)
    assert out["concept"]["last_change"] == change
    report = out["data_drift"]
    _keys(c.document, "DataDriftReport", report)
    _keys(c.document, "DriftReference", report["reference"])
    for feature in report["features"]:
        _keys(c.document, "FeatureDrift", feature)
    assert c.check("get", path, client.get("/v1/models/fresh/drift"), 200)["data_drift"] is None
    c.check("get", path, client.get("/v1/models/nope/drift"), 404)
    with db.session() as s:  # what the route said is what the monitor stored
        model = catalog.get_model(s, "churn")
        assert (model.change, model.data_drift) == (change, report)


def _events(client: TestClient, c: Contract) -> None:
    path = "/v1/admin/events"
    every = c.check("get", path, client.get(path, headers=ADMIN), 200)
    kinds = {e["kind"] for e in every}
    assert {"model_created", "data_uploaded", "retrain_requested", "promoted"} <= kinds
    assert {"rolled_back", "change_detected"} <= kinds
    mine = c.check("get", path, client.get(path, params={"model": "fresh"}, headers=ADMIN), 200)
    assert {e["model"] for e in mine} == {"fresh"}
    c.check("get", path, client.get(path, params={"model": "nope"}, headers=ADMIN), 404)
    c.check("get", path, client.get(path), 401)


def _model_files(
    client: TestClient, db: Database, c: Contract, database_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A version's graph downloaded and imported again; a corrupt artifact, a refused file, a
    file over the body limit, and keys required."""
    path, url = "/v1/models/{name}/versions/{version}/onnx", "/v1/models/churn/versions/1/onnx"
    graph = c.check_file(path, client.get(url))
    c.check("get", path, client.get("/v1/models/churn/versions/99/onnx"), 404)
    c.check("get", path, client.get("/v1/models/nope/versions/1/onnx"), 404)
    version = train_version(db, "churn", seed=4)
    with db.session() as s:
        digest = catalog.get_version(s, catalog.get_model(s, "churn"), version).onnx_sha256
        s.execute(update(Artifact).where(Artifact.sha256 == digest).values(data=b"tampered"))
    r = client.get(f"/v1/models/churn/versions/{version}/onnx")
    assert f"its ONNX artifact {digest} is corrupt" in c.check("get", path, r, 500)["detail"]

    imports, url = "/v1/admin/models/{name}/versions", "/v1/admin/models/churn/versions"
    files = {"file": ("churn-v1.onnx", graph)}
    r = client.post(url, files=files, params={"promote": "false"}, headers=ADMIN)
    out = c.check("post", imports, r, 201)
    assert out["decision"] == "registered" and out["version"]["kind"] == "imported"
    _keys(c.document, "ImportLineage", out["lineage"])
    assert out["version"]["params"]["imported"] == out["lineage"]
    r = client.post(url, content=b"not a model", headers=ADMIN)
    assert c.check("post", imports, r, 422)["detail"][0]["field"] == "file"
    r = client.post(url, files=files, params={"promote": "perhaps"}, headers=ADMIN)
    assert c.check("post", imports, r, 422)["detail"][0]["field"] == "promote"
    r = client.post("/v1/admin/models/nope/versions", files=files, headers=ADMIN)
    c.check("post", imports, r, 404)
    c.check("post", imports, client.post(url, files=files), 401)
    with app_client(database_url, tmp_path, max_body_bytes=1024, api_keys="k1") as small:
        c.check("post", imports, small.post(url, files=files, headers=ADMIN), 413)
        c.check("get", path, small.get("/v1/models/churn/versions/1/onnx"), 401)


def _delete(client: TestClient, c: Contract) -> None:
    """`fresh` goes, with the job the broker never got; its audit entries stay."""
    path, url = "/v1/admin/models/{name}", "/v1/admin/models/fresh"
    c.check("delete", path, client.delete(url), 401)
    out = c.check("delete", path, client.delete(url, headers=ADMIN), 200)
    assert len(out.pop("cancelled_jobs")) == 1
    assert out == {
        "model": "fresh",
        "champion_version": None,
        "versions": 0,
        "labelled_rows": 0,
        "predictions": 0,
        "jobs": 1,
        "artifacts_deleted": 0,
        "artifacts_kept": 0,
    }
    c.check("delete", path, client.delete(url, headers=ADMIN), 404)
    c.check("delete", path, client.delete("/v1/admin/models/nope", headers=ADMIN), 404)
    r = client.get("/v1/admin/events", params={"model": "fresh"}, headers=ADMIN)
    log = c.check("get", "/v1/admin/events", r, 200)
    assert [e["kind"] for e in log[:2]] == ["model_deleted", "retrain_superseded"]
    assert log[-1]["kind"] == "model_created"
    assert [m["name"] for m in c.check("get", "/v1/models", client.get("/v1/models"), 200)] == [
        "churn"
    ]


def _database_down(database_url: str, tmp_path, c: Contract) -> None:  # type: ignore[no-untyped-def]
    """An app whose database cannot be opened: 503 from every route that reads it, in each
    protocol's shape; not ready, and the V2 routes say no champion is loaded."""
    one = {"rows": churn_rows(1, seed=3)}
    csv = {"content": CSV, "headers": {**ADMIN, "Content-Type": "text/csv"}}
    promote = {"version": 1}
    missing = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    with app_client(missing, tmp_path, champion_poll_seconds=60) as client:
        body = c.check("get", "/readyz", client.get("/readyz"), 503)
        assert body["status"] == "not ready" and len(body["problems"]) == 2
        assert c.check("get", "/v2/health/ready", client.get("/v2/health/ready"), 503) == {
            "ready": False
        }
        c.check("get", "/v2/models/{name}", client.get("/v2/models/churn"), 503)
        r = client.get("/v2/models/churn/versions/1")
        c.check("get", "/v2/models/{name}/versions/{version}", r, 503)
        c.check("get", "/v2/models/{name}/ready", client.get("/v2/models/churn/ready"), 503)
        r = client.get("/v2/models/churn/versions/1/ready")
        c.check("get", "/v2/models/{name}/versions/{version}/ready", r, 503)
        admin, onnx = "/v1/admin/models/{name}", "/v1/models/{name}/versions/{version}/onnx"
        for method, path, url, kwargs in (
            ("get", "/v1/models", "/v1/models", {}),
            ("get", "/v1/models/{name}", "/v1/models/churn", {}),
            ("get", "/v1/models/{name}/versions", "/v1/models/churn/versions", {}),
            ("get", "/v1/models/{name}/performance", "/v1/models/churn/performance", {}),
            ("get", "/v1/models/{name}/drift", "/v1/models/churn/drift", {}),
            ("post", "/v1/admin/models", "/v1/admin/models", {"json": churn_spec().model_dump()}),
            ("delete", admin, "/v1/admin/models/churn", {}),
            ("post", admin + "/data", "/v1/admin/models/churn/data", {"json": one}),
            ("post", admin + "/data", "/v1/admin/models/churn/data", csv),
            ("post", admin + "/retrain", "/v1/admin/models/churn/retrain", {}),
            ("get", "/v1/admin/jobs/{job_id}", "/v1/admin/jobs/" + "0" * 32, {}),
            ("get", "/v1/admin/jobs", "/v1/admin/jobs", {}),
            ("post", admin + "/promote", "/v1/admin/models/churn/promote", {"json": promote}),
            ("post", admin + "/rollback", "/v1/admin/models/churn/rollback", {}),
            ("post", admin + "/versions", "/v1/admin/models/churn/versions", {"content": b"x"}),
            ("get", onnx, "/v1/models/churn/versions/1/onnx", {}),
            ("get", "/v1/admin/events", "/v1/admin/events", {}),
        ):
            kwargs = {"headers": ADMIN, **kwargs}
            r = client.request(method.upper(), url, **kwargs)
            assert "database is unreachable" in c.check(method, path, r, 503)["detail"]


def _front_door(database_url: str, tmp_path, c: Contract) -> None:  # type: ignore[no-untyped-def]
    """With API keys set, every route that takes a token answers 401 without one, then 429
    (with Retry-After) to its address once it failed past its budget, whatever token it then
    sends; every route that takes a body answers 413 to one over the limit."""
    names = {"name": "churn", "version": "1", "job_id": "0" * 32}
    settings = {"api_keys": "k2", "auth_failures_per_minute": 1, "max_body_bytes": 1024}
    with app_client(database_url, tmp_path, **settings) as client:
        door = sorted((m, p, s) for m, p, s in c.documented() if s in (401, 413, 429))
        for i, (method, path, status) in enumerate(door):
            url = path.format(**names)
            caller = TestClient(client.app, client=(f"10.0.1.{i}", 50000))  # a fresh budget
            if status == 413:
                big = {"content": b"{" * 2048, "headers": {**ADMIN, "Content-Type": JSON}}
                c.check(method, path, caller.request(method.upper(), url, **big), 413)
                continue
            r = caller.request(method.upper(), url)
            c.check(method, path, r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
            if status == 429:
                assert caller.request(method.upper(), url).status_code == 429
                r = caller.request(method.upper(), url, headers=ADMIN)
                c.check(method, path, r, 429)
                assert 1 <= int(r.headers["retry-after"]) <= 60


def test_the_published_examples_fit_and_are_served(db, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every example /openapi.json shows fits its schema, and the admin bodies' examples are
    served, in the order an admin sends them, on an empty database."""
    with app_client(database_url, tmp_path) as client:
        document = client.get("/openapi.json").json()
        for name, schema in document["components"]["schemas"].items():
            for example in schema.get("examples", []):
                _validate(document, {"$ref": f"#/components/schemas/{name}"}, example)
        bodies: dict[tuple[str, str], dict[str, Any]] = {}
        for path, item in document["paths"].items():
            for method, operation in item.items():
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    for example in media.get("examples", {}).values():
                        _validate(document, media["schema"], example["value"])
                    bodies[(path, method)] = operation["requestBody"]["content"]
                for answer in operation["responses"].values():
                    for media in answer.get("content", {}).values():
                        if "example" in media:
                            _validate(document, media["schema"], media["example"])

        def send(path: str, media: str = "application/json", **names: str) -> httpx.Response:
            shown = bodies[(path, "post")][media]["examples"]
            (example,) = shown.values()
            url = path.format(**names)
            if media == "application/json":
                return client.post(url, json=example["value"], headers=ADMIN)
            headers = {**ADMIN, "Content-Type": media}
            return client.post(url, content=example["value"], headers=headers)

        assert send("/v1/admin/models").status_code == 201
        assert send("/v1/admin/models/{name}/data", name="churn").status_code == 202
        assert send("/v1/admin/models/{name}/data", "text/csv", name="churn").status_code == 202
        for seed in (1, 2):
            train_version(db, "churn", seed=seed)
        r = client.post("/v1/admin/models/churn/promote", json={"version": 1}, headers=ADMIN)
        assert r.status_code == 200, r.text
        r = send("/v1/admin/models/{name}/promote", name="churn")
        assert r.status_code == 200 and r.json()["champion_version"] == 2, r.text
        r = send("/v1/admin/models/{name}/rollback", name="churn")
        assert r.status_code == 200 and r.json()["champion_version"] == 1, r.text
        with db.session() as s:
            reasons = [e["reason"] for e in events.list_events(s, "churn")]
        assert reasons[:2] == ["v2 mislabels new customers", "better on last week's data"]


def test_the_schemas_refuse_what_is_never_answered(served) -> None:  # type: ignore[no-untyped-def]
    """The published schemas are tight: a missing key, an unknown key, a value outside an
    enumeration or of the wrong type is refused, so the checks above can fail."""
    client, _ = served
    document = client.get("/openapi.json").json()
    schema = document["paths"]["/v1/models/{name}"]["get"]["responses"]["200"]["content"]
    schema = schema["application/json"]["schema"]
    answer = client.get("/v1/models/churn").json()
    _validate(document, schema, answer)
    for change in (
        lambda a: a.pop("served_version"),
        lambda a: a.update(extra=1),
        lambda a: a["champion"].update(stage="favourite"),
        lambda a: a["champion"].update(version="1"),
        lambda a: a["spec"].update(task="ranking"),
        lambda a: a.update(labelled_rows=None),
    ):
        wrong = copy.deepcopy(answer)
        change(wrong)
        with pytest.raises(ValidationError):
            _validate(document, schema, wrong)


def test_every_json_answer_is_typed(served) -> None:  # type: ignore[no-untyped-def]
    """No route answers an untyped body: each documented answer names a schema of its own
    (an object with properties, or a list of them), /metrics is documented as text and a
    version's ONNX graph as bytes with its sha256."""
    client, _ = served
    document = client.get("/openapi.json").json()

    def typed(schema: dict[str, Any]) -> bool:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            return bool(_component(document, name).get("properties"))
        return schema.get("type") == "array" and typed(schema["items"])

    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                content = answer["content"]
                if path == "/metrics" and status == "200":
                    assert set(content) == {"text/plain"}
                    continue
                if path.endswith("/onnx") and status == "200":
                    assert set(content) == {"application/octet-stream"}
                    assert {"X-Content-SHA256", "Repr-Digest"} <= set(answer["headers"])
                    continue
                assert typed(content["application/json"]["schema"]), (method, path, status)
            if method == "post" and not path.endswith("/retrain"):
                assert operation["requestBody"]["content"], path
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_marks_kinds_are_the_monitors() -> None:
    assert set(get_args(MarkKind)) == {*monitoring.VERSION_EVENTS, *monitoring.CHANGE_EVENTS}
