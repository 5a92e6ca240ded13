"""Request bodies, wrk Lua scripts and wrk runs.

Each payload is written to a file once; its Lua script sets the method, header and body
globally (no per-request Lua, so wrk stays cheap) and prints the summary as one JSON line from
`done`, which is parsed instead of wrk's human-readable text.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.config import FEATURES, WORK

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
    tensor = {
        "name": "input",
        "datatype": "FP32",
        "shape": list(X.shape),
        "data": [float(v) for v in X.ravel()],
    }
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


@dataclass
class WrkResult:
    """One wrk run; rps counts only 2xx responses."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rps": self.rps}


def run_wrk(
    url: str, payload: Payload, *, connections: int, seconds: float, threads: int = 1
) -> WrkResult:
    """Run wrk once against one URL and parse the JSON line of its `done` hook."""
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(payload.script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary (rc {proc.returncode}): {proc.stderr[-500:]}")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        non_2xx=d["status"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
    )


def probe(url: str, payload: Payload, timeout: float = 30.0) -> tuple[int, str]:
    """One request before a cell: its status and the start of the body (to explain n/a)."""
    try:
        r = httpx.post(
            url,
            content=payload.body,
            headers={"content-type": "application/json"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return r.status_code, r.text[:300]
