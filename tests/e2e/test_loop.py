"""The whole loop through HTTP with real processes: create → data → retrain → predict →
feedback → retrain → promote or reject → served without restart. Once on SQLite with the
embedded broker, once on PostgreSQL with Redis."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cli.main import main
from tests.e2e.stack import ADMIN_TOKEN, Client, Stack
from tests.factories import churn_rows, churn_spec, features_only

pytestmark = pytest.mark.slow


@pytest.fixture
def running(stack: Stack) -> Stack:
    """The deployment with one api, one worker and beat running."""
    stack.start_api()
    stack.start_worker()
    stack.start_beat()
    return stack


def _accuracy(api: Client, name: str, rows: list[dict[str, Any]]) -> tuple[float, int]:
    out = api.ok("POST", f"/v1/models/{name}/predict", json={"instances": features_only(rows)})
    hits = sum(p["label"] == r["churned"] for p, r in zip(out["predictions"], rows, strict=True))
    return hits / len(rows), out["version"]


def _first_champion(api: Client, name: str, **spec: Any) -> None:
    api.ok("POST", "/v1/admin/models", 201, json=churn_spec(name, **spec).model_dump())
    api.ok("POST", f"/v1/admin/models/{name}/data", 202, json={"rows": churn_rows(600, seed=10)})
    job = api.retrain(name)
    assert job["status"] == "succeeded", job
    assert job["result"]["decision"] == "promoted", job["result"]
    assert "baseline" in job["result"]["reason"]
    api.wait_version(name, 1)


def _label_traffic(api: Client, name: str, rows: list[dict[str, Any]]) -> None:
    """Predict every row, then post the true labels: by prediction id and by features."""
    out = api.ok("POST", f"/v1/models/{name}/predict", json={"instances": features_only(rows)})
    ids = [p["id"] for p in out["predictions"]]
    assert len(set(ids)) == len(rows)
    half = len(rows) // 2
    by_id = [
        {"prediction_id": pid, "label": r["churned"]}
        for pid, r in zip(ids[:half], rows[:half], strict=True)
    ]
    by_features = [{"features": features_only([r])[0], "label": r["churned"]} for r in rows[half:]]
    accepted = api.ok(
        "POST", f"/v1/models/{name}/feedback", 202, json={"labels": by_id + by_features}
    )
    assert accepted == {"accepted": len(rows)}


class _Hammer(threading.Thread):
    """Predicts continuously; every response must be a 200 naming a served version."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.client, self.name = Client(url), name
        self.stop, self.failures, self.versions = threading.Event(), [], set()
        self.body = {"instances": features_only(churn_rows(5, seed=99))}

    def run(self) -> None:
        while not self.stop.is_set():
            r = self.client.post(f"/v1/models/{self.name}/predict", json=self.body)
            if r.status_code != 200:
                self.failures.append((r.status_code, r.text[:200]))
            else:
                self.versions.add(r.json()["version"])


def test_drift_is_learned_and_promoted_without_restart(running: Stack) -> None:
    api = running.client()
    # Admin-driven: the monitor's own retrains stay off (tests/e2e/test_drift.py covers them),
    # and the newest 300 rows train, as this retrain comes right after the flip.
    _first_champion(api, "churn", retrain={"windows": [300], "on_drift": False})
    fresh = churn_rows(400, seed=77, flipped=True)
    old_accuracy, version = _accuracy(api, "churn", fresh)
    assert version == 1

    _label_traffic(api, "churn", churn_rows(500, seed=11, flipped=True))
    hammer = _Hammer(running.urls[0], "churn")
    hammer.start()
    job = api.retrain("churn")
    api.wait_version("churn", 2)
    hammer.stop.set()
    hammer.join()
    result = job["result"]
    assert job["status"] == "succeeded", job
    assert (result["decision"], result["candidate_version"]) == ("promoted", 2), result
    assert not hammer.failures, hammer.failures[:3]
    assert hammer.versions == {1, 2}

    new_accuracy, version = _accuracy(api, "churn", fresh)
    assert version == 2
    assert new_accuracy > old_accuracy + 0.2, (old_accuracy, new_accuracy)

    versions = api.ok("GET", "/v1/models/churn/versions")
    assert [(v["version"], v["stage"]) for v in versions] == [(1, "archived"), (2, "champion")]
    v2 = versions[1]
    assert v2["metrics"]["challenger"] > v2["metrics"]["champion"]
    assert v2["data_window"]["holdout"]["rows"] >= 50 and len(v2["onnx_sha256"]) == 64

    api.ok("POST", "/v1/admin/models/churn/rollback", json={"reason": "e2e"})
    api.wait_version("churn", 1)
    api.ok("POST", "/v1/admin/models/churn/promote", json={"version": 2})
    api.wait_version("churn", 2)
    kinds = [e["kind"] for e in api.ok("GET", "/v1/admin/events", params={"model": "churn"})]
    assert kinds.count("promoted") == 3 and "rolled_back" in kinds


def test_feedback_from_the_same_concept_promotes_nothing(running: Stack) -> None:
    api = running.client()
    _first_champion(api, "steady", retrain={"min_new_labels": 400})
    seen = max(e["id"] for e in api.ok("GET", "/v1/admin/events", params={"model": "steady"}))
    _label_traffic(api, "steady", churn_rows(500, seed=12))
    # No admin call: the label count triggers this retrain through beat.
    job = _wait_for_finished_job(api, "steady", trigger="labels", after=seen)
    result = job["result"]
    assert job["status"] == "succeeded", job
    assert result["decision"] == "rejected", result
    assert result["candidate_version"] == 2 and result["champion_version"] == 1
    versions = api.ok("GET", "/v1/models/steady/versions")
    assert [(v["version"], v["stage"]) for v in versions] == [(1, "champion"), (2, "rejected")]
    assert versions[1]["reason"] == result["reason"]
    assert api.ok("GET", "/v1/models/steady")["served_version"] == 1


def _wait_for_finished_job(api: Client, name: str, trigger: str, after: int) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for event in api.ok("GET", "/v1/admin/events", params={"model": name}):
            if (
                event["id"] > after
                and event["kind"] == "retrain_requested"
                and event["detail"]["trigger"] == trigger
            ):
                return api.wait_job(event["detail"]["job_id"])
        time.sleep(0.5)
    raise AssertionError(f"no {trigger} retrain of {name}")


def _until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_model_deleted_while_it_retrains_goes_everywhere(
    running: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two replicas serve `churn`; `loopserve delete` deletes it while a retrain of it runs.
    The worker drops that job and trains the next model's; neither replica serves `churn` any
    more; the audit log says what went."""
    api, api2 = running.client(), running.client(running.start_api("api2"))
    _first_champion(api, "churn")
    api2.wait_version("churn", 1)
    api.ok("POST", "/v1/admin/models", 201, json=churn_spec("other").model_dump())
    api.ok("POST", "/v1/admin/models/other/data", 202, json={"rows": churn_rows(600, seed=12)})
    _label_traffic(api2, "churn", churn_rows(300, seed=11, flipped=True))
    job = api.ok("POST", "/v1/admin/models/churn/retrain", 202)["job_id"]
    _until(lambda: api.ok("GET", f"/v1/admin/jobs/{job}")["status"] == "running", "not started")

    assert main(["delete", "churn", "--yes", "--url", running.urls[1], "--token", ADMIN_TOKEN]) == 0
    assert capsys.readouterr().out.startswith(
        "deleted model churn: 1 versions, 900 labelled rows, 300 logged predictions, 2 jobs "
        "(1 cancelled), "
    )
    body = {"instances": features_only(churn_rows(2, seed=3))}
    for client in (api2, api):  # api2 answered the delete; api hears of it
        _until(
            lambda c=client: c.post("/v1/models/churn/predict", json=body).status_code == 404,
            "the deleted model is still served",
            timeout=10,
        )
    assert api.get(f"/v1/admin/jobs/{job}").status_code == 404

    other = api.retrain("other")  # the one worker process is free again
    assert other["status"] == "succeeded" and other["result"]["decision"] == "promoted", other
    api2.wait_version("other", 1)
    worker_log = (running.home / "worker.log").read_text()
    assert f"job {job} is over; dropping its work" in worker_log
    assert "Traceback" not in worker_log
    log = api.ok("GET", "/v1/admin/events", params={"model": "churn"})
    assert (log[0]["kind"], log[0]["actor"]) == ("model_deleted", "admin")
    assert log[0]["detail"]["cancelled_jobs"] == [job]
    assert [m["name"] for m in api2.ok("GET", "/v1/models")] == ["other"]
