"""The cost of durable predictions: `python -m bench.durable` (about 7 minutes).

Two `loopserve api` servers, the prediction log on in both, LOOPSERVE_DURABLE_PREDICTIONS off
and on, each on a database of its own (`loopserve_bench_durable_off`/`_on`, recreated by each
run, so it never touches bench.run's `loopserve_bench`), measured back to back on the same
cells with wrk as bench.backtoback does: each warmed, then `--rounds` runs of `--seconds`
each, the order rotating from round to round, the log drained after each run. Besides r/s and
p99 it counts the rows of `prediction_batches` each run added: in durable mode each is one
commit that answered its requests (one model, so one chunk per write), which shows how many
requests shared a commit. Needs wrk and PostgreSQL as bench.run does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import psycopg

from bench.config import PG_ADMIN_URL, path
from bench.load import run_wrk, v1_body, v2_body, write_payload
from bench.models import BenchModel, build_models
from bench.prepare import ensure_wrk, register
from bench.report import table
from bench.servers import (
    TICK,
    Server,
    cpu_ticks,
    postgres_pids,
    start_loopserve,
    wait_log_drained,
)

MODES = {"off": "false", "on": "true"}
Cell = tuple[str, int, int]  # protocol, rows per request, concurrency
CELLS: list[Cell] = [
    ("v1", 1, 16),
    ("v2", 1, 16),
    ("v1", 1, 64),
    ("v1", 1, 256),
    ("v1", 1, 1),
    ("v1", 1000, 16),
]


def database(mode: str) -> tuple[str, str]:
    """(SQLAlchemy URL, libpq URL) of a mode's database."""
    name = f"loopserve_bench_durable_{mode}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://"), f"{base}/{name}"


def fresh(models: list[BenchModel]) -> None:
    for mode in MODES:
        name = database(mode)[1].rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        register(database(mode)[0], models, print)


def _cpu_s(pids: list[int]) -> float:
    return sum(cpu_ticks(p) for p in pids) / TICK


def logged_batches(mode: str) -> int:
    with psycopg.connect(database(mode)[1]) as conn:
        row = conn.execute("SELECT count(*) FROM prediction_batches").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Run:
    rps: float
    p99_ms: float
    failed: int  # non-2xx answers and socket errors
    requests_per_batch: float  # requests answered per logged row (per commit, in durable mode)
    server_us: float  # CPU per request of the server's process tree
    postgres_us: float  # CPU per request of PostgreSQL's processes


def measure(
    servers: dict[str, Server], model: BenchModel, cell: Cell, rounds: int, seconds: float
) -> dict[str, Run]:
    """The mean of each server's rounds on the cell."""
    proto, rows, conc = cell
    body = (v1_body if proto == "v1" else v2_body)(model.X[:rows])
    payload = write_payload(f"durable-{model.name}-{proto}-{rows}", body)
    url = {mode: s.url + path(proto, model.name) for mode, s in servers.items()}
    for mode, server in servers.items():
        run_wrk(url[mode], payload, connections=conc, seconds=2)
        wait_log_drained(server)
    modes = list(servers)
    runs: dict[str, list[Run]] = {mode: [] for mode in modes}
    for turn in range(rounds):
        for mode in modes[turn % len(modes) :] + modes[: turn % len(modes)]:
            pids, pg = servers[mode].pids(), postgres_pids()
            cpu0, pg0, batches0 = _cpu_s(pids), _cpu_s(pg), logged_batches(mode)
            w = run_wrk(url[mode], payload, connections=conc, seconds=seconds)
            cpu, pg_cpu = _cpu_s(pids) - cpu0, _cpu_s(postgres_pids()) - pg0
            wait_log_drained(servers[mode])
            batches = logged_batches(mode) - batches0
            n = max(w.ok, 1)
            failed = w.non_2xx + w.socket_errors
            per_batch = n / max(batches, 1)
            cost = (cpu / n * 1e6, pg_cpu / n * 1e6)
            runs[mode].append(Run(w.rps, w.p99_ms, failed, per_batch, *cost))
    return {
        mode: Run(
            statistics.mean(r.rps for r in rs),
            statistics.mean(r.p99_ms for r in rs),
            sum(r.failed for r in rs),
            statistics.mean(r.requests_per_batch for r in rs),
            statistics.mean(r.server_us for r in rs),
            statistics.mean(r.postgres_us for r in rs),
        )
        for mode, rs in runs.items()
    }


HEADER = (
    "model | protocol | rows | conc | r/s off | r/s durable | cost | p99 ms off / durable | "
    "requests per commit, durable | server CPU µs/request off / durable | "
    "PostgreSQL CPU µs/request off / durable | failed off / durable"
)


def row(model: BenchModel, cell: Cell, m: dict[str, Run]) -> list[object]:
    off, on = m["off"], m["on"]
    return [
        model.name,
        *cell,
        f"{off.rps:,.0f}",
        f"{on.rps:,.0f}",
        f"{(1 - on.rps / off.rps) * 100:.1f} %",
        f"{off.p99_ms:.1f} / {on.p99_ms:.1f}",
        f"{on.requests_per_batch:.1f}",
        f"{off.server_us:,.0f} / {on.server_us:,.0f}",
        f"{off.postgres_us:,.0f} / {on.postgres_us:,.0f}",
        f"{off.failed} / {on.failed}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=7.0)
    args = parser.parse_args(argv)
    ensure_wrk(print)
    models = build_models(print)
    model = next(m for m in models if m.name == "bench_lr")
    fresh(models)
    servers: dict[str, Server] = {}
    rows = []
    try:
        for mode, flag in MODES.items():
            servers[mode] = start_loopserve(
                prediction_log=True,
                name=f"loopserve-durable-{mode}",
                LOOPSERVE_DATABASE_URL=database(mode)[0],
                LOOPSERVE_DURABLE_PREDICTIONS=flag,
            )
        for cell in CELLS:
            rows.append(row(model, cell, measure(servers, model, cell, args.rounds, args.seconds)))
            print(f"measured {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print("\n".join(table(HEADER, rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
