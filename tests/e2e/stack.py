"""Run the platform as real processes (api, Celery worker, beat) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from registry.migrate import upgrade

ADMIN_TOKEN = "e2e-admin-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The processes of one deployment, sharing one database and one broker."""

    def __init__(self, home: Path, database_url: str, broker_url: str | None, **env: str) -> None:
        self.home, self.database_url = home, database_url
        self.env = {
            **os.environ,
            "LOOPSERVE_HOME": str(home),
            "LOOPSERVE_DATABASE_URL": database_url,
            "LOOPSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
            "LOOPSERVE_TICK_SECONDS": "1",
            "LOOPSERVE_HEARTBEAT_SECONDS": "0.5",
            "LOOPSERVE_JOB_TIMEOUT_SECONDS": "6",
            "LOOPSERVE_CHAMPION_POLL_SECONDS": "0.5",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        if broker_url:
            self.env["LOOPSERVE_BROKER_URL"] = broker_url
        else:
            self.env.pop("LOOPSERVE_BROKER_URL", None)
        self.procs: dict[str, subprocess.Popen] = {}
        self.urls: list[str] = []
        upgrade(database_url)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_api(self, name: str = "api") -> str:
        port = free_port()
        self._spawn(name, "api", "--host", "127.0.0.1", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/healthz", self.procs[name], self.home / f"{name}.log")
        self.urls.append(url)
        return url

    def start_worker(self, name: str = "worker", concurrency: int = 1) -> None:
        self._spawn(name, "worker", "--concurrency", str(concurrency), "--hostname", f"{name}@%h")

    def start_beat(self) -> None:
        self._spawn("beat", "beat")

    def kill(self, name: str) -> None:
        """SIGKILL the process and its children, as a crashed machine would."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.home.glob("*.log"))
        )

    def client(self, url: str | None = None) -> Client:
        return Client(url or self.urls[0])


class Client(httpx.Client):
    """An HTTP client of one api replica, with the admin token and small helpers."""

    def __init__(self, url: str) -> None:
        super().__init__(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code == status, (
            method,
            path,
            response.status_code,
            response.text[:2000],
        )
        return response.json()

    def wait_job(self, job_id: str, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.ok("GET", f"/v1/admin/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")

    def retrain(self, name: str) -> dict[str, Any]:
        job = self.ok("POST", f"/v1/admin/models/{name}/retrain", 202)
        return self.wait_job(job["job_id"])

    def wait_version(self, name: str, version: int, timeout: float = 30) -> float:
        """Seconds until this replica serves `version` of the model."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            model = self.ok("GET", f"/v1/models/{name}")
            if model["served_version"] == version:
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{name} v{version} not served after {timeout}s")


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} process exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up after {timeout}s:\n{log.read_text()[-4000:]}")
