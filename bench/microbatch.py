"""Micro-batching on and off, measured back to back: is gathering the requests of one event-loop
turn into one ONNX call worth its extra loop turn?

Two `loopserve api` processes on the bench database, both with validation and the prediction
log on, one with LOOPSERVE_MICRO_BATCH=false. Each cell is measured on both in turn, the order
alternating over the rounds, with the same wrk as bench.run; the table gives the mean r/s and
p99 of the rounds.

Run: .venv/bin/python -m bench.microbatch   (after bench.run has set up wrk and the database)
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from bench.config import ROOT
from bench.load import run_wrk, v1_body, v2_body, write_payload
from bench.models import build_models
from bench.run import path
from bench.servers import start_loopserve, wait_log_drained

ROUNDS = 3
SECONDS = 6.0


def main() -> None:
    subprocess.run([sys.executable, "-m", "bench.prepare", "fresh"], cwd=ROOT, check=True)
    models = build_models(print)
    servers = {
        "on": start_loopserve(prediction_log=True, name="loopserve-batch-on"),
        "off": start_loopserve(
            prediction_log=True, name="loopserve-batch-off", LOOPSERVE_MICRO_BATCH="false"
        ),
    }
    cells = [(m, proto, rows, 16) for m in models for proto in ("v1", "v2") for rows in (1, 1000)]
    cells += [(models[0], "v1", 1, 1)]
    print("| model | protocol | rows | conc | r/s on | r/s off | gain | p99 on ms | p99 off ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for m, proto, rows, conc in cells:
            body = (v1_body if proto == "v1" else v2_body)(m.X[:rows])
            payload = write_payload(f"microbatch-{m.name}-{proto}-{rows}", body)
            runs: dict[str, list[tuple[float, float]]] = {key: [] for key in servers}
            for server in servers.values():
                run_wrk(server.url + path(proto, m.name), payload, connections=conc, seconds=2)
            for turn in range(ROUNDS):
                for key in ("on", "off") if turn % 2 == 0 else ("off", "on"):
                    server = servers[key]
                    url = server.url + path(proto, m.name)
                    result = run_wrk(url, payload, connections=conc, seconds=SECONDS)
                    wait_log_drained(server)
                    runs[key].append((result.rps, result.p99_ms))
            rps = {k: statistics.mean(r for r, _ in v) for k, v in runs.items()}
            p99 = {k: statistics.mean(p for _, p in v) for k, v in runs.items()}
            gain = (rps["on"] / rps["off"] - 1) * 100
            print(
                f"| {m.name} | {proto} | {rows} | {conc} | {rps['on']:,.0f} | {rps['off']:,.0f} "
                f"| {gain:+.1f} % | {p99['on']:.1f} | {p99['off']:.1f} |",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
