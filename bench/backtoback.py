"""Configurations of `loopserve api` measured back to back on the same cells, for the decisions
bench/README.md records: `python -m bench.backtoback microbatch|logwriter` (after bench.run
has set up wrk and the database; about 10 minutes each).

Each server is warmed, then measured in turn for a number of rounds, the order rotating from
round to round so that this machine's drift falls on all alike; after each run the prediction
log is left to drain, so that its writing counts against its own run, CPU included.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from bench.config import ROOT, path
from bench.load import run_wrk, v1_body, v2_body, write_payload
from bench.models import BenchModel, build_models
from bench.report import table
from bench.servers import TICK, Server, cpu_ticks, postgres_pids, start_loopserve, wait_log_drained

Cell = tuple[BenchModel, str, int, int]  # model, protocol, rows per request, concurrency


@dataclass(frozen=True)
class Measured:
    """One server's run on one cell, or the mean of its rounds."""

    rps: float
    p99_ms: float
    server_us: float  # CPU per request of the server's process tree
    postgres_us: float  # CPU per request of PostgreSQL's processes


def _cpu_s(pids: list[int]) -> float:
    return sum(cpu_ticks(p) for p in pids) / TICK


def measure(servers: dict[str, Server], cell: Cell, rounds: int, seconds: float) -> list[Measured]:
    """The mean of each server's rounds on the cell, in the order of `servers`."""
    m, proto, rows, conc = cell
    body = (v1_body if proto == "v1" else v2_body)(m.X[:rows])
    payload = write_payload(f"backtoback-{m.name}-{proto}-{rows}", body)
    url = {key: s.url + path(proto, m.name) for key, s in servers.items()}
    for key, server in servers.items():
        run_wrk(url[key], payload, connections=conc, seconds=2)
        wait_log_drained(server)
    keys = list(servers)
    runs: dict[str, list[Measured]] = {key: [] for key in keys}
    for turn in range(rounds):
        for key in keys[turn % len(keys) :] + keys[: turn % len(keys)]:
            pids, pg = servers[key].pids(), postgres_pids()
            cpu0, pg0 = _cpu_s(pids), _cpu_s(pg)
            w = run_wrk(url[key], payload, connections=conc, seconds=seconds)
            wait_log_drained(servers[key])
            n = max(w.ok, 1)
            cpu, pg_cpu = _cpu_s(pids) - cpu0, _cpu_s(postgres_pids()) - pg0
            runs[key].append(Measured(w.rps, w.p99_ms, cpu / n * 1e6, pg_cpu / n * 1e6))
    fields = ("rps", "p99_ms", "server_us", "postgres_us")
    mean = [[statistics.mean(getattr(r, f) for r in runs[k]) for f in fields] for k in keys]
    return [Measured(*x) for x in mean]


@dataclass(frozen=True)
class Comparison:
    servers: dict[str, tuple[bool, dict[str, str]]]  # name: (prediction log on, LOOPSERVE_*)
    cells: Callable[[list[BenchModel]], list[Cell]]
    columns: list[str]
    row: Callable[..., list[object]]  # of one Measured per server, in order

    @property
    def header(self) -> str:
        return " | ".join(["model", "protocol", "rows", "conc", *self.columns])


def _cost(a: Measured, b: Measured) -> str:
    return f"{(1 - a.rps / b.rps) * 100:.1f} %"


def _microbatch(on: Measured, off: Measured) -> list[object]:
    gain = f"{(on.rps / off.rps - 1) * 100:+.1f} %"
    return [f"{on.rps:,.0f}", f"{off.rps:,.0f}", gain, on.p99_ms, off.p99_ms]


def _logwriter(proc: Measured, thread: Measured, off: Measured) -> list[object]:
    rps = [f"{x.rps:,.0f}" for x in (proc, thread, off)]
    p99 = " / ".join(f"{x.p99_ms:.1f}" for x in (proc, thread, off))
    cpu = " / ".join(f"{x.server_us:,.0f}" for x in (proc, thread, off))
    pg = f"{proc.postgres_us:,.0f} / {thread.postgres_us:,.0f}"
    return [*rps, _cost(proc, off), _cost(thread, off), p99, cpu, pg]


MICROBATCH = Comparison(
    {"batch-on": (True, {}), "batch-off": (True, {"LOOPSERVE_MICRO_BATCH": "false"})},
    lambda ms: (
        [(m, p, n, 16) for m in ms for p in ("v1", "v2") for n in (1, 1000)] + [(ms[0], "v1", 1, 1)]
    ),
    ["r/s on", "r/s off", "gain", "p99 on ms", "p99 off ms"],
    _microbatch,
)
LOGWRITER = Comparison(
    {
        "log-process": (True, {}),
        "log-thread": (True, {"LOOPSERVE_LOG_WRITER_PROCESS": "false"}),
        "log-off": (False, {}),
    },
    lambda ms: (
        [(m, p, 1000, 16) for m in ms for p in ("v1", "v2")]
        + [(ms[0], "v2", 1000, 1), (ms[0], "v2", 1, 16)]
    ),
    [
        "r/s log in a process",
        "r/s log in a thread",
        "r/s log off",
        "cost, process",
        "cost, thread",
        "p99 ms process / thread / off",
        "server CPU µs/request process / thread / off",
        "PostgreSQL CPU µs/request process / thread",
    ],
    _logwriter,
)


def main(argv: list[str], rounds: int = 3, seconds: float = 6.0) -> None:
    """Start one server per configuration on a fresh bench database, measure every cell on
    all of them, and print a Markdown table."""
    which = {"microbatch": MICROBATCH, "logwriter": LOGWRITER}[argv[0] if argv else "microbatch"]
    subprocess.run([sys.executable, "-m", "bench.prepare", "fresh"], cwd=ROOT, check=True)
    models = build_models(print)
    servers: dict[str, Server] = {}
    rows = []
    try:
        for key, (log_on, env) in which.servers.items():
            servers[key] = start_loopserve(prediction_log=log_on, name=f"loopserve-{key}", **env)
        for cell in which.cells(models):
            m, proto, n, conc = cell
            rows.append(
                [m.name, proto, n, conc, *which.row(*measure(servers, cell, rounds, seconds))]
            )
            print(f"measured {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print("\n".join(table(which.header, rows)))


if __name__ == "__main__":
    main(sys.argv[1:])
