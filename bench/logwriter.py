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

import statistics
import subprocess
import sys

from bench.config import ROOT
from bench.cpu import TICK, postgres_pids, proc_ticks
from bench.load import run_wrk, v1_body, v2_body, write_payload
from bench.models import build_models
from bench.run import path
from bench.servers import start_loopserve, wait_log_drained

ROUNDS = 3
SECONDS = 6.0


def _cpu_seconds(pids: list[int]) -> float:
    return sum(proc_ticks(pid)[1] for pid in pids) / TICK


def main() -> None:
    subprocess.run([sys.executable, "-m", "bench.prepare", "fresh"], cwd=ROOT, check=True)
    models = build_models(print)
    servers = {
        "process": start_loopserve(prediction_log=True, name="loopserve-log-process"),
        "thread": start_loopserve(
            prediction_log=True,
            name="loopserve-log-thread",
            LOOPSERVE_LOG_WRITER_PROCESS="false",
        ),
        "off": start_loopserve(prediction_log=False, name="loopserve-log-off"),
    }
    keys = list(servers)
    cells = [(m, proto, 1000, 16) for m in models for proto in ("v1", "v2")]
    cells += [(models[0], "v2", 1000, 1), (models[0], "v2", 1, 16)]
    print(
        "| model | protocol | rows | conc | r/s log in a process | r/s log in a thread "
        "| r/s log off | cost, process | cost, thread | p99 ms process / thread / off "
        "| server CPU µs/request process / thread / off | PostgreSQL CPU µs/request process "
        "/ thread |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        for m, proto, rows, conc in cells:
            body = (v1_body if proto == "v1" else v2_body)(m.X[:rows])
            payload = write_payload(f"logwriter-{m.name}-{proto}-{rows}", body)
            runs: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in servers}
            for server in servers.values():
                run_wrk(server.url + path(proto, m.name), payload, connections=conc, seconds=2)
                wait_log_drained(server)
            for turn in range(ROUNDS):
                for key in keys[turn % 3 :] + keys[: turn % 3]:
                    server = servers[key]
                    url = server.url + path(proto, m.name)
                    pids, pg = server.pids(), postgres_pids()
                    cpu0, pg0 = _cpu_seconds(pids), _cpu_seconds(pg)
                    result = run_wrk(url, payload, connections=conc, seconds=SECONDS)
                    wait_log_drained(server)
                    n = max(result.ok, 1)
                    cpu = (_cpu_seconds(pids) - cpu0) / n * 1e6
                    pg_cpu = (_cpu_seconds(postgres_pids()) - pg0) / n * 1e6
                    runs[key].append((result.rps, result.p99_ms, cpu, pg_cpu))
            rps = {k: statistics.mean(r[0] for r in v) for k, v in runs.items()}
            p99 = {k: statistics.mean(r[1] for r in v) for k, v in runs.items()}
            cpu = {k: statistics.mean(r[2] for r in v) for k, v in runs.items()}
            pg = {k: statistics.mean(r[3] for r in v) for k, v in runs.items()}
            cost = {k: (1 - rps[k] / rps["off"]) * 100 for k in ("process", "thread")}
            print(
                f"| {m.name} | {proto} | {rows} | {conc} | {rps['process']:,.0f} "
                f"| {rps['thread']:,.0f} | {rps['off']:,.0f} | {cost['process']:.1f} % "
                f"| {cost['thread']:.1f} % | {p99['process']:.1f} / {p99['thread']:.1f} / "
                f"{p99['off']:.1f} | {cpu['process']:,.0f} / {cpu['thread']:,.0f} / "
                f"{cpu['off']:,.0f} | {pg['process']:,.0f} / {pg['thread']:,.0f} |",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
