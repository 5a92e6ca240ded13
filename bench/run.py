"""The whole bench in one command: `.venv/bin/python -m bench.run` (about 15 minutes).

Setup (cached), the in-process floor, the load matrix over every server, the swap and feedback
scenarios, py-spy profiles for missed targets, then bench/RESULTS.md. Every server is started
and stopped here; a failure stops what was started and still writes what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from bench import prepare, report, stages
from bench.config import (
    BATCH_ROWS,
    BUSY_CORES,
    MLSERVER_VENV,
    PG_ADMIN_URL,
    RESULTS,
    ROOT,
    WORK,
    Timing,
)
from bench.cpu import CpuWatch
from bench.inprocess import measure
from bench.load import Payload, WrkResult, probe, run_wrk, v1_body, v2_body, write_payload
from bench.models import BenchModel, build_models
from bench.profiling import Profile, profile_under_load
from bench.scenarios import feedback_ingest, post_labels, swap_under_load
from bench.servers import (
    LOGS,
    Server,
    start_floor,
    start_loopserve,
    start_mlserver,
    status_counts,
    wait_log_drained,
)

PROTOCOLS = {
    "floor": ("v1", "v2"),
    "loopserve_log_on": ("v1", "v2"),
    "loopserve_log_off": ("v1", "v2"),
    "mlserver_single": ("v2",),
    "mlserver_default": ("v2",),
}
CONCURRENCY = (1, 16)
ROW_COUNTS = (1, BATCH_ROWS)
LOOPSERVE_DEPS = [
    "onnxruntime",
    "numpy",
    "orjson",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "SQLAlchemy",
    "psycopg",
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "py-spy",
]
MLSERVER_DEPS = [
    "mlserver",
    "mlserver-sklearn",
    "scikit-learn",
    "numpy",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
]

CODE_DIRS = ("api", "registry", "tuning", "worker", "cli", "pyproject.toml")

_running: list[Server] = []
_notes: list[str] = []
_started = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.0f}s] {msg}", flush=True)


def start(key: str, models: list[BenchModel]) -> Server:
    if key == "floor":
        server = start_floor(models)
    elif key.startswith("loopserve"):
        database("ensure")  # the schema follows the code even if it moved since the run began
        server = start_loopserve(prediction_log=key == "loopserve_log_on")
    else:
        parallel = 0 if key == "mlserver_single" else None
        server = start_mlserver(models, parallel_workers=parallel, label=key.split("_")[1])
    _running.append(server)
    return server


def database(action: str) -> None:
    """`python -m bench.prepare fresh|ensure` in a new process: today's registry code."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.prepare", action],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.prepare {action} failed: {proc.stderr[-1500:]}")
    for line in proc.stdout.splitlines():
        log(f"  {line}")
        if line.startswith("BENCH_DB recreated"):
            _notes.append(
                "the bench database was recreated during the run because migrating it to the "
                f"current code failed: {line.removeprefix('BENCH_DB recreated ')}"
            )


def stop(server: Server) -> None:
    server.stop()
    if server in _running:
        _running.remove(server)
    count, lines = server.log_errors()
    if count or lines:
        _notes.append(
            f"{server.name} logged {count} traceback(s) ({'; '.join(lines) or 'see log'}); "
            f"its output is in {server.log_path.relative_to(ROOT)}."
        )


def git_state() -> dict[str, Any]:
    """The last commit that changed loopserve's code, and its uncommitted changes: which
    code was measured (commits touching only bench/ or docs do not count)."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.rstrip("\n")

    dirty = git("status", "--porcelain", "--", *CODE_DIRS).splitlines()
    return {
        "head": git("log", "-1", "--format=%h", "--", *CODE_DIRS),  # last commit of the code
        "dirty": [d[3:] for d in dirty],
    }


def path(protocol: str, model: str) -> str:
    return f"/v1/models/{model}/predict" if protocol == "v1" else f"/v2/models/{model}/infer"


def make_payloads(models: list[BenchModel]) -> dict[tuple[str, str, int], Payload]:
    """One body per model, body format and batch size (the V2 body serves every V2 server)."""
    out = {}
    for m in models:
        for rows in ROW_COUNTS:
            X = m.X[:rows]
            out[m.name, "v1", rows] = write_payload(f"{m.name}-v1-{rows}", v1_body(X))
            out[m.name, "v2", rows] = write_payload(f"{m.name}-v2-{rows}", v2_body(X))
    return out


def measure_cell(
    server: Server,
    key: str,
    protocol: str,
    model: str,
    rows: int,
    conc: int,
    payload: Payload,
    timing: Timing,
) -> dict[str, Any]:
    """Probe once (a non-2xx makes the cell n/a), warm up, then measure."""
    base = {"server": key, "protocol": protocol, "model": model, "rows": rows, "conc": conc}
    url = server.url + path(protocol, model)
    status, text = probe(url, payload)
    if not 200 <= status < 300:
        return {**base, "status": "n/a", "note": f"probe answered HTTP {status}: {text}"}
    try:
        run_wrk(url, payload, connections=conc, seconds=timing.warmup)
        before = status_counts(server) if key.startswith("loopserve") else {}
        result, other = _measured(server, url, payload, conc, timing)
        if other > BUSY_CORES:  # something else ran meanwhile: measure once more
            log(f"  {other:.2f} other cores busy during the cell; measuring again")
            before = status_counts(server) if key.startswith("loopserve") else {}
            result, other = _measured(server, url, payload, conc, timing)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {**base, "status": "n/a", "note": f"wrk failed: {exc}"}
    cell = {**base, "status": "ok", **result.as_dict(), "other_cores": other}
    if result.non_2xx and before:  # which statuses loopserve answered, from its /metrics
        after = status_counts(server)
        if not after:
            cell["note"] = "statuses unreadable: /metrics did not answer"
        cell["statuses"] = {
            k: int(v - before.get(k, 0))
            for k, v in sorted(after.items())
            if not k.startswith("2") and v > before.get(k, 0)
        }
    return cell


def _measured(
    server: Server, url: str, payload: Payload, conc: int, timing: Timing
) -> tuple[WrkResult, float]:
    """One measured wrk run and the cores other processes used meanwhile."""
    watch = CpuWatch(server.pids)
    result = run_wrk(url, payload, connections=conc, seconds=timing.duration)
    return result, watch.other_cores()


def run_matrix(
    models: list[BenchModel], payloads: dict[tuple[str, str, int], Payload], timing: Timing
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every cell on every server, the servers' measurements of one cell back to back.

    All servers run from the start (idle ones use no CPU), and each cell is measured on each
    server in turn, the order rotating from cell to cell: this machine's speed drifts by tens
    of percent over minutes, and ratios between measurements taken seconds apart cancel the
    drift that ratios between phases minutes apart would carry.
    """
    cells: list[dict[str, Any]] = []
    rss: dict[str, dict[str, Any]] = {}
    running: dict[str, Server] = {}
    idle: dict[str, float] = {}
    try:
        for key in PROTOCOLS:
            log(f"starting {key}")
            running[key] = start(key, models)
            idle[key], _ = running[key].rss_mib()
        turn = 0
        for m in models:
            for rows in ROW_COUNTS:
                for conc in CONCURRENCY:
                    for proto in ("v1", "v2"):
                        keys = [k for k in PROTOCOLS if proto in PROTOCOLS[k]]
                        turn += 1
                        keys = keys[turn % len(keys) :] + keys[: turn % len(keys)]
                        for key in keys:
                            cells.append(
                                _matrix_cell(
                                    running[key], key, proto, m.name, rows, conc, payloads, timing
                                )
                            )
    finally:
        for key, server in running.items():
            after, procs = server.rss_mib()
            rss[key] = {"idle_mib": idle[key], "after_mib": after, "processes": procs}
            stop(server)
    return cells, rss


def _matrix_cell(
    server: Server,
    key: str,
    proto: str,
    model: str,
    rows: int,
    conc: int,
    payloads: dict[tuple[str, str, int], Payload],
    timing: Timing,
) -> dict[str, Any]:
    payload = payloads[model, "v1" if proto == "v1" else "v2", rows]
    c = measure_cell(server, key, proto, model, rows, conc, payload, timing)
    if c["status"] == "ok":
        log(
            f"{key} {proto} {model} rows={rows} c={conc}: {c['rps']:.0f} r/s "
            f"p50 {c['p50_ms']:.2f} ms p99 {c['p99_ms']:.2f} ms non-2xx {c['non_2xx']} "
            f"sock {c['socket_errors']}"
        )
    else:
        log(f"{key} {proto} {model} rows={rows} c={conc}: n/a")
    if key == "loopserve_log_on":
        waited = wait_log_drained(server)
        if waited > 1:
            log(f"  prediction log drained in {waited:.1f}s")
    return c


def profile_misses(
    results: dict[str, Any],
    models: list[BenchModel],
    payloads: dict[tuple[str, str, int], Payload],
    label_batches: list[list[dict[str, str]]],
    timing: Timing,
) -> list[dict[str, Any]]:
    """One py-spy profile per distinct load behind a missed target (v1 first), capped."""
    specs: list[dict[str, Any]] = []
    for t in results["targets"]:
        spec = t.get("profile")
        if spec and spec not in specs:
            specs.append(spec)
    specs.sort(key=lambda s: (s["kind"] != "predict" or s["protocol"] != "v1", s.get("rows", 0)))
    if not specs:
        return []
    dropped = specs[timing.max_profiles :]
    if dropped:
        results.setdefault("notes", []).append(
            f"{len(dropped)} more missed load(s) were not profiled (cap {timing.max_profiles}): "
            + ", ".join(json.dumps(s) for s in dropped)
        )
    specs = specs[: timing.max_profiles]
    by_name = {m.name: m for m in models}
    server = start("loopserve_log_on", models)
    out: list[Profile] = []
    try:
        for spec in specs:
            model = by_name[spec["model"]]
            load: Callable[[float], object]
            if spec["kind"] == "feedback":
                url = f"{server.url}/v1/models/{model.name}/feedback"
                label = f"feedback ingest, {model.name} (batches of 500, 4 clients)"

                def load(seconds: float, url: str = url) -> object:
                    return repost_labels(url, label_batches, timing.feedback_clients, seconds)

                slug = f"feedback-{model.name}"
            else:
                proto, rows = spec["protocol"], spec["rows"]
                url = server.url + path(proto, model.name)
                payload = payloads[model.name, "v1" if proto == "v1" else "v2", rows]
                label = f"{proto} predict, {model.name}, {rows} row(s) per request, c16, log on"

                def load(seconds: float, url: str = url, payload: Payload = payload) -> object:
                    return run_wrk(url, payload, connections=16, seconds=seconds)

                slug = f"{proto}-{model.name}-{rows}"
                run_wrk(url, payload, connections=16, seconds=timing.warmup)
            log(f"profiling: {label}")
            out.append(
                profile_under_load(
                    server.proc.pid,
                    load,
                    timing.profile_seconds,
                    WORK / "profiles" / f"{slug}.txt",
                    label,
                )
            )
            wait_log_drained(server)
    finally:
        stop(server)
    return [p.as_dict() for p in out]


def repost_labels(
    url: str, batches: list[list[dict[str, str]]], clients: int, seconds: float
) -> None:
    """Feedback load for a profile: re-post the same labels (idempotent) until time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and batches:
        post_labels(url, batches, clients, deadline)


def environment() -> dict[str, Any]:
    def versions(names: list[str]) -> dict[str, str]:
        out = {}
        for n in names:
            try:
                out[n] = metadata.version(n)
            except metadata.PackageNotFoundError:
                out[n] = "absent"
        return out

    script = (
        "import json, sys; from importlib import metadata as m; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    ml = subprocess.run(
        [str(MLSERVER_VENV / "bin" / "python"), "-c", script, *MLSERVER_DEPS],
        capture_output=True,
        text=True,
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem_gib": mem_kib / 1024**2,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0],
        "postgres": row[0] if row else "?",
        "versions": {
            "loopserve": versions(LOOPSERVE_DEPS),
            "mlserver": json.loads(ml.stdout) if ml.returncode == 0 else {"error": ml.stderr},
        },
    }


T = TypeVar("T")


def _scenario(results: dict[str, Any], key: str, run: Callable[[], T]) -> T | None:
    """Run one scenario; its failure is recorded as `{key}_error` instead of ending the run."""
    try:
        return run()
    except Exception as exc:
        results[f"{key}_error"] = repr(exc)
        log(f"{key} failed: {exc!r}")
        return None


def _on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s cells: a smoke run")
    args = parser.parse_args(argv)
    timing = Timing.quick() if args.quick else Timing()
    signal.signal(signal.SIGTERM, _on_sigterm)
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(LOGS, ignore_errors=True)  # this run's server outputs only
    command = ".venv/bin/python -m bench.run" + (" --quick" if args.quick else "")
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "timing": asdict(timing),
        "notes": _notes,
        "git": git_state(),
    }
    try:
        log("setup: wrk, MLServer venv, py-spy, models, database")
        prepare.ensure_wrk(log)
        prepare.ensure_mlserver(log)
        prepare.ensure_pyspy(log)
        models = build_models(log)
        database("fresh")
        payloads = make_payloads(models)
        results["models"] = [m.name for m in models]
        results["model_descriptions"] = {m.name: m.description for m in models}
        results["environment"] = environment()

        log("in-process floor")
        results["inprocess"] = [asdict(x) for x in measure(models, ROW_COUNTS)]
        log("request stages in-process")
        results["stages"] = [asdict(x) for x in stages.measure(models, ROW_COUNTS)]

        results["cells"], results["rss"] = run_matrix(models, payloads, timing)

        lr = models[0]
        label_batches: list[list[dict[str, str]]] = []
        server = start("loopserve_log_on", models)
        try:
            log("swap under load")
            swap_payload = payloads[lr.name, "v1", 1]
            swap = _scenario(
                results, "swap", lambda: swap_under_load(server, lr.name, swap_payload, timing)
            )
            if swap is not None:
                results["swap"] = {"model": lr.name, **swap.as_dict()}
                log(
                    f"swap: {swap.failed} failed, p99 {swap.during.p99_ms:.1f} ms during vs "
                    f"{swap.steady.p99_ms:.1f} ms steady"
                )
            wait_log_drained(server)
            log("feedback ingest")
            ingest = _scenario(results, "feedback", lambda: feedback_ingest(server, lr, timing))
            if ingest is not None:
                fb, label_batches = ingest
                results["feedback"] = {"model": lr.name, **fb.as_dict()}
                log(
                    f"feedback: {fb.labels_per_s:.0f} labels/s, {fb.acknowledged} "
                    f"acknowledged, {fb.stored} stored"
                )
        finally:
            stop(server)

        results["targets"] = report.targets(results)
        results["profiles"] = profile_misses(results, models, payloads, label_batches, timing)
    except BaseException as exc:
        results["notes"].append(f"the run stopped early: {exc!r}")
        raise
    finally:
        for server in list(_running):
            stop(server)
        results["elapsed_s"] = time.monotonic() - _started
        end = git_state()
        if end != results["git"]:
            _notes.append(
                f"loopserve's code changed during the run (HEAD {results['git']['head']} "
                f"-> {end['head']}, uncommitted {results['git']['dirty']} -> {end['dirty']}): "
                "cells measured before and after the change are not comparable."
            )
        results.setdefault("targets", report.targets(results))
        (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))
        if "environment" in results:
            # Only a complete full run replaces the report; a smoke or aborted run goes aside.
            if "profiles" not in results:
                target = WORK / "RESULTS.partial.md"
            else:
                target = WORK / "RESULTS.quick.md" if args.quick else RESULTS
            target.write_text(report.render(results))
            log(f"wrote {target} and {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
