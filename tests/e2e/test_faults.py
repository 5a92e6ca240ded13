"""Faults injected into a running deployment: its broker or database stopped and started again,
its api or a worker killed with SIGKILL. Each test runs the platform as real processes on a
PostgreSQL cluster and a Redis server of its own (tests.e2e.private), so that it can break them
without touching the services other tests share."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from registry import catalog, labelled
from registry.db import Database
from registry.models import PredictionBatch
from tests.api.conftest import train_version
from tests.e2e.private import PrivatePostgres, PrivateRedis
from tests.e2e.stack import Client, Stack
from tests.factories import churn_rows, churn_spec, features_only

pytestmark = pytest.mark.slow

SEEDED_ROWS = 600  # labelled rows the champion's model starts with


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def deployment(postgres: PrivatePostgres, broker: PrivateRedis, tmp_path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """A deployment on a fresh database of the private cluster and the private Redis, both up
    (a test that failed may have left one stopped), with a champion of `churn` registered;
    nothing is started yet."""
    if not postgres.answers():
        postgres.start()
    if not broker.answers():
        broker.start()
    stack = Stack(tmp_path, postgres.new_database(), broker.url)
    _register_champion(stack.database_url)
    try:
        yield stack
    finally:
        stack.stop()
        print(stack.logs())  # pytest shows it only when the test failed


def _register_champion(url: str) -> None:
    """`churn` with labelled rows and a logistic champion, registered through the registry:
    faster than a retrain, and the api loads it at start."""
    db = Database(url)
    try:
        spec = churn_spec()
        with db.session() as s:
            model = catalog.create_model(s, spec, actor="test")
            labelled.add_rows(s, model, spec, churn_rows(SEEDED_ROWS, seed=1))
        version = train_version(db, "churn", seed=1)
        with db.session() as s:
            model = catalog.get_model(s, "churn", lock=True)
            target = catalog.get_version(s, model, version)
            catalog.promote(s, model, target, actor="test", reason="seed")
    finally:
        db.dispose()


def _predict(api: Client, rows: int, seed: int) -> list[str]:
    """Prediction ids of `rows` rows served by the champion."""
    body = {"instances": features_only(churn_rows(rows, seed=seed))}
    out = api.ok("POST", "/v1/models/churn/predict", json=body)
    assert out["version"] == 1
    ids = [p["id"] for p in out["predictions"]]
    assert len(ids) == rows and all(ids)
    return ids


def _labels(ids: list[str]) -> list[dict[str, str]]:
    return [{"prediction_id": pid, "label": "yes" if i % 2 else "no"} for i, pid in enumerate(ids)]


def _logged_rows(url: str) -> int:
    db = Database(url)
    try:
        with db.session() as s:
            return s.scalar(select(func.coalesce(func.sum(PredictionBatch.rows), 0))) or 0
    finally:
        db.dispose()


def _backlog(api: Client) -> float:
    """The api's loopserve_prediction_log_backlog, from /metrics."""
    metrics = api.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    found = re.search(r"^loopserve_prediction_log_backlog (\S+)$", metrics.text, re.MULTILINE)
    assert found, metrics.text
    return float(found.group(1))


def _wait_ready(api: Client, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get("/readyz").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout}s: {api.get('/readyz').text}")


class _Traffic(threading.Thread):
    """Predicts five rows at a time (and labels them by id, with `feedback`) until `finish`:
    every answer must be a 200 (and a 202). Keeps the prediction ids it was given."""

    def __init__(self, url: str, *, feedback: bool) -> None:
        super().__init__(daemon=True)
        self.client, self.feedback = Client(url), feedback
        self.body = {"instances": features_only(churn_rows(5, seed=99))}
        self.ids: list[str] = []
        self.failures: list[tuple[str, int | str, str]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.01):  # paced: the worker shares the machine's cores
            try:
                r = self.client.post("/v1/models/churn/predict", json=self.body)
                if r.status_code != 200:
                    self.failures.append(("predict", r.status_code, r.text[:300]))
                    continue
                ids = [p["id"] for p in r.json()["predictions"]]
                self.ids += ids
                if self.feedback:
                    r = self.client.post("/v1/models/churn/feedback", json={"labels": _labels(ids)})
                    if r.status_code != 202:
                        self.failures.append(("feedback", r.status_code, r.text[:300]))
            except httpx.TransportError as exc:
                self.failures.append(("transport", type(exc).__name__, str(exc)[:300]))

    def wait_for(self, more: int, timeout: float = 30) -> None:
        """Until `more` predictions past those made so far were answered."""
        target, deadline = len(self.ids) + more, time.monotonic() + timeout
        while len(self.ids) < target:
            assert time.monotonic() < deadline, f"{len(self.ids)} predictions: {self.failures}"
            time.sleep(0.05)

    def finish(self) -> list[str]:
        """Stop; the prediction ids handed out, once it is checked that nothing failed."""
        self._done.set()
        self.join(30)
        assert not self.is_alive() and not self.failures, self.failures[:5]
        return self.ids


def test_a_stopped_broker_stops_only_retrains(deployment: Stack, broker: PrivateRedis) -> None:
    """Serving and feedback never go through Redis, so they go on while it is down; a retrain
    cannot be sent, which is a 503 saying what to do, and once Redis is back (empty, as after a
    crash) the same api, worker and beat run retrains again: the job table, not Redis, holds
    the job that could not be sent."""
    deployment.start_worker()
    deployment.start_beat()
    api = deployment.client(deployment.start_api())
    assert api.retrain("churn")["status"] == "succeeded"  # the worker and beat are connected
    pids = {name: proc.pid for name, proc in deployment.procs.items()}
    traffic = _Traffic(deployment.urls[0], feedback=True)
    traffic.start()
    traffic.wait_for(20)

    broker.stop()
    traffic.wait_for(150)  # a few seconds: beat's ticks fail meanwhile, the worker reconnects
    started = time.monotonic()
    r = api.post("/v1/admin/models/churn/retrain")
    assert r.status_code == 503, r.text
    assert time.monotonic() - started < 5
    detail = r.json()["detail"]
    assert "broker is unreachable" in detail and "LOOPSERVE_BROKER_URL" in detail, detail
    queued = detail.split()[1]  # "job <id> is queued ..."

    broker.start()
    traffic.wait_for(20)
    again = api.ok("POST", "/v1/admin/models/churn/retrain", 202)
    assert again == {"job_id": queued, "status": "queued", "joined": True}, again
    assert api.wait_job(queued, timeout=120)["status"] == "succeeded"
    fresh = api.ok("POST", "/v1/admin/models/churn/retrain", 202)  # sent by the api itself
    assert not fresh["joined"], fresh
    assert api.wait_job(fresh["job_id"], timeout=120)["status"] == "succeeded"
    traffic.finish()
    assert {name: proc.pid for name, proc in deployment.procs.items()} == pids
    assert all(proc.poll() is None for proc in deployment.procs.values())


def test_a_stopped_database_leaves_serving_up_and_loses_no_prediction(
    deployment: Stack, postgres: PrivatePostgres
) -> None:
    """The champion is served from memory and predictions wait in the log buffer while
    PostgreSQL is down; what needs the database answers 503 at once, not after a timeout.
    Once it is back the buffer is written: every prediction id handed out meanwhile takes
    feedback, and the log holds exactly as many rows as predictions were answered."""
    api = deployment.client(deployment.start_api())
    _wait_ready(api)
    traffic = _Traffic(deployment.urls[0], feedback=False)
    traffic.start()
    traffic.wait_for(50)

    postgres.stop()
    traffic.wait_for(200)
    ready = api.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert any("database" in p for p in ready.json()["problems"]), ready.text
    assert _backlog(api) > 0  # what an operator watches meanwhile: /metrics still answers
    down = traffic.ids[-3:]  # handed out while the database was down
    by_features = [{"features": features_only(churn_rows(1, seed=7))[0], "label": "yes"}]
    for labels in (_labels(down), _labels(traffic.ids[:3]), by_features):
        started = time.monotonic()
        r = api.post("/v1/models/churn/feedback", json={"labels": labels})
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert "LOOPSERVE_DATABASE_URL" in r.json()["detail"], r.text
        assert took < 3, f"feedback took {took:.1f}s to fail"

    postgres.start()
    _wait_ready(api)
    traffic.wait_for(50)
    ids = traffic.finish()
    accepted = api.ok("POST", "/v1/models/churn/feedback", 202, json={"labels": _labels(ids)})
    assert accepted == {"accepted": len(set(ids))}
    assert _logged_rows(deployment.database_url) == len(ids)
    assert _backlog(api) == 0


class _Labeller(threading.Thread):
    """Labels its prediction ids, `PER_REQUEST` a request, until the api dies under it;
    counts the labels acknowledged (202) in `acked`."""

    PER_REQUEST = 10

    def __init__(self, url: str, ids: list[str], acked: _Count) -> None:
        super().__init__(daemon=True)
        self.client, self.ids, self.acked = Client(url), ids, acked
        self.errors: list[tuple[int, str]] = []

    def run(self) -> None:
        for at in range(0, len(self.ids), self.PER_REQUEST):
            chunk = self.ids[at : at + self.PER_REQUEST]
            try:
                r = self.client.post("/v1/models/churn/feedback", json={"labels": _labels(chunk)})
            except httpx.TransportError:
                return  # the api was killed under this request: not acknowledged
            if r.status_code != 202:
                self.errors.append((r.status_code, r.text[:300]))
                return
            self.acked.add(r.json()["accepted"])


class _Count:
    """A total several threads add to, and a wait for it to reach a value."""

    def __init__(self) -> None:
        self.value, self._cond = 0, threading.Condition()

    def add(self, n: int) -> None:
        with self._cond:
            self.value += n
            self._cond.notify_all()

    def wait_for(self, value: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.value >= value, timeout)


def test_labels_acknowledged_before_the_api_is_killed_are_stored(deployment: Stack) -> None:
    """A 202 on feedback means committed: SIGKILL the api while labels stream in, right after
    one more was acknowledged, and a fresh api on the same database counts every acknowledged
    label (and at most the requests then in flight more, each all or nothing)."""
    api = deployment.client(deployment.start_api())
    threads, per_thread = 3, 200
    ids = [_predict(api, per_thread, seed=10 + i) for i in range(threads)]
    assert api.ok("GET", "/v1/models/churn")["labelled_rows"] == SEEDED_ROWS
    acked = _Count()
    labellers = [_Labeller(deployment.urls[0], own, acked) for own in ids]
    for labeller in labellers:
        labeller.start()
    assert acked.wait_for(10 * _Labeller.PER_REQUEST, 60), [lb.errors for lb in labellers]
    deployment.kill("api")
    for labeller in labellers:
        labeller.join(30)
    assert not any(lb.errors for lb in labellers), [lb.errors for lb in labellers]
    acknowledged = acked.value
    assert acknowledged < threads * per_thread  # killed mid-stream

    fresh = deployment.client(deployment.start_api("api-after"))
    stored = fresh.ok("GET", "/v1/models/churn")["labelled_rows"] - SEEDED_ROWS
    assert acknowledged <= stored <= acknowledged + threads * _Labeller.PER_REQUEST, (
        acknowledged,
        stored,
    )
    assert (stored - acknowledged) % _Labeller.PER_REQUEST == 0  # all or nothing per request


def test_a_job_whose_worker_was_killed_runs_on_another_worker(deployment: Stack) -> None:
    """SIGKILL the worker mid-job: Redis never redelivers its task (the visibility timeout is
    longer than any training), so the job table re-queues the job when its heartbeat stops and
    another worker runs it to the end; the killed attempt registers nothing."""
    deployment.start_worker("doomed")
    deployment.start_beat()
    api = deployment.client(deployment.start_api())
    slow = churn_spec(
        "slow",
        retrain={"families": ["mlp", "random_forest"], "max_candidates": 6, "max_seconds": 6},
    )
    api.ok("POST", "/v1/admin/models", 201, json=slow.model_dump())
    api.ok("POST", "/v1/admin/models/slow/data", 202, json={"rows": churn_rows(2000, seed=5)})
    job_id = api.ok("POST", "/v1/admin/models/slow/retrain", 202)["job_id"]
    deadline = time.monotonic() + 60
    while api.ok("GET", f"/v1/admin/jobs/{job_id}")["status"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    deployment.kill("doomed")  # mid-training: no chance to clean up

    deployment.start_worker("rescuer")
    job = api.wait_job(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    assert job["result"]["decision"] == "promoted", job["result"]
    kinds = [e["kind"] for e in api.ok("GET", "/v1/admin/events", params={"model": "slow"})]
    assert "retrain_requeued" in kinds
    versions = api.ok("GET", "/v1/models/slow/versions")
    assert [v["version"] for v in versions] == [1]  # the killed attempt registered nothing
