"""The child process of `registry.predlog.process.ProcessWriter`: binary COPY data in, commits
out.

`python -m registry.predlog.relay` reads frames on stdin: 8 bytes of length (big-endian), then
that many bytes of binary COPY data for the statement in $LOOPSERVE_COPY_STATEMENT, on the
database at $LOOPSERVE_COPY_CONNINFO (not in argv: a password would show in `ps`). Each frame
is written in its own transaction and answered on stdout with one line once it has committed,
`ok`, or with `error <type>: <message>`. It exits when stdin ends, so it never outlives its
parent, and ignores SIGINT and SIGTERM so that the parent's last flush on shutdown still has
a writer. It imports only psycopg, to stay small.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from typing import BinaryIO

CONNINFO_VARIABLE = "LOOPSERVE_COPY_CONNINFO"
STATEMENT_VARIABLE = "LOOPSERVE_COPY_STATEMENT"
LENGTH = struct.Struct("!Q")  # the frame header


def read_exactly(stream: BinaryIO, n: int) -> bytearray | None:
    """n bytes from the stream, or None if it ends first."""
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        read = stream.readinto(view[got:])
        if not read:
            return None
        got += read
    return buffer


def serve(conninfo: str, statement: str, source: BinaryIO, answers: BinaryIO) -> None:
    """Write each frame from `source` in its own transaction and answer it on `answers`,
    until `source` ends. A failed write closes the connection; the next frame opens another."""
    import psycopg

    conn: psycopg.Connection | None = None
    while (head := read_exactly(source, LENGTH.size)) is not None:
        frame = read_exactly(source, LENGTH.unpack(head)[0])
        if frame is None:
            return
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(conninfo)
            with conn.cursor() as cur, cur.copy(statement) as copy:
                copy.write(memoryview(frame))  # sliced for libpq without copies
            conn.commit()
            answer = b"ok\n"
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            answer = f"error {message}\n".encode()
            if conn is not None:
                conn.close()
                conn = None
        answers.write(answer)
        answers.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conninfo, statement = os.environ[CONNINFO_VARIABLE], os.environ[STATEMENT_VARIABLE]
    serve(conninfo, statement, sys.stdin.buffer.raw, sys.stdout.buffer)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
