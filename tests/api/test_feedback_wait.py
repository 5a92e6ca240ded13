"""Feedback on a prediction id not yet in the log: a recent id waits a moment for the replica
buffering it, on the event loop (no thread held), and so does one the replica answering still
buffers, however old; any other unknown id is refused at once, so unknown ids cost no more than
known ones (api.platform.Platform.feedback)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from api import platform
from registry.predlog.ids import is_recent, issued_at
from tests.api.conftest import serve
from tests.factories import churn_rows, features_only

# log_flush_seconds 0.6: a replica waits max(1, 5 x 0.6) = 3 s for a recent id.
WAIT = {"log_flush_seconds": 0.6, "champion_poll_seconds": 0.1}


def forged(seconds_ago: float) -> str:
    """A well-formed id of a batch never issued, dated `seconds_ago`."""
    second = int(time.time() - seconds_ago) & 0xFFFFFFFF
    return f"{second:08x}{'ab' * 8}00000000"


def feedback(url: str, ids: list[str]) -> httpx.Response:
    labels = [{"prediction_id": pid, "label": "yes"} for pid in ids]
    return httpx.post(f"{url}/v1/models/churn/feedback", json={"labels": labels}, timeout=30)


def test_ids_carry_the_second_they_were_issued(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    rows = features_only(churn_rows(2, seed=3))
    answer = client.post("/v1/models/churn/predict", json={"instances": rows}).json()
    ids = [p["id"] for p in answer["predictions"]]
    now = time.time()
    assert all(abs(issued_at(pid) - now) <= 2 for pid in ids)
    assert all(is_recent(pid, 30) for pid in ids)
    assert not is_recent(forged(31), 30) and is_recent(forged(-30), 30)  # skew: 60 s ahead
    assert not is_recent(forged(-120), 30)


def test_an_unknown_id_that_is_not_recent_is_refused_at_once(
    served, database_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with serve(database_url, tmp_path, **WAIT) as url:
        started = time.monotonic()
        answer = feedback(url, [forged(3600)])
        elapsed = time.monotonic() - started
    assert answer.status_code == 422 and "unknown prediction id" in answer.text
    assert elapsed < 1.5, elapsed  # it did not sit out the 3 s a recent id may wait


def test_a_recent_id_buffered_by_another_replica_is_waited_for(
    served, database_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with (
        serve(database_url, tmp_path, log_flush_seconds=0.5) as other,
        serve(database_url, tmp_path, **WAIT) as here,
    ):
        rows = features_only(churn_rows(3, seed=4))
        answer = httpx.post(f"{other}/v1/models/churn/predict", json={"instances": rows})
        ids = [p["id"] for p in answer.json()["predictions"]]
        accepted = feedback(here, ids)  # sent at once: `other` writes them within 0.5 s
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"] == 3


def test_an_old_id_this_replica_still_buffers_is_waited_for(
    served, database_url, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """After the database was down for longer than BUFFERED_SECONDS, a replica's backlog holds
    ids no longer recent: feedback on them must wait for the replica to write them, not refuse
    them as unknown (a 422 a client would not retry)."""
    monkeypatch.setattr(platform, "is_recent", lambda pid, seconds: False)  # every id is old
    with serve(database_url, tmp_path, log_flush_seconds=10, champion_poll_seconds=0.1) as url:
        rows = features_only(churn_rows(3, seed=5))
        answer = httpx.post(f"{url}/v1/models/churn/predict", json={"instances": rows})
        ids = [p["id"] for p in answer.json()["predictions"]]
        started = time.monotonic()
        accepted = feedback(url, ids)  # written every 10 s: not yet, unless feedback flushes
        elapsed = time.monotonic() - started
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"] == 3
    assert elapsed < 5, elapsed  # flushed at once, not at the next 10 s tick


def test_waiting_feedback_holds_no_thread(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """80 labels for recent ids no replica holds wait their 3 s together; meanwhile a route
    that runs in the thread pool (40 threads) still answers at once."""

    async def scenario(url: str) -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"labels": [{"prediction_id": forged(0), "label": "yes"}]}
            waiting = [
                asyncio.create_task(client.post("/v1/models/churn/feedback", json=body))
                for _ in range(80)
            ]
            await asyncio.sleep(0.5)  # all of them are waiting now
            started = time.monotonic()
            read = await client.get("/v1/models/churn")
            elapsed = time.monotonic() - started
            assert read.status_code == 200
            answers = await asyncio.gather(*waiting)
        return [a.status_code for a in answers], elapsed

    with serve(database_url, tmp_path, **WAIT) as url:
        statuses, elapsed = asyncio.run(scenario(url))
    assert statuses == [422] * 80
    assert elapsed < 1.5, elapsed  # not behind 80 threads held for 3 s
