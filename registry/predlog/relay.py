"""The child process of `registry.predlog.process.ProcessWriter`: binary COPY data in, commits
out.

`python -m registry.predlog.relay` listens on a Unix socket with `multiprocessing.connection`,
whose authentication takes the key in $LOOPSERVE_COPY_AUTHKEY (hex), writes the socket's
address as one line on stdout, and accepts one connection, its parent's. Each message it
receives is binary COPY data for the statement in $LOOPSERVE_COPY_STATEMENT, on the database at
$LOOPSERVE_COPY_CONNINFO (in the environment, not in argv: a password would show in `ps`); it
writes the message in its own transaction and answers once it has committed, `ok`, or with
`error <type>: <message>`. Messages are bytes both ways (send_bytes/recv_bytes), never pickles.
It exits when the connection ends, so it never outlives its parent, and ignores SIGINT and
SIGTERM so that the parent's last flush on shutdown still has a writer. It imports psycopg and
the standard library only, to stay small.
"""

from __future__ import annotations

import os
import signal
import tempfile
from multiprocessing.connection import Connection, Listener

AUTHKEY_VARIABLE = "LOOPSERVE_COPY_AUTHKEY"
CONNINFO_VARIABLE = "LOOPSERVE_COPY_CONNINFO"
STATEMENT_VARIABLE = "LOOPSERVE_COPY_STATEMENT"


def serve(conninfo: str, statement: str, connection: Connection) -> None:
    """Write each message in its own transaction and answer it, until the connection ends.
    A failed write closes the database connection; the next message opens another."""
    import psycopg

    conn: psycopg.Connection | None = None
    while True:
        try:
            message = connection.recv_bytes()
        except EOFError:
            return
        try:
            if conn is None or conn.closed:
                # Each COPY is then its own transaction, committed before PostgreSQL reports
                # it complete: two round trips fewer than BEGIN ... COMMIT around it.
                conn = psycopg.connect(conninfo, autocommit=True)
            with conn.cursor() as cur, cur.copy(statement) as copy:
                copy.write(message)
            answer = b"ok"
        except Exception as exc:
            answer = f"error {type(exc).__name__}: {exc}".encode()
            if conn is not None:
                conn.close()
                conn = None
        connection.send_bytes(answer)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conninfo, statement = os.environ[CONNINFO_VARIABLE], os.environ[STATEMENT_VARIABLE]
    authkey = bytes.fromhex(os.environ[AUTHKEY_VARIABLE])
    # In a directory of its own, removed once the parent is connected: however the relay ends
    # later (even killed), it leaves nothing behind, and no one else can connect.
    with tempfile.TemporaryDirectory(prefix="loopserve-log-") as home:
        address = os.path.join(home, "relay")
        with Listener(address, family="AF_UNIX", authkey=authkey) as listener:
            print(address, flush=True)
            connection = listener.accept()
    with connection:
        serve(conninfo, statement, connection)


if __name__ == "__main__":
    main()
