"""The in-process floor: onnxruntime alone, no HTTP, on the graphs loopserve serves.

It bounds what any server can reach with these models on one core: a server's r/s can never
beat calls/s here, and µs/call is the part of a request's latency that is the model itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from bench.models import BenchModel, single_input_onnx


@dataclass(frozen=True)
class CallRate:
    model: str
    graph: str
    rows: int
    calls_per_s: float
    us_per_call: float


def _session(onnx: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def measure(
    models: list[BenchModel], rows: tuple[int, ...], seconds: float = 1.5
) -> list[CallRate]:
    """session.run in a tight loop for `seconds` per model, graph and batch size."""
    out = []
    for m in models:
        graphs = {"served (one input per feature)": m.onnx, "one [N, 30] input": None}
        for graph, onnx in graphs.items():
            session = _session(onnx if onnx is not None else single_input_onnx(m))
            names = [i.name for i in session.get_inputs()]
            for n in rows:
                X = np.ascontiguousarray(m.X[:n], dtype=np.float32)
                if len(names) == 1:
                    feeds = {names[0]: X}
                else:
                    feeds = {
                        name: np.ascontiguousarray(X[:, i : i + 1]) for i, name in enumerate(names)
                    }
                out.append(CallRate(m.name, graph, n, *_rate(session, feeds, seconds)))
    return out


def _rate(
    session: ort.InferenceSession, feeds: dict[str, np.ndarray], seconds: float
) -> tuple[float, float]:
    for _ in range(20):  # warm up
        session.run(None, feeds)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            session.run(None, feeds)
        calls += 10
    return calls / elapsed, elapsed / calls * 1e6
