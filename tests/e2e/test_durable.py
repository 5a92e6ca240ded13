"""kill -9 of the API under load: with LOOPSERVE_DURABLE_PREDICTIONS every prediction id a 200
carried is accepted as feedback by the API started next on the same database (0 lost); without
it the buffered ids are refused as unknown, the window the README states."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from registry.db import Database
from registry.models import LabelledRow
from tests.api.conftest import with_champion
from tests.e2e.stack import Stack
from tests.factories import churn_rows, features_only

pytestmark = pytest.mark.slow

CLIENTS = 8
ACKNOWLEDGED = 300  # ids answered before each kill
ROUNDS = 3  # start, load, kill: each kill is one more chance to catch an id lost


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loopserve.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def _serve_churn(url: str) -> None:
    """A model `churn` whose champion is registered in the database, as a retrain would."""
    db = Database(url)
    try:
        with_champion(db)
    finally:
        db.dispose()


def _predict_then_kill(stack: Stack, name: str) -> tuple[list[str], dict[int, int]]:
    """An API started; CLIENTS threads predict 1 to 3 rows at a time; as soon as ACKNOWLEDGED
    ids have come back in 200s, the API is killed with SIGKILL while requests are in flight.
    Every id a 200 carried, and the count of each status."""
    url = stack.start_api(name)
    ids: list[str] = []
    statuses: dict[int, int] = {}
    lock, enough, stop = threading.Lock(), threading.Event(), threading.Event()
    bodies = [{"instances": features_only(churn_rows(n, seed=n))} for n in (1, 2, 3)]

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            turn = k
            while not stop.is_set():
                try:
                    r = http.post("/v1/models/churn/predict", json=bodies[turn % 3])
                except httpx.TransportError:  # the API is gone
                    return
                turn += 1
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        ids.extend(p["id"] for p in r.json()["predictions"])
                        if len(ids) >= ACKNOWLEDGED:
                            enough.set()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        assert enough.wait(60), f"only {len(ids)} ids acknowledged: {statuses}"
        stack.kill(name)  # SIGKILL to the API and its log writer, with requests in flight
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    with lock:
        return list(ids), dict(statuses)


def _feedback(stack: Stack, ids: list[str]) -> list[httpx.Response]:
    """Each id's label posted to a new API on the same database, 100 ids per request."""
    stack.env["LOOPSERVE_DURABLE_PREDICTIONS"] = "false"
    stack.env["LOOPSERVE_LOG_FLUSH_SECONDS"] = "0.2"  # feedback waits max(1, 5 * this)
    api = stack.client(stack.start_api("after"))
    return [
        api.post(
            "/v1/models/churn/feedback",
            json={"labels": [{"prediction_id": i, "label": "yes"} for i in ids[at : at + 100]]},
        )
        for at in range(0, len(ids), 100)
    ]


def _stored(url: str) -> int:
    db = Database(url)
    try:
        with db.session() as s:
            query = select(func.count()).where(LabelledRow.source == "feedback")
            return int(s.scalar(query) or 0)
    finally:
        db.dispose()


def test_durable_predictions_survive_kill_9(database: str, tmp_path: Path) -> None:
    """The log's timer is set to 30 s, so only durability can have written the ids."""
    stack = Stack(
        tmp_path,
        database,
        None,
        LOOPSERVE_DURABLE_PREDICTIONS="true",
        LOOPSERVE_LOG_FLUSH_SECONDS="30",
    )
    try:
        _serve_churn(database)
        ids: list[str] = []
        for round in range(ROUNDS):
            acknowledged, statuses = _predict_then_kill(stack, f"api{round}")
            assert len(acknowledged) >= ACKNOWLEDGED, statuses
            ids += acknowledged
        assert len(set(ids)) == len(ids)
        answers = _feedback(stack, ids)
        refused = [r.text[:300] for r in answers if r.status_code != 202]
        assert refused == [], f"{len(refused)} of {len(answers)} feedback posts refused"
        assert _stored(database) == len(ids)  # 0 lost
    finally:
        stack.stop()
        print(stack.logs())


def test_without_durability_a_kill_9_loses_the_buffered_ids(tmp_path: Path) -> None:
    """The control: the same run in the default mode loses what the buffer held (every id
    here, the 30 s timer having never fired), and their feedback is refused as unknown."""
    database = f"sqlite:///{tmp_path / 'loopserve.db'}"
    stack = Stack(tmp_path, database, None, LOOPSERVE_LOG_FLUSH_SECONDS="30")
    try:
        _serve_churn(database)
        ids, _ = _predict_then_kill(stack, "api")
        started = time.monotonic()
        answers = _feedback(stack, ids[:100])
        assert [r.status_code for r in answers] == [422]
        assert "unknown prediction id" in answers[0].text
        assert time.monotonic() - started < 30
        assert _stored(database) == 0
    finally:
        stack.stop()
        print(stack.logs())
