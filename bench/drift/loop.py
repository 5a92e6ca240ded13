"""Drive a fresh `loopserve up` through one stream over HTTP, exactly as a client would.

Setup is the only admin traffic: create the model with a defaults-only spec, upload the initial
rows, run one retrain and wait until its version serves. After that the client only predicts
and posts feedback, 100 rows a batch at a fixed pace, so whatever the model does next comes
from the server's own triggers. The audit log and the versions list are read at the end, and
each event is placed on the stream by the wall time of the batches.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.drift import replay, server
from bench.drift.server import DriveError, Server
from bench.drift.streams import Stream

BATCH = 100
SETUP_TIMEOUT = 900.0  # seconds for the first version: its search budget is 120 s by default
EVENTS_LIMIT = 200  # the audit log route answers at most this many, newest first


def is_detection(kind: str) -> bool:
    """An audit event that reports a detected change (the platform names it change_detected;
    any *_detected or drift kind counts, so a rename does not hide detections)."""
    return kind.endswith("_detected") or "drift" in kind


def setup(srv: Server, stream: Stream, log: Callable[[str], None]) -> dict[str, Any]:
    """Model, initial rows, one retrain whose version must be promoted, and a working predict."""
    started, name = time.monotonic(), stream.name
    srv.call("POST", "/v1/admin/models", admin=True, retries=0, json=stream.spec())
    srv.call(
        "POST",
        f"/v1/admin/models/{name}/data",
        admin=True,
        retries=0,
        json={"rows": stream.initial},
    )
    job_id = srv.call("POST", f"/v1/admin/models/{name}/retrain", admin=True)["job_id"]
    deadline = started + SETUP_TIMEOUT
    while True:
        job = srv.call("GET", f"/v1/admin/jobs/{job_id}", admin=True)
        if job["status"] in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            raise DriveError(
                f"first retrain {job_id} still {job['status']} after {SETUP_TIMEOUT:.0f} s"
            )
        time.sleep(0.5)
    result = job.get("result") or {}
    if job["status"] != "succeeded" or result.get("decision") != "promoted":
        raise DriveError(
            f"first retrain {job['status']}, decision {result.get('decision')}: "
            f"{result.get('reason') or job.get('error')}"
        )
    while srv.call("GET", f"/v1/models/{name}")["served_version"] is None:
        if time.monotonic() > deadline:
            raise DriveError("the first version never became the served one")
        time.sleep(0.2)
    probe = srv.call(
        "POST", f"/v1/models/{name}/predict", json={"instances": [stream.x(stream.initial[0])]}
    )
    seconds = time.monotonic() - started
    log(
        f"  first version v{probe['version']} serving after {seconds:.1f} s "
        f"({result.get('reason', '')[:80]})"
    )
    return {"seconds": seconds, "job": job, "first_version": probe["version"]}


def drive(
    srv: Server, stream: Stream, pace: float, batch: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Predict a batch, then post its true labels; one batch every batch/pace seconds. A batch
    that starts late (the server was slower than the pace) records its lag."""
    name, n = stream.name, len(stream.rows)
    preds: list[Any] = [None] * n
    served: list[int] = [0] * n
    batches: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for first in range(0, n, batch):
        due = t0 + first / pace if pace > 0 else time.monotonic()
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        lag, started = max(0.0, time.monotonic() - due), time.time()
        rows = stream.rows[first : first + batch]
        out = srv.call(
            "POST", f"/v1/models/{name}/predict", json={"instances": [stream.x(r) for r in rows]}
        )
        predicted = time.time()
        if len(out["predictions"]) != len(rows):
            raise DriveError(f"predict answered {len(out['predictions'])} of {len(rows)} rows")
        for i, p in enumerate(out["predictions"]):
            preds[first + i], served[first + i] = p["label"], out["version"]
        labels = [
            {"prediction_id": p["id"], "label": stream.y(r)}
            for p, r in zip(out["predictions"], rows, strict=True)
        ]
        ack = srv.call("POST", f"/v1/models/{name}/feedback", json={"labels": labels})
        if ack.get("accepted") != len(rows):
            raise DriveError(f"feedback accepted {ack.get('accepted')} of {len(rows)} labels")
        batches.append(
            {
                "first": first,
                "started": started,
                "lag": lag,
                "predict_s": predicted - started,
                "feedback_s": time.time() - predicted,
            }
        )
        if (first // batch) % 20 == 19:
            log(f"  row {first + len(rows):>6}/{n}  serving v{out['version']}  lag {lag:.2f} s")
    return {
        "pred": preds,
        "version": served,
        "batches": batches,
        "seconds": time.monotonic() - t0,
        "lag_max": max(b["lag"] for b in batches),
    }


def _epoch(at: str) -> float:
    stamp = datetime.fromisoformat(at)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def place(at: str, starts: list[float], batch: int, n: int, ended: float | None = None) -> int:
    """The stream row being served when an event happened: the first row of the batch in
    flight (or last sent); -1 before the stream, n after its last batch `ended`."""
    stamp = _epoch(at)
    if ended is not None and stamp > ended:
        return n
    k = bisect.bisect_right(starts, stamp) - 1
    return -1 if k < 0 else min(k * batch, n)


def collect(srv: Server, stream: Stream, run: dict[str, Any], batch: int) -> dict[str, Any]:
    """The audit log and versions, read once the stream is over, and what they say."""
    name = stream.name
    events = srv.call("GET", "/v1/admin/events", admin=True, params={"model": name})
    versions = srv.call("GET", f"/v1/models/{name}/versions")
    return {"events": events, "versions": versions, **on_stream(events, run, batch)}


def on_stream(events: list[dict[str, Any]], run: dict[str, Any], batch: int) -> dict[str, Any]:
    """The promotions and detections during the stream, each placed on it."""
    starts = [b["started"] for b in run["batches"]]
    begin, n = starts[0], len(run["version"])
    last = run["batches"][-1]
    ended = last["started"] + last["predict_s"] + last["feedback_s"]
    served = run["version"]
    first_served: dict[int, int] = {}
    for i, v in enumerate(served):
        first_served.setdefault(v, i)
    during = [e for e in reversed(events) if _epoch(e["at"]) >= begin]
    promotions = [
        {
            "version": e["version"],
            "previous_version": (e.get("detail") or {}).get("previous_version"),
            "row": place(e["at"], starts, batch, n, ended),
            "at": e["at"],
            "reason": e.get("reason", ""),
            "first_served_row": first_served.get(e["version"]),
        }
        for e in during
        if e["kind"] == "promoted"
    ]
    # A version that served without a promotion event in the (limited, newest-first) audit
    # log is still a promotion the client saw: take it from the served versions.
    seen = {p["version"] for p in promotions}
    promotions += [
        {
            "version": served[i],
            "previous_version": served[i - 1],
            "row": i,
            "at": None,
            "reason": "not in the audit log read; seen in the served versions",
            "first_served_row": i,
        }
        for i in range(1, n)
        if served[i] != served[i - 1] and served[i] not in seen
    ]
    detections = [
        {
            "kind": e["kind"],
            "row": place(e["at"], starts, batch, n, ended),
            "at": e["at"],
            "reason": e.get("reason", ""),
            "detail": e.get("detail"),
        }
        for e in during
        if is_detection(e["kind"])
    ]
    return {
        "events_truncated": len(events) >= EVENTS_LIMIT,
        "event_counts": dict(Counter(e["kind"] for e in during)),
        "promotions": promotions,
        "detections": detections,
    }


def run_stream(
    stream: Stream, *, pace: float, batch: int, logs: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """One server, one stream: setup, the paced stream, the audit log, the promotion replay."""
    srv = server.start(logs / f"{stream.name}.log")
    log(f"  loopserve up at {srv.url} (log {srv.log_path})")
    try:
        first = setup(srv, stream, log)
        run = drive(srv, stream, pace, batch, log)
        result = {**run, "setup": first, **collect(srv, stream, run, batch)}
        try:
            result["replay"] = replay.compare(srv, stream, result["promotions"], result["versions"])
        except (DriveError, OSError, ValueError, RuntimeError) as exc:
            result["replay"], result["replay_error"] = [], str(exc)
    finally:
        srv.stop()
        tracebacks = srv.tracebacks()
        server.discard(srv)
    result["tracebacks"] = tracebacks
    if tracebacks:
        log(f"  {tracebacks} traceback(s) in {srv.log_path}")
    return result
