"""Versions trained elsewhere, checked against a model's spec before the platform judges them.

A file is one of:

- a scikit-learn Pipeline saved with skops (a zip file): loaded with tuning.persist's allow-list
  (never unpickled), it must predict the model's feature frame, with the model's classes for a
  classifier; it is exported with tuning.export.to_onnx and must pass check_parity on the rows
  given, as every trained challenger must;
- an ONNX graph: it must load in onnxruntime, hold all its tensors in the file, and keep
  tuning.export's contract (one input per feature, named as the feature, [N, 1], float for a
  numeric feature and string for a categorical one; outputs `label` and `probabilities`, or
  `variable`; metadata that, where present, agrees with the spec). A graph has no pipeline to
  be compared with: on the rows given it must run, answer finite values, and a classifier's
  labels must be the classes its probabilities rank first. Inputs out of the spec's order and
  missing metadata are put right, so the graph stored is one tuning.export.OnnxModel and the
  serving replicas read as they read their own.

Everything refused is refused with a `Refused` naming each thing that differs.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx.external_data_helper import uses_external_data
from sklearn.pipeline import Pipeline

from tuning import persist
from tuning.data import MISSING
from tuning.export import (
    LABEL,
    PROBABILITIES,
    VARIABLE,
    OnnxModel,
    ParityReport,
    Prediction,
    check_parity,
    predict_sklearn,
    to_onnx,
)
from tuning.spec import ModelSpec

ZIP_MAGIC = b"PK\x03\x04"  # a skops file is a zip archive; an ONNX graph is a protobuf
# The most a skops file may unpack to: a zip of a few megabytes must not fill the memory.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
PROBE_ROWS = 1000  # the newest labelled rows a file is checked on
TYPES = {"numeric": "tensor(float)", "categorical": "tensor(string)"}

Format = Literal["onnx", "skops"]


class Refused(ValueError):
    """The file is not a version of this model: `problems` names each thing that differs."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ModelFile:
    """A file that passed every check, ready to be judged and registered."""

    format: Format
    onnx: bytes  # the graph to store and serve
    pipeline: Pipeline | None  # a skops file's pipeline
    classes: list[str] | None  # a classifier's classes, in the order of its probabilities
    parity: ParityReport | None  # a skops file's pipeline against its export
    checks: list[str]  # what was checked, one sentence each
    about: dict[str, Any] = field(default_factory=dict)  # what the file says it is


def file_format(data: bytes) -> Format:
    return "skops" if data.startswith(ZIP_MAGIC) else "onnx"


def read(data: bytes, spec: ModelSpec, classes: list[str] | None, X: pd.DataFrame) -> ModelFile:
    """Check a file against the spec and the model's known `classes` (None: not known yet),
    running it on the feature frame `X` (see `probe_frame`)."""
    if not data:
        raise Refused(["the file is empty"])
    if file_format(data) == "skops":
        return read_skops(data, spec, classes, X)
    return read_onnx(data, spec, classes, X)


def probe_frame(spec: ModelSpec, X: pd.DataFrame | None) -> pd.DataFrame:
    """The frame a file is run on: the newest PROBE_ROWS labelled rows when the model has any,
    and two rows of zeros and missing values besides (what serving feeds a graph when it
    loads it, and the values every graph must impute)."""
    made = {
        f.name: (
            pd.Series([0.0, np.nan], dtype=np.float64)
            if f.type == "numeric"
            else pd.Series([MISSING, MISSING], dtype=object)
        )
        for f in spec.features
    }
    synthetic = pd.DataFrame(made, columns=spec.feature_names)
    if X is None or len(X) == 0:
        return synthetic
    return pd.concat([X.iloc[-PROBE_ROWS:], synthetic], ignore_index=True)


# --- skops ----------------------------------------------------------------------------------


def read_skops(
    data: bytes, spec: ModelSpec, classes: list[str] | None, X: pd.DataFrame
) -> ModelFile:
    _bounded_zip(data)
    try:
        pipeline = persist.loads(data)
    except persist.UntrustedModelError as exc:
        raise Refused([f"the skops file is refused: {exc}"]) from exc
    except Exception as exc:  # not a skops archive, or one skops cannot read
        raise Refused([f"the skops file does not load: {_why(exc)}"]) from exc
    estimator = pipeline.steps[-1][1] if pipeline.steps else None
    problems = []
    if spec.task == "classification":
        found = getattr(estimator, "classes_", None)
        if found is None:
            problems.append(
                f"its last step ({type(estimator).__name__}) is not a fitted classifier "
                "(it has no classes_); the model is a classification"
            )
        else:
            names = [str(c) for c in found]
            if not all(isinstance(c, str) for c in found):
                problems.append(
                    f"its classes {_list(names)} are not strings: fit it on "
                    "tuning.data.target(spec, labels)"
                )
            elif classes is not None and names != sorted(classes):
                problems.append(
                    f"its classes {_list(names)} differ from the model's {_list(classes)}"
                )
    elif hasattr(estimator, "classes_"):
        problems.append(
            f"its last step ({type(estimator).__name__}) is a classifier; the model is a regression"
        )
    if problems:
        raise Refused(problems)
    try:
        expected = predict_sklearn(pipeline, X)
    except Exception as exc:
        raise Refused([f"it does not predict the model's feature frame: {_why(exc)}"]) from exc
    _check_prediction(spec, expected, len(X))
    try:
        graph = to_onnx(pipeline, spec)
    except Exception as exc:
        raise Refused([f"it cannot be exported to ONNX (tuning.export): {_why(exc)}"]) from exc
    parity = check_parity(pipeline, graph, spec, X)
    if not parity.ok:
        raise Refused([f"its ONNX export does not reproduce it: {parity.reason}"])
    steps = [f"{name}: {type(step).__name__}" for name, step in pipeline.steps]
    return ModelFile(
        "skops",
        graph,
        pipeline,
        expected.classes,
        parity,
        [
            "loaded with the allow-list of tuning.persist (never unpickled)",
            f"predicts the model's feature frame ({len(X)} rows)",
            f"exported to ONNX; parity: {parity.reason}",
        ],
        {"steps": steps, "family": type(estimator).__name__},
    )


def _bounded_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Refused([f"the skops file is not a readable zip archive: {_why(exc)}"]) from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise Refused(
            [f"the skops file unpacks to {unpacked} bytes, over {MAX_UNPACKED_BYTES} bytes"]
        )


# --- ONNX -----------------------------------------------------------------------------------


def read_onnx(
    data: bytes, spec: ModelSpec, classes: list[str] | None, X: pd.DataFrame
) -> ModelFile:
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:
        raise Refused(
            [f"the file is neither a skops file (a zip archive) nor an ONNX model: {_why(exc)}"]
        ) from exc
    external = sorted({t.name for t in _tensors(proto) if uses_external_data(t)})
    if external:
        raise Refused([f"tensors stored outside the file are refused: {_list(external)}"])
    try:
        session = _session(data)
    except Exception as exc:
        raise Refused([f"onnxruntime does not load the ONNX model: {_why(exc)}"]) from exc
    meta = dict(session.get_modelmeta().custom_metadata_map)
    problems = _inputs(session, spec) + _outputs(session, spec) + _metadata(meta, spec)
    graph_classes: list[str] | None = None
    if spec.task == "classification":
        graph_classes = _classes(meta, classes, session, problems)
    if problems:
        raise Refused(problems)
    stored = _normalised(proto, data, spec, graph_classes, meta)
    try:
        got = OnnxModel(stored, spec).predict(X)
    except Exception as exc:
        raise Refused([f"the ONNX model does not run on the model's inputs: {_why(exc)}"]) from exc
    _check_prediction(spec, got, len(X))
    checks = [
        "loaded by onnxruntime, every tensor in the file",
        "inputs, outputs and metadata as tuning.export writes them",
        f"runs on the model's feature frame ({len(X)} rows) with finite answers",
    ]
    if spec.task == "classification":
        checks.append("its labels are the classes its probabilities rank first, on every row")
    if stored != data:
        checks.append("inputs put in the spec's order and loopserve metadata written")
    about: dict[str, Any] = {
        "producer": " ".join(filter(None, (proto.producer_name, proto.producer_version))),
        "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
    }
    return ModelFile("onnx", stored, None, graph_classes, None, checks, about)


def _session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor the model holds: initializers and constant attributes, in subgraphs and
    functions too."""

    def of_nodes(nodes: Any) -> Iterator[onnx.TensorProto]:
        for node in nodes:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    yield from of_graph(a.g)
                for g in a.graphs:
                    yield from of_graph(g)

    def of_graph(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from of_nodes(graph.node)

    yield from of_graph(model.graph)
    for function in model.functions:
        yield from of_nodes(function.node)


def _inputs(session: ort.InferenceSession, spec: ModelSpec) -> list[str]:
    """What differs between the graph's inputs and the spec's features."""
    problems = []
    found = {i.name: i for i in session.get_inputs()}
    missing = [f for f in spec.feature_names if f not in found]
    extra = [name for name in found if name not in spec.feature_names]
    if missing:
        problems.append(f"no input for the feature(s) {_list(missing)}")
    if extra:
        problems.append(f"input(s) {_list(extra)} are not features of the model")
    for f in spec.features:
        arg = found.get(f.name)
        if arg is None:
            continue
        if arg.type != TYPES[f.type]:
            problems.append(
                f"input {f.name!r} is {arg.type}; the {f.type} feature needs {TYPES[f.type]}"
            )
        shape = list(arg.shape or [])
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != 1):
            problems.append(f"input {f.name!r} has shape {_shape(shape)}; it must be [N, 1]")
    return problems


def _outputs(session: ort.InferenceSession, spec: ModelSpec) -> list[str]:
    """What differs between the graph's outputs and the contract's for the task."""
    if spec.task == "classification":
        wanted = {LABEL: "tensor(string)", PROBABILITIES: "tensor(float)"}
    else:
        wanted = {VARIABLE: "tensor(float)"}
    found = {o.name: o for o in session.get_outputs()}
    problems = []
    if set(found) != set(wanted):
        problems.append(
            f"outputs are {_list(list(found))}; a {spec.task} model has exactly "
            f"{_list(list(wanted))}"
        )
    for name, kind in wanted.items():
        out = found.get(name)
        if out is not None and out.type != kind:
            problems.append(f"output {name!r} is {out.type}; it must be {kind}")
    return problems


def _metadata(meta: dict[str, str], spec: ModelSpec) -> list[str]:
    """Metadata the graph carries must agree with the spec (absent metadata is written)."""
    problems = []
    task = meta.get("loopserve.task")
    if task is not None and task != spec.task:
        problems.append(f"it was exported for a {task[:32]} model; the model is a {spec.task}")
    features = meta.get("loopserve.features")
    if features is not None:
        try:
            named = json.loads(features)
        except ValueError:
            named = None
        if named != spec.feature_names:
            problems.append(
                f"its loopserve.features metadata {_clip(features)} is not the spec's "
                f"{_list(spec.feature_names)}"
            )
    return problems


def _classes(
    meta: dict[str, str],
    known: list[str] | None,
    session: ort.InferenceSession,
    problems: list[str],
) -> list[str] | None:
    """The graph's classes: its loopserve.classes metadata, else the model's known classes
    (in sorted order, as the contract has the probabilities' columns); each must be the
    other's where both exist, and their number the width of `probabilities`."""
    written = meta.get("loopserve.classes")
    classes: list[str] | None = None
    if written is not None:
        try:
            parsed = json.loads(written)
        except ValueError:
            parsed = None
        if not (isinstance(parsed, list) and parsed and all(isinstance(c, str) for c in parsed)):
            problems.append(
                f"its loopserve.classes metadata {_clip(written)} is not a list of names"
            )
            return None
        classes = parsed
        if known is not None and classes != sorted(known):
            problems.append(
                f"its classes {_list(classes)} differ from the model's {_list(sorted(known))}"
            )
    elif known:
        classes = sorted(known)
    else:
        problems.append(
            "it has no loopserve.classes metadata and the model knows no classes yet: upload "
            "labelled rows first, or declare the classes in the spec"
        )
        return None
    width = {o.name: o for o in session.get_outputs()}.get(PROBABILITIES)
    shape = list(width.shape or []) if width is not None else []
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] != len(classes):
        problems.append(
            f"output 'probabilities' has {shape[1]} columns for the {len(classes)} classes "
            f"{_list(classes)}"
        )
    return classes


def _normalised(
    proto: onnx.ModelProto,
    data: bytes,
    spec: ModelSpec,
    classes: list[str] | None,
    meta: dict[str, str],
) -> bytes:
    """The graph with its inputs in the spec's order and the loopserve metadata written; the
    file itself when it has both already."""
    props = {
        "loopserve.task": spec.task,
        "loopserve.features": json.dumps(spec.feature_names),
        **({"loopserve.classes": json.dumps(classes)} if classes is not None else {}),
    }
    order = [i.name for i in proto.graph.input if i.name in spec.feature_names]
    if order == spec.feature_names and all(k in meta for k in props):
        return data
    by_name = {i.name: i for i in proto.graph.input}
    inputs = [by_name[name] for name in spec.feature_names]
    inputs += [i for i in proto.graph.input if i.name not in spec.feature_names]
    copied = [onnx.ValueInfoProto.FromString(i.SerializeToString()) for i in inputs]
    del proto.graph.input[:]
    proto.graph.input.extend(copied)
    onnx.helper.set_model_props(proto, {**meta, **props})
    return proto.SerializeToString()


# --- both -----------------------------------------------------------------------------------


def _check_prediction(spec: ModelSpec, got: Prediction, n: int) -> None:
    """Answers of the right length, finite, and a classifier's labels agreeing with its
    probabilities."""
    problems = []
    labels = np.asarray(got.labels).ravel()
    if len(labels) != n:
        problems.append(f"it answered {len(labels)} labels for {n} rows")
    elif spec.task == "regression":
        values = np.asarray(labels, dtype=np.float64)
        bad = int(np.sum(~np.isfinite(values)))
        if bad:
            problems.append(f"it answered {bad} non-finite values on {n} rows")
    else:
        classes, proba = got.classes or [], got.proba
        if proba is None or proba.shape != (n, len(classes)):
            shape = None if proba is None else list(proba.shape)
            problems.append(f"its probabilities have shape {shape}, not [{n}, {len(classes)}]")
        elif not np.all(np.isfinite(proba)):
            problems.append("it answered non-finite probabilities")
        else:
            index = {c: i for i, c in enumerate(classes)}
            unknown = sorted({str(v) for v in labels if v not in index})
            if unknown:
                problems.append(f"it answered labels that are not its classes: {_list(unknown)}")
            else:
                chosen = proba[np.arange(n), [index[v] for v in labels]]
                disagree = int(np.sum(chosen < proba.max(axis=1) - 1e-6))
                if disagree:
                    problems.append(
                        f"on {disagree} of {n} rows its label is not the class its "
                        f"probabilities rank first (columns must be in the order "
                        f"{_list(classes)})"
                    )
    if problems:
        raise Refused(problems)


def _list(names: list[str]) -> str:
    shown = ", ".join(repr(_clip(str(n))) for n in names[:8])
    return f"[{shown}{', …' if len(names) > 8 else ''}]"


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _shape(shape: list[Any]) -> str:
    return "[" + ", ".join("N" if not isinstance(d, int) else str(d) for d in shape) + "]"


def _why(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return _clip(f"{type(exc).__name__}: {text}", 300)


__all__ = ["ModelFile", "Refused", "file_format", "probe_frame", "read"]
