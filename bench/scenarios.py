"""The two platform scenarios: a champion swap under load, and feedback ingest."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.config import ADMIN_TOKEN, Timing
from bench.load import Payload, run_wrk, v1_body
from bench.models import BenchModel
from bench.prepare import labelled_rows
from bench.record import Feedback, Promotion, Swap
from bench.servers import Server, wait_log_drained

JSON = {"content-type": "application/json"}
Labels = list[list[dict[str, str]]]  # batches of {"prediction_id", "label"}


def swap_under_load(server: Server, model: str, payload: Payload, timing: Timing) -> Swap:
    """A steady wrk run of single-row predicts at c16, then the same load while the admin API
    promotes v2, v1, v2, ... (ending on v1), a side client waiting for each to be served."""
    url = f"{server.url}/v1/models/{model}/predict"
    run_wrk(url, payload, connections=16, seconds=timing.warmup)
    steady = run_wrk(url, payload, connections=16, seconds=timing.duration)
    promotions: list[Promotion] = []
    side_failures = 0
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=10) as client:
        load = pool.submit(run_wrk, url, payload, connections=16, seconds=timing.swap_seconds)
        start = time.monotonic()
        time.sleep(1.5)
        slot = (timing.swap_seconds - 3.0) / timing.swaps
        for i in range(timing.swaps):
            version = 2 if i % 2 == 0 else 1
            t0 = time.monotonic()
            promote = {"version": version, "reason": "bench swap"}
            r = client.post(
                f"{server.url}/v1/admin/models/{model}/promote", json=promote, headers=auth
            )
            promoted, served = time.monotonic(), None
            while time.monotonic() - t0 < 10:
                p = client.post(url, content=payload.body, headers=JSON)
                if p.status_code != 200:
                    side_failures += 1
                elif (served := p.json().get("version")) == version:
                    break
                time.sleep(0.01)
            done = (time.monotonic() - t0) * 1000
            promotions.append(
                Promotion(version, r.status_code, (promoted - t0) * 1000, done, served)
            )
            time.sleep(max(0.0, start + 1.5 + (i + 1) * slot - time.monotonic()))
        during = load.result()
    return Swap(model, steady, during, promotions, side_failures)


def post_labels(
    url: str, batches: Labels, clients: int, deadline: float | None = None
) -> tuple[int, int, int, list[str]]:
    """POST label batches from `clients` threads until done or `deadline` (monotonic):
    acknowledged labels, batches sent, failed batches, errors."""

    def send(part: Labels) -> tuple[int, int, int, list[str]]:
        ok, sent, errors = 0, 0, []
        with httpx.Client(timeout=120) as c:
            for labels in part:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                r = c.post(url, json={"labels": labels})
                sent += 1
                if r.status_code == 202:
                    ok += int(r.json()["accepted"])
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
        return ok, sent, len(errors), errors

    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(send, [batches[i::clients] for i in range(clients)]))
    ok, sent, failed = (sum(d[0] for d in done), sum(d[1] for d in done), sum(d[2] for d in done))
    return ok, sent, failed, [e for d in done for e in d[3]]


def feedback_ingest(server: Server, model: BenchModel, timing: Timing) -> tuple[Feedback, Labels]:
    """Predict `feedback_rows` rows through v1 for their ids, then post their true labels:
    labels/s, and whether every acknowledged label is stored. Also returns the label batches,
    which a profile may post again (a relabel replaces, never adds)."""
    url, size = f"{server.url}/v1/models/{model.name}", timing.feedback_batch
    rows = [i % len(model.X) for i in range(timing.feedback_rows)]
    labelled: list[dict[str, str]] = []
    start = time.monotonic()
    with httpx.Client(timeout=60) as c:
        for lo in range(0, len(rows), size):
            chunk = rows[lo : lo + size]
            r = c.post(url + "/predict", content=v1_body(model.X[chunk]), headers=JSON)
            r.raise_for_status()
            ids = [p["id"] for p in r.json()["predictions"]]
            labelled += [
                {"prediction_id": i, "label": model.y[k]} for i, k in zip(ids, chunk, strict=True)
            ]
    predict_seconds = time.monotonic() - start
    batches = [labelled[i : i + size] for i in range(0, len(labelled), size)]
    wait_log_drained(server)
    start = time.monotonic()
    ok, sent, failed, errors = post_labels(
        url + "/feedback", batches, timing.feedback_clients, start + timing.feedback_seconds
    )
    seconds = time.monotonic() - start
    labels_sent = sum(len(b) for b in batches[:sent])
    result = Feedback(
        model.name,
        timing.feedback_rows,
        predict_seconds,
        labels_sent,
        sent,
        len(batches),
        ok,
        failed,
        seconds,
        labelled_rows(model.name),
        errors[:5],
    )
    return result, batches
