"""V2 responses and metadata: tensors as JSON or as binary data behind a JSON header."""

from __future__ import annotations

import struct
from typing import Any, Literal

import numpy as np
import orjson

from api.champions import LoadedModel
from api.dataplane import Served
from api.oip.decode import InferRequest, ProtocolError
from api.schemas import ModelMetadata, ServerMetadata, TensorMetadata

SERVER = ServerMetadata(name="loopserve", version="0.1.0", extensions=["binary_tensor_data"])
Datatype = Literal["FP32", "BYTES"]


def metadata(model: LoadedModel) -> ModelMetadata:
    """What is served: one input per feature, the outputs of `outputs()`; -1 is the batch."""
    inputs = [
        TensorMetadata(
            name=f.name, datatype="FP32" if f.type == "numeric" else "BYTES", shape=[-1, 1]
        )
        for f in model.spec.features
    ]
    outputs = [TensorMetadata(name=n, datatype=d, shape=s) for n, (d, s) in _outputs(model).items()]
    return ModelMetadata(
        name=model.name,
        versions=[str(model.version)],
        platform="onnxruntime_onnx",
        inputs=inputs,
        outputs=outputs,
    )


def _outputs(model: LoadedModel) -> dict[str, tuple[Datatype, list[int]]]:
    out: dict[str, tuple[Datatype, list[int]]]
    if model.spec.task == "regression":
        out = {"variable": ("FP32", [-1, 1])}
    else:
        out = {"label": ("BYTES", [-1]), "probabilities": ("FP32", [-1, len(model.classes or [])])}
    return out | {"prediction_id": ("BYTES", [-1])}


def encode(served: Served, request: InferRequest) -> tuple[bytes, dict[str, str]]:
    """The response body and headers; binary outputs follow the JSON header when asked for."""
    model = served.model
    known = _outputs(model)
    wanted = (
        request.outputs if request.outputs is not None else dict.fromkeys(known, request.binary_all)
    )
    if not wanted.keys() <= known.keys():
        unknown = sorted(set(wanted) - set(known))
        raise ProtocolError(f"unknown outputs {unknown}; this model has {sorted(known)}")
    outputs, blobs = [], []
    for name, binary in wanted.items():
        datatype = known[name][0]
        values = _values(name, served)
        shape = [len(values)] if isinstance(values, list) else list(values.shape)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = _to_bytes(datatype, values)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif isinstance(values, list):
            entry["data"] = values
        else:  # orjson writes numeric arrays itself, without a list of Python floats
            entry["data"] = values.reshape(-1).tolist() if datatype == "BYTES" else values.ravel()
        outputs.append(entry)
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(model.version),
        "outputs": outputs,
    }
    if request.id is not None:
        body["id"] = request.id
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


def _values(name: str, served: Served) -> np.ndarray | list[str]:
    if name == "label":
        labels = served.labels
        return labels if labels.dtype == object else labels.astype(str)
    if name == "probabilities":
        return np.asarray(served.proba, dtype=np.float32)
    if name == "variable":
        return served.labels.astype(np.float32).reshape(-1, 1)
    return served.ids  # prediction_id


def _to_bytes(datatype: str, array: np.ndarray | list[str]) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in array if isinstance(array, list) else array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=np.dtype(np.float32).newbyteorder("<")).tobytes()
