"""GET /v1/models/{name}/performance and /drift, and the live series of /metrics: predictions
through HTTP, labels by prediction id, and what the platform reports about them."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from registry import catalog, monitoring
from registry.db import Database
from tests.api.conftest import ADMIN, train_version
from tests.factories import churn_rows, churn_spec, features_only

OTHER = {"no": "yes", "yes": "no"}


def _predict(client: TestClient, n: int, *, seed: int) -> tuple[int, list[dict]]:
    r = client.post(
        "/v1/models/churn/predict", json={"instances": features_only(churn_rows(n, seed=seed))}
    )
    assert r.status_code == 200, r.text
    return r.json()["version"], r.json()["predictions"]


def _label(client: TestClient, predictions: list[dict], wrong: set[int]) -> None:
    """True labels: the served one, except at the positions in `wrong`."""
    labels = [
        {"prediction_id": p["id"], "label": OTHER[p["label"]] if i in wrong else p["label"]}
        for i, p in enumerate(predictions)
    ]
    r = client.post("/v1/models/churn/feedback", json={"labels": labels})
    assert r.status_code == 202, r.text


def _promote(client: TestClient, version: int) -> None:
    r = client.post("/v1/admin/models/churn/promote", json={"version": version}, headers=ADMIN)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while _predict(client, 1, seed=99)[0] != version:  # unlabelled: never counted
        assert time.monotonic() < deadline, "the new champion was not picked up"
        time.sleep(0.05)


def _performance(client: TestClient, **params: object) -> dict:
    r = client.get("/v1/models/churn/performance", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _live_series(client: TestClient) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        if family.name in ("loopserve_live_metric", "loopserve_drift_detected")
        for s in family.samples
    }


def test_performance_by_window_version_and_current_champion(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    version, first = _predict(client, 20, seed=10)
    assert version == 1
    _label(client, first, wrong={0, 3})  # rows 0-9: 0.8 accurate
    _label(client, first[10:], wrong={0, 1, 2, 3, 4})  # rows 10-19: 0.5 (relabelled: once)
    _label(client, first[:10], wrong={0, 3})
    v2 = train_version(db, "churn", seed=2)
    _promote(client, v2)
    _, second = _predict(client, 20, seed=11)
    _label(client, second, wrong={15})  # rows 20-29: 1.0, rows 30-39: 0.9

    out = _performance(client, window=10)
    assert (out["model"], out["metric"], out["greater_is_better"]) == ("churn", "accuracy", True)
    assert out["champion_version"] == v2
    assert [(w["end"], w["rows"], w["versions"]) for w in out["by_rows"]] == [
        (10, 10, {"1": 10}),
        (20, 10, {"1": 10}),
        (30, 10, {str(v2): 10}),
        (40, 10, {str(v2): 10}),
    ]
    assert [w["value"] for w in out["by_rows"]] == pytest.approx([0.8, 0.5, 1.0, 0.9])
    assert [w["value"] for w in out["by_version"]["1"]] == pytest.approx([0.8, 0.5])
    assert [w["end"] for w in out["by_version"][str(v2)]] == [30, 40]
    assert out["current"]["version"] == v2 and out["current"]["rows"] == 10
    assert out["current"]["value"] == pytest.approx(0.9)
    wide = _performance(client, window=500)
    assert wide["current"]["rows"] == 20 and wide["current"]["value"] == pytest.approx(0.95)
    assert [w["rows"] for w in wide["by_rows"]] == [40]
    assert wide["by_rows"][0]["value"] == pytest.approx(32 / 40)
    promoted = [e for e in out["events"] if e["kind"] == "promoted"]
    assert [(e["version"], e["row"]) for e in promoted] == [(v2, 20)]
    assert sum(b["rows"] for b in out["by_time"]) == 40
    assert out["change"] is None

    series = _live_series(client)
    key = ("loopserve_live_metric", (("metric", "accuracy"), ("model", "churn")))
    assert series[key] == pytest.approx(0.95)
    assert series[("loopserve_drift_detected", (("kind", "concept"), ("model", "churn")))] == 0


def test_late_feedback_counts_when_the_prediction_was_made(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    _, early = _predict(client, 10, seed=20)
    time.sleep(1.2)  # the two requests fall in different one-second buckets
    _, later = _predict(client, 10, seed=21)
    _label(client, later, wrong=set())
    _label(client, early, wrong={1, 2, 3, 4})  # labelled last, predicted first

    out = _performance(client, window=10, bucket_seconds=1)
    assert [w["value"] for w in out["by_rows"]] == pytest.approx([0.6, 1.0])
    assert out["by_rows"][0]["to"] < out["by_rows"][1]["from"]
    buckets = out["by_time"]
    assert [(b["rows"], b["value"]) for b in buckets] == [(10, pytest.approx(0.6)), (10, 1.0)]
    assert buckets[0]["by_version"] == {"1": pytest.approx(0.6)}
    assert buckets[0]["end"] <= buckets[1]["start"]


def test_drift_reports_the_stored_data_drift_and_concept_change(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    r = client.get("/v1/models/churn/drift")
    assert r.status_code == 200
    assert r.json() == {
        "model": "churn",
        "champion_version": 1,
        "data_drift": None,
        "concept": {"last_change": None, "detector": "ADWIN", "delta": 0.002, "min_rows": 100},
    }
    report = {
        "reference_rows": 100,
        "current_rows": 600,
        "threshold": 0.25,
        "drifted": ["x1"],
        "features": [
            {
                "feature": "x1",
                "type": "numeric",
                "psi": 0.61,
                "test": "ks",
                "statistic": 0.32,
                "p_value": 1e-9,
                "drifted": True,
            }
        ],
        "version": 1,
        "reference": {"first_row_id": 1, "last_row_id": 100},
        "computed_at": "2024-05-01T12:00:00+00:00",
    }
    change = {"version": 1, "start_row_id": 140, "detected_row_id": 180, "before": 0.1,
              "after": 0.45, "detector": "ADWIN", "delta": 0.002}  # fmt: skip
    with db.session() as s:  # as the monitor task records them
        model = catalog.get_model(s, "churn", lock=True)
        model.data_drift = report
        monitoring.record_change(s, model, "change_detected", reason="test", detail=change)
    out = client.get("/v1/models/churn/drift").json()
    assert out["data_drift"] == report and out["concept"]["last_change"] == change
    assert client.get("/v1/models/churn/performance").json()["change"] == change
    series = _live_series(client)
    assert series[("loopserve_drift_detected", (("kind", "concept"), ("model", "churn")))] == 1
    assert series[("loopserve_drift_detected", (("kind", "data"), ("model", "churn")))] == 0
    # no labelled prediction yet: no live metric series, rather than a made-up value
    assert not any(name == "loopserve_live_metric" for name, _ in series)


def test_a_new_champion_starts_without_detected_drift(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    with db.session() as s:
        model = catalog.get_model(s, "churn", lock=True)
        monitoring.record_change(s, model, "data_drift_detected", reason="t", detail={})
    series = _live_series(client)
    assert series[("loopserve_drift_detected", (("kind", "data"), ("model", "churn")))] == 1
    _promote(client, train_version(db, "churn", seed=3))
    series = _live_series(client)
    assert series[("loopserve_drift_detected", (("kind", "data"), ("model", "churn")))] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": 9}, "window"),
        ({"window": "many"}, "window"),
        ({"bucket_seconds": 0}, "bucket_seconds"),
        ({"bucket_seconds": -5}, "bucket_seconds"),
        ({"bucket_seconds": "inf"}, "bucket_seconds"),
        ({"limit": 0}, "limit"),
        ({"limit": 200_001}, "limit"),
    ],
)
def test_bad_query_parameters_are_422_naming_the_field(served, params, field) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    r = client.get("/v1/models/churn/performance", params=params)
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["query", field]]


def test_unknown_model_is_404_and_a_model_without_champion_reports_nothing(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    for path in ("performance", "drift"):
        r = client.get(f"/v1/models/nope/{path}")
        assert r.status_code == 404 and "nope" in r.json()["detail"]
    spec = churn_spec("fresh").model_dump(mode="json")
    assert client.post("/v1/admin/models", json=spec, headers=ADMIN).status_code == 201
    out = client.get("/v1/models/fresh/performance").json()
    assert out["champion_version"] is None and out["by_rows"] == [] and out["events"] == []
    assert out["current"] == {"version": None, "window": 500, "rows": 0, "value": None,
                              "from": None, "to": None}  # fmt: skip
    assert client.get("/v1/models/fresh/drift").json()["champion_version"] is None


def test_metrics_survive_a_database_that_is_down(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    monitor = client.app.state.monitor
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")  # cannot be opened
    healthy, monitor.db = monitor.db, broken
    try:
        r = client.get("/metrics")
        assert r.status_code == 200
        assert "loopserve_served_version" in r.text
        assert "loopserve_drift_detected{" not in r.text
        assert client.get("/v1/models/churn/performance").status_code == 503
    finally:
        monitor.db = healthy
        broken.dispose()
    assert "loopserve_drift_detected{" in client.get("/metrics").text
