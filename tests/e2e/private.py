"""A PostgreSQL cluster and a Redis server of a test's own, on free ports of 127.0.0.1, that the
test may stop and start again as it likes: fault tests break these, never the machine's.

initdb refuses to run as root (as CI runs the tests), so as root the cluster belongs to the
`postgres` user, in a temporary directory given to it; anyone else owns their cluster.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from tests.e2e.stack import free_port

PG_USER = "postgres"  # the cluster's superuser, and its owner when the tests run as root
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def pg_program(name: str) -> str:
    """A PostgreSQL server program: on PATH, else in Debian's versioned directory."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"{name} is needed to run a private PostgreSQL and was not found")
    return found


def _wait(ready: Callable[[], bool], what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    text = log.read_text() if log.exists() else ""
    raise RuntimeError(f"{what} not up after {timeout}s:\n{text[-4000:]}")


class PrivatePostgres:
    """A throw-away cluster: trust authentication, no fsync, one port for its whole life."""

    def __init__(self) -> None:
        self.owner = pwd.getpwnam(PG_USER) if os.geteuid() == 0 else None
        self.home = Path(tempfile.mkdtemp(prefix="loopserve-pg-"))
        if self.owner is not None:
            os.chown(self.home, self.owner.pw_uid, self.owner.pw_gid)
        self.data, self.log = self.home / "data", self.home / "postgres.log"
        self.port = free_port()
        self.admin_url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"
        try:
            self._run(
                pg_program("initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            )
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(
                    f"port = {self.port}\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.data}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "shared_buffers = 32MB\n"
                    "max_parallel_workers_per_gather = 0\n"
                )
            self.start()
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            raise

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", PG_USER, "--"] if self.owner is not None else []
        done = subprocess.run(
            [*prefix, *argv], cwd=self.home, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the cluster (again) on its port and wait until it takes connections."""
        self._pg_ctl("-l", str(self.log), "-t", "60", "start")
        _wait(self.answers, "PostgreSQL", self.log)

    def stop(self) -> None:
        """Stop it as a crash would: every backend is killed, no checkpoint is written."""
        self._pg_ctl("-m", "immediate", "stop")

    def _pg_ctl(self, *argv: str) -> None:
        self._run(pg_program("pg_ctl"), "-D", str(self.data), "-w", *argv)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def new_database(self) -> str:
        """A fresh database's SQLAlchemy URL."""
        name = f"loopserve_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


class PrivateRedis:
    """A redis-server without persistence: a restart starts it empty, as after a crash."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="loopserve-redis-"))
        self.log = self.home / "redis.log"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.home)]
        argv += ["--logfile", str(self.log)]
        self.proc = proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({proc.returncode}); see {self.log}")
            return self.answers()

        _wait(ready, "redis-server", self.log)

    def stop(self) -> None:
        """SIGKILL the server: connections drop and everything it held is gone."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
