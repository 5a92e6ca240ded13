"""Start, watch and stop the servers under test, one process tree each, on free ports.

Each server runs in its own session (process group) so that stopping it also stops the workers
it spawned (MLServer's inference pool), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.config import ADMIN_TOKEN, CLASSES, DB_URL, LOOPSERVE_VENV, MLSERVER_VENV, ROOT, WORK
from bench.models import BenchModel

LOGS = WORK / "logs"
_EXCEPTION = re.compile(r"^[\w.]+(Error|Exception|Warning)\b.*$")
_starts: dict[str, int] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The harness's environment without LOOPSERVE_*/MLSERVER_* leaking into a server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSERVE_", "MLSERVER_"))}
    env.update(extra)
    return env


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """One running server process tree."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        tree, out, todo = _children(), [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(tree.get(pid, []))
        return out

    def rss_mib(self) -> tuple[float, int]:
        """VmRSS summed over the process and its descendants, and how many processes."""
        pids = self.pids()
        return sum(_rss_kib(p) for p in pids) / 1024, len(pids)

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.tail()}")

    def log_errors(self) -> tuple[int, list[str]]:
        """Tracebacks in the server's output and its first distinct exception lines."""
        text = self.tail(10**9)
        count = text.count("Traceback (most recent call last)")
        found: list[str] = []
        for line in text.splitlines():
            if _EXCEPTION.match(line) and line[:200] not in found:
                found.append(line[:200])
                if len(found) == 3:
                    break
        return count, found

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the server's main process (it stops its own workers), then SIGKILL to
        its process group if it lingers, and to anything it left behind in that group."""
        members = self.pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for pid in members[1:]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == self.proc.pid:
                    os.kill(pid, signal.SIGKILL)


def _spawn(name: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> Server:
    LOGS.mkdir(parents=True, exist_ok=True)
    _starts[name] = _starts.get(name, 0) + 1
    log_path = LOGS / f"{name}-{_starts[name]}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, proc, port, log_path)


def _ready(server: Server, paths: list[str]) -> Server:
    """Wait until every path answers 200; a server that never gets there is stopped."""
    try:
        for path in paths:
            server.wait_ready(path)
    except BaseException:
        server.stop()
        raise
    return server


def start_loopserve(*, prediction_log: bool, name: str = "", **env: str) -> Server:
    """`loopserve api` on the bench database, one uvicorn worker; `env` adds LOOPSERVE_*
    settings."""
    port = free_port()
    home = WORK / "loopserve-home"
    home.mkdir(parents=True, exist_ok=True)
    env = _clean_env(
        LOOPSERVE_DATABASE_URL=DB_URL,
        LOOPSERVE_ADMIN_TOKEN=ADMIN_TOKEN,
        LOOPSERVE_HOME=str(home),
        LOOPSERVE_PREDICTION_LOG="true" if prediction_log else "false",
        **env,
    )
    cmd = [str(LOOPSERVE_VENV / "bin" / "loopserve"), "api", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    name = name or f"loopserve-log-{'on' if prediction_log else 'off'}"
    return _ready(_spawn(name, cmd, env, ROOT, port), ["/readyz"])


def mlserver_repository(models: list[BenchModel], repo: Path) -> None:
    """model-settings.json per model: the sklearn runtime answering predict_proba.

    `mlserver start FOLDER` scans FOLDER itself for models, next to its settings.json.
    """
    for m in models:
        folder = repo / m.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(m.joblib_path, folder / "model.joblib")
        settings = {
            "name": m.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "extra": {"predict_fn": "predict_proba"}},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))


def start_mlserver(models: list[BenchModel], *, parallel_workers: int | None, label: str) -> Server:
    """`mlserver start` with its own settings.json; parallel_workers None keeps the default.

    debug is off, as loopserve runs without access logs; everything else is MLServer's default.
    """
    folder = WORK / "mlserver" / label
    folder.mkdir(parents=True, exist_ok=True)
    mlserver_repository(models, folder)
    http, grpc, metrics = free_port(), free_port(), free_port()
    settings: dict[str, object] = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "load_models_at_startup": True,
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    cmd = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(folder)]
    server = _spawn(f"mlserver-{label}", cmd, _clean_env(), folder, http)
    server.extra_ports = [grpc, metrics]
    return _ready(server, [f"/v2/models/{m.name}/ready" for m in models])


def floor_models(models: list[BenchModel]) -> Path:
    """The folder of ONNX files and their classes the floor app serves (BENCH_FLOOR_MODELS)."""
    folder = WORK / "floor-models"
    folder.mkdir(parents=True, exist_ok=True)
    for m in models:
        (folder / f"{m.name}.onnx").write_bytes(m.onnx)
        (folder / f"{m.name}.classes.json").write_text(json.dumps(list(CLASSES)))
    return folder


def start_floor(models: list[BenchModel]) -> Server:
    """The bare ASGI floor app under uvicorn (httptools + uvloop) in loopserve's venv."""
    folder = floor_models(models)
    port = free_port()
    cmd = [str(LOOPSERVE_VENV / "bin" / "python"), "-m", "uvicorn", "bench.floor_app:app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http"]
    cmd += ["httptools", "--no-access-log", "--log-level", "warning"]
    server = _spawn("floor", cmd, _clean_env(BENCH_FLOOR_MODELS=str(folder)), ROOT, port)
    return _ready(server, [f"/v2/models/{m.name}/ready" for m in models])


def log_backlog(server: Server) -> float | None:
    """loopserve's unlogged predictions, from /metrics (None if it cannot be read)."""
    try:
        text = httpx.get(server.url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("loopserve_prediction_log_backlog "):
            return float(line.split()[1])
    return None


_STATUS = re.compile(r'status="(\d+)"')


def status_counts(server: Server) -> dict[str, float]:
    """loopserve's requests so far by HTTP status, from /metrics (empty if unreadable)."""
    try:
        text = httpx.get(server.url + "/metrics", timeout=30).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("loopserve_http_requests_total{") and (m := _STATUS.search(line)):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def wait_log_drained(server: Server, timeout: float = 90.0, stuck: float = 20.0) -> float:
    """Let the prediction log catch up between cells; returns the seconds it took.

    Gives up after `timeout`, or when the backlog has not shrunk for `stuck` seconds (a log
    that cannot write, e.g. a schema the server does not expect)."""
    start = time.monotonic()
    best, best_at = float("inf"), start
    while time.monotonic() - start < timeout:
        backlog = log_backlog(server)
        if backlog is None or backlog == 0:
            break
        now = time.monotonic()
        if backlog < best:
            best, best_at = backlog, now
        elif now - best_at > stuck:
            break
        time.sleep(0.5)
    return time.monotonic() - start
