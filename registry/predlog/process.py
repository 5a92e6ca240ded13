"""The prediction log's COPY, run in a child process.

In the API process every byte that psycopg hands to libpq, and every `send` of it to
PostgreSQL, happens with the GIL held, so a log thread writing a busy server's predictions keeps
the request thread waiting. `ProcessWriter` instead sends the COPY data over a
`multiprocessing.connection` socket (the kernel copy runs without the GIL) to a
`registry.predlog.relay` child, which writes it in its own transaction and answers once it has
committed, or with the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection

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
        self._connection: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid, if there is one."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def open(self) -> None:
        """Start the child now rather than on the first write; LogWriteError if it will not."""
        try:
            self._connect()
        except (OSError, EOFError) as exc:
            code = self._stop()
            raise LogWriteError(f"the log writer process stopped ({code}): {exc!r}") from exc

    def write(self, batches: Sequence[LoggedBatch]) -> None:
        """Return once the batches are committed; raise LogWriteError otherwise."""
        if not batches:
            return
        # One message: send_bytes takes one buffer, and a join costs less than a system call
        # per piece.
        message = b"".join(copy_stream(batches))
        try:
            connection = self._connect()
            connection.send_bytes(message)
            answer = connection.recv_bytes()
        except (OSError, EOFError) as exc:  # the child died before or while it answered
            code = self._stop()
            raise LogWriteError(f"the log writer process stopped ({code}): {exc!r}") from exc
        if answer != b"ok":
            raise LogWriteError(answer.decode(errors="replace").removeprefix("error "))

    def close(self, timeout: float = 10.0) -> None:
        """End the child: it exits when its connection closes."""
        self._stop(timeout)

    def _connect(self) -> Connection:
        """The connection to a running child, started first if there is none."""
        if self._connection is not None and self.pid is not None:
            return self._connection
        self._stop()
        authkey = os.urandom(32)
        env = {
            **os.environ,
            relay.AUTHKEY_VARIABLE: authkey.hex(),
            relay.CONNINFO_VARIABLE: self._conninfo,
            relay.STATEMENT_VARIABLE: LOG_COPY,
        }
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", "registry.predlog.relay"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None  # a pipe
        with proc.stdout:
            address = proc.stdout.readline().decode().strip()  # empty if the child exited
        if not address:
            raise EOFError("the log writer process exited before it listened")
        self._connection = Client(address, family="AF_UNIX", authkey=authkey)
        return self._connection

    def _stop(self, timeout: float = 5.0) -> int | None:
        """Close the connection and wait for the child to end; its exit code, if it ran."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
