"""Where the prediction log's COPY runs, measured back to back: in a child process (the
default on PostgreSQL), in the API process's log thread, or no log at all.

Three `loopserve api` processes on the bench database, all with validation on: the log written
by its child process, the log written by its thread (LOOPSERVE_LOG_WRITER_PROCESS=false), and
the log off. Each cell is measured on the three in turn, the order rotating over the rounds,
with the same wrk as bench.run, waiting for the log to drain after each run; the table gives
the mean r/s and p99 of the rounds, each log's cost against the log off, and the CPU per
request (from /proc, counted until the log has drained) of the server's process tree (the log's
child included) and of PostgreSQL's processes.

Run: .venv/bin/python -m bench.logwriter   (after bench.run has set up wrk and the database)
"""

from __future__ import annotations

from bench.backtoback import Cell, Measured, compare
from bench.models import BenchModel


def _cells(models: list[BenchModel]) -> list[Cell]:
    cells = [(m, p, 1000, 16) for m in models for p in ("v1", "v2")]
    return [*cells, (models[0], "v2", 1000, 1), (models[0], "v2", 1, 16)]


def _row(cell: Cell, got: dict[str, Measured]) -> list[str]:
    proc, thread, off = got["process"], got["thread"], got["off"]
    return [
        f"{proc.rps:,.0f}",
        f"{thread.rps:,.0f}",
        f"{off.rps:,.0f}",
        f"{(1 - proc.rps / off.rps) * 100:.1f} %",
        f"{(1 - thread.rps / off.rps) * 100:.1f} %",
        f"{proc.p99_ms:.1f} / {thread.p99_ms:.1f} / {off.p99_ms:.1f}",
        f"{proc.server_us:,.0f} / {thread.server_us:,.0f} / {off.server_us:,.0f}",
        f"{proc.postgres_us:,.0f} / {thread.postgres_us:,.0f}",
    ]


def main() -> None:
    compare(
        {
            "process": {"prediction_log": True, "name": "loopserve-log-process"},
            "thread": {
                "prediction_log": True,
                "name": "loopserve-log-thread",
                "LOOPSERVE_LOG_WRITER_PROCESS": "false",
            },
            "off": {"prediction_log": False, "name": "loopserve-log-off"},
        },
        _cells,
        [
            "model",
            "protocol",
            "rows",
            "conc",
            "r/s log in a process",
            "r/s log in a thread",
            "r/s log off",
            "cost, process",
            "cost, thread",
            "p99 ms process / thread / off",
            "server CPU µs/request process / thread / off",
            "PostgreSQL CPU µs/request process / thread",
        ],
        _row,
    )


if __name__ == "__main__":
    main()
