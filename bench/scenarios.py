"""The two platform scenarios: a champion swap under load, and feedback ingest.

Swap: wrk keeps 16 connections of single-row predicts going while the admin API promotes the
other version and back; every failed request and the p99 against a steady run are counted.
Feedback: predictions made through the API give real ids, whose labels are then posted in
batches from a few concurrent clients; the database must hold exactly what was acknowledged.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.config import ADMIN_TOKEN, FEATURES, Timing
from bench.load import Payload, WrkResult, run_wrk
from bench.models import BenchModel
from bench.prepare import labelled_rows
from bench.servers import Server, wait_log_drained

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class SwapResult:
    steady: WrkResult
    during: WrkResult
    swaps: list[dict[str, Any]] = field(default_factory=list)
    side_failures: int = 0  # failed predicts of the swap thread itself

    @property
    def failed(self) -> int:
        return self.during.non_2xx + self.during.socket_errors + self.side_failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "steady": self.steady.as_dict(),
            "during": self.during.as_dict(),
            "swaps": self.swaps,
            "side_failures": self.side_failures,
            "failed": self.failed,
        }


def swap_under_load(server: Server, model: str, payload: Payload, timing: Timing) -> SwapResult:
    """Steady run, then the same load while promoting v2, v1, v2, ... (ending on v1)."""
    url = f"{server.url}/v1/models/{model}/predict"
    run_wrk(url, payload, connections=16, seconds=timing.warmup)
    steady = run_wrk(url, payload, connections=16, seconds=timing.duration)
    swaps: list[dict[str, Any]] = []
    side_failures = 0
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=10) as client:
        load = pool.submit(run_wrk, url, payload, connections=16, seconds=timing.swap_seconds)
        start = time.monotonic()
        time.sleep(1.5)
        slot = (timing.swap_seconds - 3.0) / timing.swaps
        for i in range(timing.swaps):
            version = 2 if i % 2 == 0 else 1
            t0 = time.monotonic()
            r = client.post(
                f"{server.url}/v1/admin/models/{model}/promote",
                json={"version": version, "reason": "bench swap"},
                headers=AUTH,
            )
            promoted = time.monotonic()
            served = None
            while time.monotonic() - t0 < 10:
                p = client.post(
                    url, content=payload.body, headers={"content-type": "application/json"}
                )
                if p.status_code != 200:
                    side_failures += 1
                elif (served := p.json().get("version")) == version:
                    break
                time.sleep(0.01)
            swaps.append(
                {
                    "to_version": version,
                    "promote_status": r.status_code,
                    "promote_ms": (promoted - t0) * 1000,
                    "served_after_ms": (time.monotonic() - t0) * 1000,
                    "served_version": served,
                }
            )
            next_slot = start + 1.5 + (i + 1) * slot
            time.sleep(max(0.0, next_slot - time.monotonic()))
        during = load.result()
    return SwapResult(steady, during, swaps, side_failures)


@dataclass
class FeedbackResult:
    rows: int
    predict_seconds: float
    labels_sent: int
    batches_sent: int
    batches_total: int
    acknowledged: int
    failed_batches: int
    seconds: float
    stored: int
    errors: list[str] = field(default_factory=list)

    @property
    def labels_per_s(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "labels_per_s": self.labels_per_s}


def _batches(model: BenchModel, rows: int, size: int) -> list[tuple[bytes, list[str]]]:
    """v1 predict bodies of `size` rows, cycling through the payload rows, with true labels."""
    idx = np.arange(rows) % len(model.X)
    out = []
    for lo in range(0, rows, size):
        chunk = idx[lo : lo + size]
        instances = [dict(zip(FEATURES, map(float, model.X[i]), strict=True)) for i in chunk]
        out.append((json.dumps({"instances": instances}).encode(), [model.y[i] for i in chunk]))
    return out


def post_labels(
    url: str,
    batches: list[list[dict[str, str]]],
    clients: int,
    deadline: float | None = None,
) -> tuple[int, int, int, list[str]]:
    """POST label batches from `clients` threads until done or `deadline` (monotonic);
    (acknowledged, batches sent, failed batches, errors)."""

    def send(part: list[list[dict[str, str]]]) -> tuple[int, int, int, list[str]]:
        ok, sent, failed, errors = 0, 0, 0, []
        with httpx.Client(timeout=120) as c:
            for labels in part:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                r = c.post(url, json={"labels": labels})
                sent += 1
                if r.status_code == 202:
                    ok += int(r.json()["accepted"])
                else:
                    failed += 1
                    errors.append(f"{r.status_code}: {r.text[:200]}")
        return ok, sent, failed, errors

    parts = [batches[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, parts))
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        sum(r[2] for r in results),
        [e for r in results for e in r[3]],
    )


def predict_for_ids(
    server: Server, model: BenchModel, timing: Timing
) -> tuple[list[list[dict[str, str]]], float]:
    """Predict `feedback_rows` rows through v1; the label batches for their ids."""
    url = f"{server.url}/v1/models/{model.name}/predict"
    labelled: list[dict[str, str]] = []
    start = time.monotonic()
    with httpx.Client(timeout=60) as c:
        for body, truth in _batches(model, timing.feedback_rows, timing.feedback_batch):
            r = c.post(url, content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
            ids = [p["id"] for p in r.json()["predictions"]]
            labelled += [{"prediction_id": i, "label": y} for i, y in zip(ids, truth, strict=True)]
    seconds = time.monotonic() - start
    size = timing.feedback_batch
    return [labelled[i : i + size] for i in range(0, len(labelled), size)], seconds


def feedback_ingest(
    server: Server, model: BenchModel, timing: Timing
) -> tuple[FeedbackResult, list[list[dict[str, str]]]]:
    """Labels/s of batched feedback, and whether every acknowledged label is stored; also
    the label batches, which a profile may post again (a relabel replaces, never adds)."""
    batches, predict_seconds = predict_for_ids(server, model, timing)
    wait_log_drained(server)
    url = f"{server.url}/v1/models/{model.name}/feedback"
    start = time.monotonic()
    acknowledged, sent, failed, errors = post_labels(
        url, batches, timing.feedback_clients, start + timing.feedback_seconds
    )
    seconds = time.monotonic() - start
    result = FeedbackResult(
        rows=timing.feedback_rows,
        predict_seconds=predict_seconds,
        labels_sent=sum(len(b) for b in batches[:sent]) if sent else 0,
        batches_sent=sent,
        batches_total=len(batches),
        acknowledged=acknowledged,
        failed_batches=failed,
        seconds=seconds,
        stored=labelled_rows(model.name),
        errors=errors[:5],
    )
    return result, batches
