"""The HTTP floor: the least a Python server can do per request, as a raw ASGI callable.

orjson parses the body (a V2 tensor, or loopserve's v1 rows of `{feature: value}`, taken to list
the features in the graph's order), numpy shapes the matrix, one onnxruntime session with one
intra-op thread runs the very graph loopserve serves, orjson writes the answer: no framework,
validation, ids or log. It imports nothing heavier, so that its memory is the floor's too.

Run: BENCH_FLOOR_MODELS=dir uvicorn bench.floor_app:from_env --factory --interface asgi3
--loop uvloop --http httptools (dir holds NAME.onnx and NAME.classes.json; routes POST
/v2/models/NAME/infer, POST /v1/models/NAME/predict, GET /v2/models/NAME/ready).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


def session(onnx: bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


class Floor:
    def __init__(self, models: dict[str, tuple[bytes, list[str]]]) -> None:
        """`models`: name -> (ONNX graph, classes)."""
        self.models: dict[str, tuple[ort.InferenceSession, list[str], list[str]]] = {}
        for name, (onnx, classes) in models.items():
            s = session(onnx)
            self.models[name] = (s, [i.name for i in s.get_inputs()], classes)
        self.routes = {("v2", "infer"): self.infer, ("v1", "predict"): self.predict}

    def predict(self, name: str, body: bytes) -> bytes:
        """One v1 request: rows of `{feature: value}` in, a label and probabilities per row."""
        s, inputs, classes = self.models[name]
        x = np.array([list(row.values()) for row in orjson.loads(body)["instances"]], np.float32)
        labels, proba = s.run(None, {n: x[:, i : i + 1] for i, n in enumerate(inputs)})
        predictions = [
            {"label": label, "probabilities": dict(zip(classes, p, strict=True))}
            for label, p in zip(labels.tolist(), proba.tolist(), strict=True)
        ]
        return orjson.dumps({"model": name, "predictions": predictions})

    def infer(self, name: str, body: bytes) -> bytes:
        """One V2 request: a single [N, n_features] tensor in, label and probabilities out."""
        s, inputs, _ = self.models[name]
        tensor = orjson.loads(body)["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        labels, proba = s.run(None, {n: x[:, i : i + 1] for i, n in enumerate(inputs)})
        outputs = [
            {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels.tolist()},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": list(proba.shape),
                "data": proba.ravel(),
            },
        ]
        answer = {"model_name": name, "outputs": outputs}
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        parts = scope["path"].strip("/").split("/")
        known = len(parts) == 4 and parts[1] == "models" and parts[2] in self.models
        route = (parts[0], parts[3]) if known else ("", "")
        if route == ("v2", "ready"):
            return await _respond(send, 200, b"{}")
        handler = self.routes.get(route)
        if handler is None or scope["method"] != "POST":
            return await _respond(send, 404, b'{"error":"not found"}')
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            out = handler(parts[2], b"".join(chunks))
        except Exception as exc:  # a floor answers every bad body the same way
            return await _respond(send, 422, orjson.dumps({"error": str(exc)}))
        await _respond(send, 200, out)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


def from_env() -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    """The app uvicorn serves: the models of the folder BENCH_FLOOR_MODELS names."""
    onnx = sorted(Path(os.environ["BENCH_FLOOR_MODELS"]).glob("*.onnx"))
    classes = [orjson.loads(p.with_suffix(".classes.json").read_bytes()) for p in onnx]
    return Floor({p.stem: (p.read_bytes(), c) for p, c in zip(onnx, classes, strict=True)}).app
