"""Was each promotion a real improvement? Old and new champion on the same following rows.

Windowed accuracy before and after a promotion mixes the model with the data (on a drifting
stream the rows after are harder). Scoring the replaced champion and its successor on the very
rows the successor served removes that: both ONNX graphs are fetched after the stream (the
contract's `GET /v1/admin/models/{name}/versions/{v}/onnx`, or, while that route does not
exist, the content-addressed artifact in the run's own SQLite file, checked by its sha256)
and run here with onnxruntime, exactly as the server feeds them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.drift import metrics
from bench.drift.server import ADMIN_TOKEN, DriveError, Server
from bench.drift.streams import Row, Stream

NEXT = 2000  # rows after a promotion on which old and new are compared


def onnx_bytes(server: Server, model: str, version: dict[str, Any]) -> bytes:
    """The version's ONNX graph, checked against the sha256 the versions list gives."""
    digest = version["onnx_sha256"]
    path = f"/v1/admin/models/{model}/versions/{version['version']}/onnx"
    response = server.http.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    if response.status_code == 200:
        data = response.content
    else:
        db = server.home / "loopserve.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT data FROM artifacts WHERE sha256 = ?", (digest,)).fetchone()
        if row is None:
            raise DriveError(
                f"{model} v{version['version']}: no ONNX over HTTP "
                f"({response.status_code}) nor in {db}"
            )
        data = bytes(row[0])
    if hashlib.sha256(data).hexdigest() != digest:
        raise DriveError(f"{model} v{version['version']}: ONNX does not match its sha256")
    return data


def predict(graph: bytes, stream: Stream, rows: list[Row]) -> list[Any]:
    """The graph's labels (or values) for `rows`, one [n, 1] input per feature."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    feeds = {}
    for name, kind in stream.features.items():
        values = [r[name] for r in rows]
        if kind == "numeric":
            feeds[name] = np.array(values, dtype=np.float32).reshape(-1, 1)
        else:
            feeds[name] = np.array(values, dtype=object).reshape(-1, 1)
    output = "label" if stream.task == "classification" else "variable"
    (out,) = session.run([output], feeds)
    out = out.reshape(-1)
    return [str(v) for v in out] if stream.task == "classification" else out.astype(float).tolist()


def compare(
    server: Server, stream: Stream, promotions: list[dict[str, Any]], versions: list[dict]
) -> list[dict[str, Any]]:
    """For each promotion served during the stream: the old and the new champion's metric on
    the NEXT rows from the first row the new one served."""
    by_number = {v["version"]: v for v in versions}
    graphs: dict[int, bytes] = {}
    out = []
    for p in promotions:
        old, new, first = p.get("previous_version"), p["version"], p.get("first_served_row")
        if old is None or first is None or old not in by_number or new not in by_number:
            continue
        rows = stream.rows[first : first + NEXT]
        truth = [stream.y(r) for r in rows]
        scored = {}
        for v in (old, new):
            if v not in graphs:
                graphs[v] = onnx_bytes(server, stream.name, by_number[v])
            pred = predict(graphs[v], stream, [stream.x(r) for r in rows])
            scored[v] = metrics.metric(stream.task, metrics.scores(stream.task, truth, pred))
        out.append(
            {
                "version": new,
                "previous_version": old,
                "from_row": first,
                "rows": len(rows),
                "new": scored[new],
                "old": scored[old],
                "worse": not metrics.better_or_equal(stream.task, scored[new], scored[old]),
            }
        )
    return out
