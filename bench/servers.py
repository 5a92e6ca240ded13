"""The servers under test, one process tree each on a free port, and what /proc says of them.

Each server runs in its own session (process group) so that stopping it also stops the workers
it spawned (MLServer's inference pool), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.config import ADMIN_TOKEN, CLASSES, DB_URL, LOOPSERVE_VENV, MLSERVER_VENV, ROOT, WORK
from bench.models import BenchModel

LOGS = WORK / "logs"
TICK = os.sysconf("SC_CLK_TCK")
_EXCEPTION = re.compile(r"^[\w.]+(Error|Exception|Warning)\b.*$")
_STATUS = re.compile(r'status="(\d+)"')


# --- /proc -------------------------------------------------------------------------------------


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's name and the fields of /proc/PID/stat after it ("", [] once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", []
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()


def _pids() -> list[str]:
    return [e.name for e in Path("/proc").iterdir() if e.name.isdigit()]


def cpu_ticks(pid: int) -> int:
    """The CPU clock ticks a process has used, user and system (0 once it is gone)."""
    _, fields = _stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


def postgres_pids() -> list[int]:
    """Every PostgreSQL process: the backends, the WAL writer, the checkpointer and the rest."""
    return [int(p) for p in _pids() if _stat(p)[0] == "postgres"]


def _busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait


def _own_seconds() -> float:
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime  # kids: wrk, once waited


class CpuWatch:
    """Started before a cell, read after it: the cores used on average by every process but
    the server tree, this harness and its wrk, and PostgreSQL (the disturbance)."""

    def __init__(self, server_pids: Callable[[], list[int]]) -> None:
        self._server_pids = server_pids
        self._t0, self._busy0, self._own0 = time.monotonic(), _busy_ticks(), _own_seconds()
        self._ticks0 = {p: cpu_ticks(p) for p in self._watched()}

    def _watched(self) -> list[int]:
        return [*self._server_pids(), *postgres_pids()]

    def other_cores(self) -> float:
        elapsed = time.monotonic() - self._t0
        ours = _own_seconds() - self._own0
        ours += sum(max(0, cpu_ticks(p) - self._ticks0.get(p, 0)) for p in self._watched()) / TICK
        busy = (_busy_ticks() - self._busy0) / TICK
        return max(0.0, busy - ours) / elapsed if elapsed > 0 else 0.0


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One running server process tree."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for p in _pids():
            if fields := _stat(p)[1]:
                children.setdefault(int(fields[1]), []).append(int(p))
        out, todo = [], [self.proc.pid]
        while todo:
            out.append(pid := todo.pop())
            todo.extend(children.get(pid, []))
        return out

    def rss_mib(self) -> tuple[float, int]:
        """VmRSS summed over the process and its descendants, and how many processes."""
        kib = 0
        for pid in (pids := self.pids()):
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                kib += next(int(x.split()[1]) for x in status.splitlines() if x[:6] == "VmRSS:")
        return kib / 1024, len(pids)

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def log_errors(self) -> tuple[int, list[str]]:
        """Tracebacks in the server's output and its first three distinct exception lines."""
        text = self.tail(10**9)
        found = dict.fromkeys(x[:200] for x in text.splitlines() if _EXCEPTION.match(x))
        return text.count("Traceback (most recent call last)"), list(found)[:3]

    def wait_ready(self, paths: list[str], timeout: float = 120.0) -> Server:
        """Wait until every path answers 200; a server that never gets there is stopped."""
        deadline = time.monotonic() + timeout
        try:
            for path in paths:
                while not self._answers(path):
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{self.name} exited: {self.tail()}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name} not ready: {self.tail()}")
                    time.sleep(0.25)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self, path: str) -> bool:
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the main process (it stops its own workers), SIGKILL to its process group
        if it lingers, and to anything it left behind in that group."""
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


def _spawn(
    name: str, cmd: list[str], cwd: Path, port: int, env: dict[str, str], logs: Path = LOGS
) -> Server:
    """Start a server with the harness's environment minus any LOOPSERVE_*/MLSERVER_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSERVE_", "MLSERVER_"))}
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=clean | env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, proc, port, log_path)


def start_loopserve(*, prediction_log: bool, name: str = "", **env: str) -> Server:
    """`loopserve api` on the bench database, one worker; `env` adds LOOPSERVE_* settings."""
    port, home = free_port(), WORK / "loopserve-home"
    home.mkdir(parents=True, exist_ok=True)
    cmd = [str(LOOPSERVE_VENV / "bin" / "loopserve"), "api", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    name = name or f"loopserve-log-{'on' if prediction_log else 'off'}"
    log = "true" if prediction_log else "false"
    settings = {"LOOPSERVE_DATABASE_URL": DB_URL, "LOOPSERVE_ADMIN_TOKEN": ADMIN_TOKEN}
    settings |= {"LOOPSERVE_HOME": str(home), "LOOPSERVE_PREDICTION_LOG": log}
    server = _spawn(name, cmd, ROOT, port, settings | env)
    return server.wait_ready(["/readyz"])


def start_mlserver(models: list[BenchModel], *, parallel_workers: int | None) -> Server:
    """`mlserver start` on a folder holding its settings.json and one folder per model (the
    sklearn runtime answering predict_proba); parallel_workers None keeps the default, debug
    is off (loopserve runs without access logs), everything else is MLServer's default."""
    label = "single" if parallel_workers == 0 else "default"
    folder = WORK / "mlserver" / label
    for m in models:
        (folder / m.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(m.joblib_path, folder / m.name / "model.joblib")
        settings = {
            "name": m.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "extra": {"predict_fn": "predict_proba"}},
        }
        (folder / m.name / "model-settings.json").write_text(json.dumps(settings))
    http = free_port()
    server: dict[str, object] = {"debug": False, "host": "127.0.0.1", "http_port": http}
    server |= {"grpc_port": free_port(), "metrics_port": free_port()}
    server |= {"load_models_at_startup": True}
    if parallel_workers is not None:
        server["parallel_workers"] = parallel_workers
    (folder / "settings.json").write_text(json.dumps(server))
    cmd = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(folder)]
    started = _spawn(f"mlserver-{label}", cmd, folder, http, {})
    return started.wait_ready([f"/v2/models/{m.name}/ready" for m in models])


def start_floor(models: list[BenchModel], work: Path = WORK) -> Server:
    """The bare ASGI floor app under uvicorn (httptools + uvloop) in loopserve's venv, serving
    a folder of NAME.onnx and NAME.classes.json files."""
    folder, port = work / "floor-models", free_port()
    folder.mkdir(parents=True, exist_ok=True)
    for m in models:
        (folder / f"{m.name}.onnx").write_bytes(m.onnx)
        (folder / f"{m.name}.classes.json").write_text(json.dumps(CLASSES))
    cmd = [str(LOOPSERVE_VENV / "bin" / "python"), "-m", "uvicorn", "bench.floor_app:from_env"]
    cmd += ["--factory", "--interface", "asgi3", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    server = _spawn("floor", cmd, ROOT, port, {"BENCH_FLOOR_MODELS": str(folder)}, work / "logs")
    return server.wait_ready([f"/v2/models/{m.name}/ready" for m in models])


# --- loopserve's /metrics ----------------------------------------------------------------------


def _metrics(server: Server, prefix: str, timeout: float) -> list[str] | None:
    try:
        text = httpx.get(server.url + "/metrics", timeout=timeout).text
    except httpx.HTTPError:
        return None
    return [line for line in text.splitlines() if line.startswith(prefix)]


def status_counts(server: Server) -> dict[str, float]:
    """loopserve's requests so far by HTTP status (empty if /metrics did not answer)."""
    out: dict[str, float] = {}
    for line in _metrics(server, "loopserve_http_requests_total{", 30) or []:
        if m := _STATUS.search(line):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def wait_log_drained(server: Server, timeout: float = 90.0, stuck: float = 20.0) -> float:
    """Let the prediction log catch up; the seconds it took. Gives up after `timeout`, or when
    the backlog has not shrunk for `stuck` seconds (a log that cannot write)."""
    start = best_at = time.monotonic()
    best = float("inf")
    while (now := time.monotonic()) - start < timeout:
        lines = _metrics(server, "loopserve_prediction_log_backlog ", 5)
        backlog = float(lines[0].split()[1]) if lines else 0.0
        if backlog == 0:
            break
        if backlog < best:
            best, best_at = backlog, now
        elif now - best_at > stuck:
            break
        time.sleep(0.5)
    return time.monotonic() - start
