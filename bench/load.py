"""Request bodies, wrk runs and their parsing.

Each body is written to a file once with a Lua script that sets method, header and body once (no
per-request Lua, so wrk stays cheap) and prints its summary as one JSON line from `done`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.config import FEATURES, WORK
from bench.record import Wrk

PAYLOADS = WORK / "payloads"
LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def v1_body(X: np.ndarray) -> bytes:
    """loopserve v1: one object per row, every feature by name."""
    rows = [dict(zip(FEATURES, map(float, row), strict=True)) for row in X]
    return json.dumps({"instances": rows}, separators=(",", ":")).encode()


def v2_body(X: np.ndarray) -> bytes:
    """Open Inference Protocol V2: one FP32 tensor [N, 30], row-major flat data."""
    data = [float(v) for v in X.ravel()]
    tensor = {"name": "input", "datatype": "FP32", "shape": list(X.shape), "data": data}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Payload:
    """A body on disk and its wrk script."""

    body_path: Path
    script: Path

    @property
    def body(self) -> bytes:
        return self.body_path.read_bytes()


def write_payload(name: str, body: bytes) -> Payload:
    PAYLOADS.mkdir(parents=True, exist_ok=True)
    body_path = PAYLOADS / f"{name}.json"
    body_path.write_bytes(body)
    script = PAYLOADS / f"{name}.lua"
    script.write_text(LUA.format(body=body_path))
    return Payload(body_path, script)


def parse_wrk(stdout: str) -> Wrk:
    """The summary line our Lua `done` hook prints."""
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError("wrk gave no summary")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    socket_errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
    latency = [d[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "max_us")]
    return Wrk(d["requests"], d["duration_us"] / 1e6, d["status"], socket_errors, *latency)


def run_wrk(url: str, payload: Payload, *, connections: int, seconds: float) -> Wrk:
    """One wrk thread, `connections` connections, for `seconds` (whole seconds, at least 1)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    cmd += ["--latency", "-s", str(payload.script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    try:
        return parse_wrk(proc.stdout)
    except RuntimeError:
        why = f"wrk gave no summary (rc {proc.returncode}): {proc.stderr[-500:]}"
        raise RuntimeError(why) from None


def probe(url: str, payload: Payload) -> tuple[int, str]:
    """One request before a cell: its status and the start of the answer (to explain n/a)."""
    headers = {"content-type": "application/json"}
    try:
        r = httpx.post(url, content=payload.body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return r.status_code, r.text[:300]
