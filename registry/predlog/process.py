"""The prediction log's COPY, run in a child process.

In the API process every byte that psycopg hands to libpq, and every `send` of it to
PostgreSQL, happens with the GIL held, so a log thread writing a busy server's predictions keeps
the request thread waiting. `ProcessWriter` instead passes the COPY data through a pipe (the
kernel copy runs without the GIL) to a `registry.predlog.relay` child, which writes it in its own
transaction and answers once it has committed, or with the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from sqlalchemy.engine import make_url

from registry.predlog import relay
from registry.predlog.record import LOG_COPY, LoggedBatch, copy_stream


class LogWriteError(RuntimeError):
    """The writer did not confirm the write; it may or may not have committed."""


class ProcessWriter:
    """Writes logged batches through a child process; used by one thread at a time (the
    prediction log's), which owns it. The child starts on the first write and again after it
    died."""

    def __init__(self, url: str) -> None:
        libpq_url = make_url(url).set(drivername="postgresql")
        self._conninfo = libpq_url.render_as_string(hide_password=False)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid, if there is one."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def write(self, batches: Sequence[LoggedBatch]) -> None:
        """Return once the batches are committed; raise LogWriteError otherwise."""
        if not batches:
            return
        proc = self._child()
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None  # both are pipes
        pieces = [memoryview(p).cast("B") for p in copy_stream(batches)]
        try:
            _send(stdin.fileno(), [relay.LENGTH.pack(sum(map(len, pieces))), *pieces])
            answer = stdout.readline()
        except OSError as exc:  # the child died while we wrote
            self._stop()
            raise LogWriteError(f"the log writer process stopped: {exc}") from exc
        if answer == b"ok\n":
            return
        if not answer:
            self._stop()
            raise LogWriteError(f"the log writer process exited ({proc.returncode})")
        raise LogWriteError(answer.decode(errors="replace").strip().removeprefix("error "))

    def close(self, timeout: float = 10.0) -> None:
        """End the child: it exits when its input closes."""
        self._stop(timeout)

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        env = {
            **os.environ,
            relay.CONNINFO_VARIABLE: self._conninfo,
            relay.STATEMENT_VARIABLE: LOG_COPY,
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "registry.predlog.relay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        return self._proc

    def _stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _send(fd: int, pieces: list[bytes | memoryview]) -> None:
    """Write every piece (bytes, or byte views) to the pipe in as few system calls as writev
    allows."""
    views = [memoryview(p) for p in pieces if len(p)]
    while views:
        sent = os.writev(fd, views[:512])  # IOV_MAX is 1024 on Linux
        while sent:
            if sent >= len(views[0]):
                sent -= len(views.pop(0))
            else:
                views[0], sent = views[0][sent:], 0
