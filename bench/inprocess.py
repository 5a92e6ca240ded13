"""In-process timings, no HTTP: onnxruntime alone on the bench graphs, and each stage of
loopserve's request path beside the floor app's whole request on the same body.

`python -m bench.inprocess [rates|stages|threads]` prints one table alone; `threads` times one
against two intra-op threads, for LOOPSERVE_ONNX_THREADS.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import astuple

import numpy as np
import onnxruntime as ort

# loopserve's own request stages, timed one by one: the bench's only use of api/ internals.
from api import codec
from api.champions import load_model
from api.dataplane import Served
from api.oip import decode, encode
from api.predlog import Chunk, Part
from bench.config import CLASSES, ROW_COUNTS
from bench.floor_app import Floor, session
from bench.load import v1_body, v2_body
from bench.models import BenchModel, build_models, single_input_onnx, spec_for
from bench.record import CallRate, Stage
from bench.report import FLOOR_STAGE, LOG_STAGE, table
from registry.predlog.ids import prediction_ids


def _rate(s: ort.InferenceSession, X: np.ndarray, seconds: float) -> tuple[float, float]:
    """Calls/s and µs per call of `s.run` on the rows X, after a warm-up."""
    names = [i.name for i in s.get_inputs()]
    X = np.ascontiguousarray(X, dtype=np.float32)
    one = len(names) == 1  # one [N, 30] input, or one [N, 1] input per feature
    feeds = {n: X if one else np.ascontiguousarray(X[:, i : i + 1]) for i, n in enumerate(names)}
    for _ in range(20):
        s.run(None, feeds)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            s.run(None, feeds)
        calls += 10
    return calls / elapsed, elapsed / calls * 1e6


def call_rates(
    models: list[BenchModel], rows: tuple[int, ...], seconds: float = 1.5, threads: int = 1
) -> list[CallRate]:
    """The served graph (one input per feature) and, with one thread, the same pipeline
    exported with one [N, 30] input."""
    out = []
    for m in models:
        graphs = {"served (one input per feature)": m.onnx}
        if threads == 1:
            graphs["one [N, 30] input"] = single_input_onnx(m)
        for graph, onnx in graphs.items():
            s = session(onnx, threads)
            out += [CallRate(m.name, graph, n, *_rate(s, m.X[:n], seconds)) for n in rows]
    return out


def _median_us(fn: Callable[[], object], seconds: float) -> float:
    """Median µs per call over 9 batches of calls, each about `seconds` / 10 long."""
    fn()
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < seconds / 10:
        fn()
        calls += 1
    samples = []
    for _ in range(9):
        t = time.perf_counter()
        for _ in range(max(1, calls)):
            fn()
        samples.append((time.perf_counter() - t) / max(1, calls) * 1e6)
    return statistics.median(samples)


def _calls(m: BenchModel, n: int, floor: Floor) -> dict[str, dict[str, Callable[[], object]]]:
    """Each stage of a v1 and of a V2 request on n rows, as a call of loopserve's own function,
    and the floor app's whole request; V2 shares v1's ONNX run, ids and log serialisation."""
    sha = hashlib.sha256(m.onnx).hexdigest()
    model = load_model(m.name, 1, 1, spec_for(m.name), list(CLASSES), m.onnx, sha, 1)
    v1, v2 = v1_body(m.X[:n]), v2_body(m.X[:n])
    instances = codec.typed_instances(model, v1)
    assert instances is not None, "the typed v1 decoder refused the bench body"
    columns = codec.instance_columns(model, instances)
    assert columns is not None
    labels, proba = model.run(columns)
    served = Served(model, prediction_ids("0" * 24, n), labels, proba)
    chunk = Chunk(model.model_id, model.version)
    chunk.parts.append(Part(columns, labels, proba))
    chunk.rows = n
    request = decode.parse(v2, None)
    shared: dict[str, Callable[[], object]] = {
        "ONNX run (with feeds)": lambda: model.run(columns),
        "prediction ids": lambda: prediction_ids("0" * 24, n),
        LOG_STAGE: chunk.record,
    }
    return {
        "v1": {
            "parse JSON": lambda: codec.typed_instances(model, v1),  # and checks every value
            "validate into columns": lambda: codec.instance_columns(model, instances),
            "encode": lambda: codec.encode_predictions(m.name, served),
            FLOOR_STAGE: lambda: floor.predict(m.name, v1),
            **shared,
        },
        "v2": {
            "parse JSON": lambda: decode.parse(v2, None),
            "validate into columns": lambda: decode.to_columns(model, request),
            "encode": lambda: encode.encode(served, request),
            FLOOR_STAGE: lambda: floor.infer(m.name, v2),
            **shared,
        },
    }


def stages(models: list[BenchModel], rows: tuple[int, ...], seconds: float = 1.0) -> list[Stage]:
    """Median µs of every stage (a stage V2 shares with v1 is timed once)."""
    floor = Floor({m.name: (m.onnx, CLASSES) for m in models})
    out = []
    for m in models:
        for n in rows:
            calls = _calls(m, n, floor)
            unique = dict.fromkeys(fn for c in calls.values() for fn in c.values())
            timed = {fn: _median_us(fn, seconds) for fn in unique}
            for proto, c in calls.items():
                out += [Stage(m.name, proto, n, stage, timed[fn]) for stage, fn in c.items()]
    return out


def tables(what: str, models: list[BenchModel], seconds: float = 1.5) -> list[str]:
    """One table alone: `rates` (the in-process floor), `threads` (1 vs 2 intra-op threads on
    the served graph) or `stages`."""
    if what == "rates":
        found = call_rates(models, ROW_COUNTS, seconds)
        rows = [[r.model, r.graph, r.rows, f"{r.calls_per_s:,.0f}", r.us_per_call] for r in found]
        return table("model | graph | rows | calls/s | µs per call", rows)
    if what == "threads":
        rates = [(r, t) for t in (1, 2) for r in call_rates(models, ROW_COUNTS, seconds, t)]
        rows = sorted([r.model, t, r.rows, r.us_per_call] for r, t in rates if "served" in r.graph)
        return table("model | threads | rows | µs per call", rows)
    timed = stages(models, ROW_COUNTS, seconds)
    return table("model | rows | protocol | stage | µs", [astuple(s) for s in timed])


if __name__ == "__main__":
    print("\n".join(tables(sys.argv[1] if sys.argv[1:] else "stages", build_models(print))))
