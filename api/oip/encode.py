"""V2 responses and metadata: tensors as JSON or as binary data behind a JSON header."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from api.champions import LoadedModel
from api.dataplane import Served
from api.oip.decode import InferRequest, outputs_of
from api.schemas import ModelMetadata, ServerMetadata, TensorMetadata

SERVER = ServerMetadata(name="loopserve", version="0.1.0", extensions=["binary_tensor_data"])


def metadata(model: LoadedModel) -> ModelMetadata:
    """What is served: one input per feature, the outputs of `outputs()`; -1 is the batch."""
    inputs = [
        TensorMetadata(
            name=f.name, datatype="FP32" if f.type == "numeric" else "BYTES", shape=[-1, 1]
        )
        for f in model.spec.features
    ]
    outputs = [
        TensorMetadata(name=n, datatype=d, shape=s) for n, (d, s) in outputs_of(model).items()
    ]
    return ModelMetadata(
        name=model.name,
        versions=[str(model.version)],
        platform="onnxruntime_onnx",
        inputs=inputs,
        outputs=outputs,
    )


def encode(served: Served, request: InferRequest) -> tuple[bytes, dict[str, str]]:
    """The response body and headers; binary outputs follow the JSON header when asked for."""
    model = served.model
    known = outputs_of(model)  # what is wanted was checked against these (decode_infer)
    wanted = (
        request.outputs if request.outputs is not None else dict.fromkeys(known, request.binary_all)
    )
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
