"""A fresh `loopserve up` per stream, started, probed and stopped as a user would.

Each run gets its own LOOPSERVE_HOME (a new SQLite database and broker), a free port on
127.0.0.1 and a fixed admin token, so one stream's labels and versions never reach another's.
`loopserve up` starts api, worker and beat in sessions of their own, so stopping it by SIGTERM
is the clean path (it stops them); only if that times out are its descendants, listed while
they were alive, killed by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "drift-bench-admin-token0"  # 24 characters, fixed: this harness's only secret
assert len(ADMIN_TOKEN) == 24


class DriveError(RuntimeError):
    """The server did not do what the benchmark needs; the message says what and where."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (ppid is [1], start time [19])."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below `pid`, whatever session it moved to; the start
    time tells a process apart from a later one that reuses its pid."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    home: Path
    log_path: Path
    http: httpx.Client

    def call(
        self, method: str, path: str, *, admin: bool = False, retries: int = 5, **kwargs: Any
    ) -> Any:
        """One request; 503s and dropped connections are retried with a short backoff (the
        embedded SQLite can be busy), any other error stops the run with the server's detail."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        for attempt in range(retries + 1):
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if attempt == retries or self.proc.poll() is not None:
                    raise DriveError(
                        f"{method} {path}: {exc!r} (server log: {self.log_path})"
                    ) from exc
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code == 503 and attempt < retries:
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code >= 400:
                raise DriveError(f"{method} {path}: {response.status_code} {response.text[:500]}")
            return response.json()
        raise AssertionError("unreachable")

    def wait_ok(self, path: str, timeout: float) -> None:
        """Poll a GET until it answers 200, or fail with the last answer."""
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DriveError(
                    f"loopserve up exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                response = self.http.get(path, timeout=5)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise DriveError(f"GET {path} not 200 after {timeout:.0f} s: {last}")

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM to `loopserve up` (it stops its children, giving a running job 15 s); kill
        by pid whatever is left after `timeout`."""
        tree = _descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid, started in tree:  # only if it is still the very process `up` started
            fields = _stat(pid)
            if fields is not None and fields[19] == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.http.close()

    def tracebacks(self) -> int:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count("Traceback (most recent call last)")


def start(log_path: Path, ready_timeout: float = 120.0) -> Server:
    """`loopserve up` on a free port with a fresh home; returns once /healthz and /readyz
    answer 200."""
    home = Path(tempfile.mkdtemp(prefix="loopserve-drift-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSERVE_")}
    env.update(LOOPSERVE_HOME=str(home), LOOPSERVE_ADMIN_TOKEN=ADMIN_TOKEN)
    exe = Path(sys.executable).parent / "loopserve"
    cmd = [str(exe), "up", "--host", "127.0.0.1", "--port", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(proc, url, home, log_path, httpx.Client(base_url=url, timeout=120))
    try:
        server.wait_ok("/healthz", ready_timeout)
        server.wait_ok("/readyz", ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def discard(server: Server) -> None:
    """Remove the run's home (database, broker, token) once the server is down."""
    shutil.rmtree(server.home, ignore_errors=True)
