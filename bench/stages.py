"""Where one request's CPU goes: each stage of loopserve's serving path, and the floor app's
whole request, timed in-process on the bench bodies with loopserve's own functions.

No HTTP and no concurrency: what is left is the Python work a request costs on the core that
holds the GIL, which is what bounds a single process. The report sets the stages beside the
floor to say where a missed ratio goes.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from api import codec
from api.dataplane import Served
from api.oip import decode, encode
from api.predlog import Chunk, Part
from api.serving import LoadedModel, load_model
from bench.config import V1_FLOOR
from bench.load import v1_body, v2_body
from bench.models import CLASSES, BenchModel, spec_for
from bench.servers import floor_models
from registry.predlog.ids import prediction_ids


@dataclass(frozen=True)
class Stage:
    model: str
    protocol: str  # v1, v2 or floor
    rows: int
    stage: str
    us: float  # median µs per call


def _time(fn: Callable[[], object], seconds: float) -> float:
    """Median µs per call over batches of calls filling about `seconds`."""
    fn()
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < seconds / 10:
        fn()
        calls += 1
    per_batch = max(1, calls)
    samples = []
    for _ in range(9):
        t = time.perf_counter()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter() - t) / per_batch * 1e6)
    return statistics.median(samples)


def measure(models: list[BenchModel], rows: tuple[int, ...], seconds: float = 1.0) -> list[Stage]:
    os.environ["BENCH_FLOOR_MODELS"] = str(floor_models(models))
    floor = importlib.import_module("bench.floor_app")
    out: list[Stage] = []
    for m in models:
        sha = hashlib.sha256(m.onnx).hexdigest()
        model = load_model(m.name, 1, 1, spec_for(m.name), list(CLASSES), m.onnx, sha, 1)
        for n in rows:
            out += _stages(m, model, n, floor, seconds)
    return out


def _stages(
    m: BenchModel,
    model: LoadedModel,
    n: int,
    floor: ModuleType,
    seconds: float,
) -> list[Stage]:
    v1, v2 = v1_body(m.X[:n]), v2_body(m.X[:n])
    instances = codec.typed_instances(model, v1)
    assert instances is not None
    columns = codec.instance_columns(model, instances)
    assert columns is not None
    labels, proba = model.run(columns)
    served = Served(model, prediction_ids("0" * 24, n), labels, proba)
    chunk = Chunk(model.model_id, model.version)
    chunk.parts.append(Part(columns, labels, proba))
    chunk.rows = n
    request = decode.parse(v2, None)
    calls: list[tuple[str, str, Callable[[], object]]] = [
        ("v1", "parse JSON", lambda: codec.typed_instances(model, v1)),  # and check types
        ("v1", "validate into columns", lambda: codec.instance_columns(model, instances)),
        ("v1", "ONNX run (with feeds)", lambda: model.run(columns)),
        ("v1", "prediction ids", lambda: prediction_ids("0" * 24, n)),
        ("v1", "encode", lambda: codec.encode_predictions(m.name, served)),
        ("v1", "log: serialise (log thread)", chunk.record),
        ("v2", "parse JSON", lambda: decode.parse(v2, None)),
        ("v2", "validate into columns", lambda: decode.to_columns(model, request)),
        ("v2", "encode", lambda: encode.encode(served, request)),
        ("floor", "whole request", lambda: floor.infer(m.name, v2)),
        ("floor", V1_FLOOR, lambda: floor.predict(m.name, v1)),
    ]
    return [Stage(m.name, p, n, stage, _time(fn, seconds)) for p, stage, fn in calls]


if __name__ == "__main__":
    from bench.models import build_models

    for s in measure(build_models(print), (1, 1000)):
        print(f"{s.model} rows={s.rows} {s.protocol:5s} {s.stage:30s} {s.us:10.1f} µs")
