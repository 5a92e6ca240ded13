"""Two or more `loopserve api` configurations measured back to back on one cell, for the
decision scripts (bench.microbatch, bench.logwriter).

Each server is warmed, then measured in turn for a number of rounds, the order rotating from
round to round so that drift on this machine falls on all of them alike, with the same wrk as
bench.run; after each run the prediction log is left to drain, so that a log's writing counts
against its own run. CPU per request comes from /proc, counted until the log has drained.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.config import ROOT
from bench.cpu import TICK, postgres_pids, proc_ticks
from bench.load import run_wrk, v1_body, v2_body, write_payload
from bench.models import BenchModel, build_models
from bench.run import path
from bench.servers import Server, start_loopserve, wait_log_drained

Cell = tuple[BenchModel, str, int, int]  # model, protocol, rows per request, concurrency


@dataclass(frozen=True)
class Measured:
    """The mean over the rounds of one server's runs on one cell."""

    rps: float
    p99_ms: float
    server_us: float  # CPU per request of the server's process tree
    postgres_us: float  # CPU per request of PostgreSQL's processes


def _cpu_seconds(pids: list[int]) -> float:
    return sum(proc_ticks(pid)[1] for pid in pids) / TICK


def measure_cell(
    servers: dict[str, Server],
    m: BenchModel,
    proto: str,
    rows: int,
    conc: int,
    *,
    rounds: int,
    seconds: float,
    tag: str,
) -> dict[str, Measured]:
    body = (v1_body if proto == "v1" else v2_body)(m.X[:rows])
    payload = write_payload(f"{tag}-{m.name}-{proto}-{rows}", body)
    keys = list(servers)
    runs: dict[str, list[Measured]] = {key: [] for key in keys}
    for server in servers.values():
        run_wrk(server.url + path(proto, m.name), payload, connections=conc, seconds=2)
        wait_log_drained(server)
    for turn in range(rounds):
        shift = turn % len(keys)
        for key in keys[shift:] + keys[:shift]:
            server = servers[key]
            pids, pg = server.pids(), postgres_pids()
            cpu0, pg0 = _cpu_seconds(pids), _cpu_seconds(pg)
            result = run_wrk(
                server.url + path(proto, m.name), payload, connections=conc, seconds=seconds
            )
            wait_log_drained(server)
            n = max(result.ok, 1)
            runs[key].append(
                Measured(
                    result.rps,
                    result.p99_ms,
                    (_cpu_seconds(pids) - cpu0) / n * 1e6,
                    (_cpu_seconds(postgres_pids()) - pg0) / n * 1e6,
                )
            )
    return {
        key: Measured(
            statistics.mean(r.rps for r in done),
            statistics.mean(r.p99_ms for r in done),
            statistics.mean(r.server_us for r in done),
            statistics.mean(r.postgres_us for r in done),
        )
        for key, done in runs.items()
    }


def compare(
    configs: dict[str, dict[str, Any]],
    cells: Callable[[list[BenchModel]], list[Cell]],
    header: list[str],
    row: Callable[[Cell, dict[str, Measured]], list[str]],
    *,
    rounds: int = 3,
    seconds: float = 6.0,
) -> None:
    """Start one server per configuration (start_loopserve's arguments, by name) on a fresh
    bench database, measure every cell on all of them, and print a Markdown table row by row."""
    subprocess.run([sys.executable, "-m", "bench.prepare", "fresh"], cwd=ROOT, check=True)
    models = build_models(print)
    servers: dict[str, Server] = {}
    tag = "-".join(configs)  # payload file names of this comparison
    try:
        for key, kwargs in configs.items():
            servers[key] = start_loopserve(**kwargs)
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cell in cells(models):
            got = measure_cell(servers, *cell, rounds=rounds, seconds=seconds, tag=tag)
            m, proto, rows, conc = cell
            print(
                "| " + " | ".join([m.name, proto, str(rows), str(conc), *row(cell, got)]) + " |",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()
