"""The HTTP floor: the least a Python server can do per request, as a raw ASGI callable.

orjson parses the body (a V2 tensor, or loopserve's v1 rows of `{feature: value}`), numpy
shapes the matrix, one onnxruntime session (one intra-op thread) runs the very graph loopserve
serves, orjson writes the answer. No framework, no validation (v1 rows are taken to list their
features in the graph's order), no ids, no logging: what is left is uvicorn + httptools +
uvloop + the model itself, on the same bodies loopserve gets.

Run: BENCH_FLOOR_MODELS=dir uvicorn bench.floor_app:app --loop uvloop --http httptools
(dir holds NAME.onnx and NAME.classes.json files; routes: POST /v2/models/NAME/infer,
POST /v1/models/NAME/predict, GET /v2/models/NAME/ready).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]


def _load(folder: Path) -> dict[str, tuple[ort.InferenceSession, list[str], list[str]]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {}
    for path in sorted(folder.glob("*.onnx")):
        session = ort.InferenceSession(
            path.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        classes = orjson.loads(path.with_suffix(".classes.json").read_bytes())
        sessions[path.stem] = (session, [i.name for i in session.get_inputs()], classes)
    return sessions


SESSIONS = _load(Path(os.environ.get("BENCH_FLOOR_MODELS", ".")))


def predict(name: str, body: bytes) -> bytes:
    """One v1 request: rows of `{feature: value}` in, a label and probabilities per row out."""
    session, inputs, classes = SESSIONS[name]
    x = np.array([list(row.values()) for row in orjson.loads(body)["instances"]], np.float32)
    labels, proba = session.run(None, {n: x[:, i : i + 1] for i, n in enumerate(inputs)})
    predictions = [
        {"label": label, "probabilities": dict(zip(classes, p, strict=True))}
        for label, p in zip(labels.tolist(), proba.tolist(), strict=True)
    ]
    return orjson.dumps({"model": name, "predictions": predictions})


def infer(name: str, body: bytes) -> bytes:
    """One V2 request: a single [N, n_features] tensor in, label and probabilities out."""
    session, inputs, _ = SESSIONS[name]
    tensor = orjson.loads(body)["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    feeds = {n: x[:, i : i + 1] for i, n in enumerate(inputs)}
    labels, proba = session.run(None, feeds)
    return orjson.dumps(
        {
            "model_name": name,
            "outputs": [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [len(labels)],
                    "data": labels.tolist(),
                },
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(proba.shape),
                    "data": proba.ravel(),
                },
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


ROUTES: dict[tuple[str, str] | None, Callable[[str, bytes], bytes]] = {
    ("v2", "infer"): infer,
    ("v1", "predict"): predict,
}


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")
    known = len(parts) == 4 and parts[1] == "models" and parts[2] in SESSIONS
    route = (parts[0], parts[3]) if known else None
    if route == ("v2", "ready"):
        await _respond(send, 200, b"{}")
        return
    handler = ROUTES.get(route)
    if handler is None or scope["method"] != "POST":
        await _respond(send, 404, b'{"error":"not found"}')
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        out = handler(parts[2], b"".join(chunks))
    except Exception as exc:  # a floor answers every bad body the same way
        await _respond(send, 422, orjson.dumps({"error": str(exc)}))
        return
    await _respond(send, 200, out)
