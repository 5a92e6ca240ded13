"""The loop keeps up with drift on its own, through HTTP with real processes: a client predicts
and labels at a steady pace, no admin call after the first version. An abrupt change is
detected and a recovered champion is served within a bounded number of labelled rows; a
stationary stream raises no alarm and promotes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.stack import Client, Stack
from tests.factories import churn_rows, churn_spec, features_only

pytestmark = pytest.mark.slow

BATCH = 50
PACE = 100  # labelled rows per second, as a client would send them
RECOVERY_BOUND = 1500  # labelled rows after the change by which the new concept is served


@pytest.fixture
def running(stack: Stack) -> Stack:
    stack.env["LOOPSERVE_MONITOR_SECONDS"] = "0.5"
    stack.start_api()
    stack.start_worker(concurrency=2)
    stack.start_beat()
    return stack


def _first_champion(api: Client, name: str, rows: int = 600, **spec: Any) -> None:
    body = churn_spec(name, **spec).model_dump()
    api.ok("POST", "/v1/admin/models", 201, json=body)
    api.ok("POST", f"/v1/admin/models/{name}/data", 202, json={"rows": churn_rows(rows, seed=10)})
    job = api.retrain(name)
    assert job["result"]["decision"] == "promoted", job
    api.wait_version(name, 1)


def _stream(api: Client, name: str, rows: list[dict[str, Any]]) -> list[tuple[int, bool]]:
    """Predict and label the rows batch by batch at PACE; (served version, correct) per row."""
    served: list[tuple[int, bool]] = []
    start = time.monotonic()
    for i in range(0, len(rows), BATCH):
        batch = rows[i : i + BATCH]
        out = api.ok("POST", f"/v1/models/{name}/predict", json={"instances": features_only(batch)})
        labels = [
            {"prediction_id": p["id"], "label": r["churned"]}
            for p, r in zip(out["predictions"], batch, strict=True)
        ]
        api.ok("POST", f"/v1/models/{name}/feedback", 202, json={"labels": labels})
        served += [
            (out["version"], p["label"] == r["churned"])
            for p, r in zip(out["predictions"], batch, strict=True)
        ]
        time.sleep(max(0.0, start + (i + BATCH) / PACE - time.monotonic()))
    return served


def _events(api: Client, name: str, kind: str) -> list[dict[str, Any]]:
    events = api.ok("GET", "/v1/admin/events", params={"model": name})
    return [e for e in events if e["kind"] == kind]


def test_an_abrupt_change_is_detected_and_a_recovered_champion_served(running: Stack) -> None:
    api = running.client()
    _first_champion(api, "shift")
    before = _stream(api, "shift", churn_rows(400, seed=20))
    assert {v for v, _ in before} == {1}
    after = _stream(api, "shift", churn_rows(RECOVERY_BOUND, seed=21, flipped=True))

    (change,) = _events(api, "shift", "change_detected")
    assert change["version"] == 1 and change["detail"]["detector"] == "ADWIN"
    assert change["detail"]["after"] > 0.5 > 0.2 > change["detail"]["before"]
    promoted = _events(api, "shift", "promoted")
    assert len(promoted) >= 2, promoted  # the first version, then a recovered one
    # the newest 300 rows are served by a champion of the new concept
    tail = after[-300:]
    assert all(v > 1 for v, _ in tail)
    assert sum(ok for _, ok in tail) / len(tail) > 0.85
    recovered = api.ok("GET", "/v1/models/shift")["champion"]
    window = recovered["data_window"]
    assert window["since_change_row_id"] == change["detail"]["start_row_id"]
    assert window["first_row_id"] >= window["since_change_row_id"]
    assert window["holdout"]["first_row_id"] > window["first_row_id"] and window["with_holdout"]
    assert window["last_row_id"] == window["holdout"]["last_row_id"]

    performance = api.ok("GET", "/v1/models/shift/performance", params={"window": 100})
    kinds = {e["kind"] for e in performance["events"]}
    assert {"promoted", "change_detected"} <= kinds
    assert performance["current"]["value"] > 0.85
    drift = api.ok("GET", "/v1/models/shift/drift")
    assert drift["concept"]["last_change"]["start_row_id"] == change["detail"]["start_row_id"]


def test_a_stationary_stream_raises_no_alarm_and_promotes_nothing(running: Stack) -> None:
    api = running.client()
    # a champion that has seen enough of the concept: more rows of it cannot make a real winner
    _first_champion(api, "calm", rows=3000, retrain={"min_new_labels": 300})
    served = _stream(api, "calm", churn_rows(1500, seed=30))
    finished = [e["reason"] for e in _events(api, "calm", "retrain_finished")]
    assert {v for v, _ in served} == {1}, "\n".join(finished)
    assert _events(api, "calm", "change_detected") == []
    assert _events(api, "calm", "data_drift_detected") == []
    assert len(_events(api, "calm", "promoted")) == 1
    assert _events(api, "calm", "retrain_finished")  # the label trigger ran, and rejected
    drift = api.ok("GET", "/v1/models/calm/drift")
    assert drift["data_drift"] is not None and drift["data_drift"]["drifted"] == []
