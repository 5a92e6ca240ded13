"""The whole bench in one command: `.venv/bin/python -m bench.run [--quick]` (bench/README.md).

Every server is started and stopped here; a failure stops what was started and still writes
what was measured.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psycopg

from bench import prepare
from bench.config import (
    BUSY_CORES,
    CONCURRENCY,
    MLSERVER_VENV,
    PG_ADMIN_URL,
    QUICK,
    RESULTS,
    ROOT,
    ROW_COUNTS,
    WORK,
    Timing,
    path,
)
from bench.inprocess import call_rates, stages
from bench.load import Payload, probe, run_wrk, v1_body, v2_body, write_payload
from bench.models import BenchModel, build_models
from bench.profiling import profile_under_load
from bench.record import SERVERS, Cell, Environment, Memory, Run
from bench.report import render, targets
from bench.scenarios import Labels, feedback_ingest, post_labels, swap_under_load
from bench.servers import (
    LOGS,
    CpuWatch,
    Server,
    start_floor,
    start_loopserve,
    start_mlserver,
    status_counts,
    wait_log_drained,
)

Payloads = dict[tuple[str, str, int], Payload]  # (model, protocol, rows): body
LOOPSERVE_DEPS = "onnxruntime numpy orjson fastapi starlette uvicorn uvloop httptools pydantic"
LOOPSERVE_DEPS += " SQLAlchemy psycopg scikit-learn skl2onnx onnx py-spy"
MLSERVER_DEPS = "mlserver mlserver-sklearn scikit-learn numpy fastapi starlette uvicorn uvloop"
MLSERVER_DEPS += " httptools pydantic"
CODE = ("api", "registry", "tuning", "worker", "cli", "pyproject.toml")


@dataclass
class Bench:
    """One run in progress: its record, the servers it has running, its clock."""

    run: Run
    started: float = field(default_factory=time.monotonic)
    running: list[Server] = field(default_factory=list)

    @property
    def timing(self) -> Timing:
        return self.run.timing

    def log(self, msg: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.0f}s] {msg}", flush=True)

    def database(self, action: str) -> None:
        """`python -m bench.prepare fresh|ensure` in a new process: today's registry code."""
        cmd = [sys.executable, "-m", "bench.prepare", action]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench.prepare {action} failed: {proc.stderr[-1500:]}")
        for line in proc.stdout.splitlines():
            self.log(f"  {line}")
            if line.startswith("BENCH_DB recreated"):
                why = line.removeprefix("BENCH_DB recreated ")
                self.run.notes.append(f"the bench database was recreated during the run: {why}")

    def start(self, key: str, models: list[BenchModel]) -> Server:
        if key == "floor":
            server = start_floor(models)
        elif key.startswith("loopserve"):
            self.database("ensure")  # the schema follows the code if it moved during the run
            server = start_loopserve(prediction_log=key == "loopserve_log_on")
        else:
            server = start_mlserver(models, parallel_workers=0 if "single" in key else None)
        self.running.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self.running.remove(server)
        count, lines = server.log_errors()
        if count or lines:
            self.run.notes.append(
                f"{server.name} logged {count} traceback(s) ({'; '.join(lines) or 'see log'}); "
                f"its output is in {server.log_path.relative_to(ROOT)}."
            )

    def cell(
        self, server: Server, key: str, proto: str, m: str, rows: int, conc: int, body: Payload
    ) -> Cell:
        """Probe once (a non-2xx makes the cell n/a), warm up, measure; measure again once
        when other processes used the CPU meanwhile."""
        at = (key, proto, m, rows, conc)
        url = server.url + path(proto, m)
        status, text = probe(url, body)
        if not 200 <= status < 300:
            return Cell(*at, note=f"probe answered HTTP {status}: {text}")
        try:
            run_wrk(url, body, connections=conc, seconds=self.timing.warmup)
            for attempt in range(2):
                before = status_counts(server) if key.startswith("loopserve") else {}
                watch = CpuWatch(server.pids)
                wrk = run_wrk(url, body, connections=conc, seconds=self.timing.duration)
                if (other := watch.other_cores()) <= BUSY_CORES:
                    break
                if attempt == 0:
                    self.log(f"  {other:.2f} other cores busy during the cell; measuring again")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return Cell(*at, note=f"wrk failed: {exc}")
        note, statuses = "", {}
        if wrk.non_2xx and before:  # which statuses loopserve answered, from its /metrics
            after = status_counts(server)
            note = "" if after else "statuses unreadable: /metrics did not answer"
            new = {k: int(v - before.get(k, 0)) for k, v in sorted(after.items())}
            statuses = {k: n for k, n in new.items() if n > 0 and not k.startswith("2")}
        return Cell(*at, wrk, note, other, statuses)

    def matrix(self, models: list[BenchModel], payloads: Payloads) -> None:
        """Every cell on every server, one cell's servers back to back in an order that
        rotates from cell to cell; all servers run throughout (idle ones use no CPU)."""
        running: dict[str, Server] = {}
        idle: dict[str, float] = {}
        try:
            for key in SERVERS:
                self.log(f"starting {key}")
                running[key] = self.start(key, models)
                idle[key] = running[key].rss_mib()[0]
            cells = itertools.product(models, ROW_COUNTS, CONCURRENCY, ("v1", "v2"))
            for turn, (m, rows, conc, proto) in enumerate(cells, 1):
                keys = [k for k in SERVERS if proto in SERVERS[k][1]]
                for key in keys[turn % len(keys) :] + keys[: turn % len(keys)]:
                    body = payloads[m.name, proto, rows]
                    c = self.cell(running[key], key, proto, m.name, rows, conc, body)
                    self.run.cells.append(c)
                    self.log(f"{key} {proto} {m.name} rows={rows} c={conc}: {c.wrk or 'n/a'}")
                    if key == "loopserve_log_on" and (waited := wait_log_drained(running[key])) > 1:
                        self.log(f"  prediction log drained in {waited:.1f}s")
        finally:
            for key, server in running.items():
                after, procs = server.rss_mib()
                self.run.memory.append(Memory(key, idle[key], after, procs))
                self.stop(server)

    def scenarios(self, models: list[BenchModel], payloads: Payloads) -> Labels:
        """Swap under load, then feedback ingest, on one loopserve (log on); a scenario that
        fails is recorded in `errors` and the run goes on. The label batches posted."""
        m, labels = models[0], Labels()
        server = self.start("loopserve_log_on", models)
        try:
            self.log("swap under load")
            try:
                self.run.swap = swap_under_load(
                    server, m.name, payloads[m.name, "v1", 1], self.timing
                )
            except Exception as exc:
                self.run.errors["swap"] = repr(exc)
            wait_log_drained(server)
            self.log("feedback ingest")
            try:
                self.run.feedback, labels = feedback_ingest(server, m, self.timing)
            except Exception as exc:
                self.run.errors["feedback"] = repr(exc)
        finally:
            self.stop(server)
        return labels

    def profiles(self, models: list[BenchModel], payloads: Payloads, labels: Labels) -> None:
        """One py-spy profile per distinct load behind a missed target (v1 first), capped."""
        loads = []
        for t in targets(self.run):
            if t.passed is False and t.load and t.load not in loads:
                loads.append(t.load)
        loads.sort(key=lambda x: (x.kind != "predict" or x.protocol != "v1", x.rows))
        cap = self.timing.max_profiles
        if dropped := loads[cap:]:
            self.run.notes.append(f"{len(dropped)} more missed load(s) not profiled: {dropped}")
        found = []
        server = self.start("loopserve_log_on", models) if loads else None
        try:
            for load in loads[:cap]:
                assert server is not None
                drive: Callable[..., object]
                if load.kind == "feedback":
                    url = f"{server.url}/v1/models/{load.model}/feedback"
                    drive = functools.partial(
                        repost_labels, url, labels, self.timing.feedback_clients
                    )
                    slug = f"feedback-{load.model}"
                else:
                    url = server.url + path(load.protocol, load.model)
                    body = payloads[load.model, load.protocol, load.rows]
                    drive = functools.partial(run_wrk, url, body, connections=16)
                    slug = f"{load.protocol}-{load.model}-{load.rows}"
                    run_wrk(url, body, connections=16, seconds=self.timing.warmup)
                self.log(f"profiling {slug}")
                out = WORK / "profiles" / f"{slug}.txt"
                seconds = self.timing.profile_seconds
                found.append(profile_under_load(server.proc.pid, load, drive, seconds, out))
                wait_log_drained(server)
        finally:
            if server:
                self.stop(server)
        self.run.profiles = found


def repost_labels(url: str, batches: Labels, clients: int, *, seconds: float) -> None:
    """Feedback load for a profile: post the same labels again (idempotent) until time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and batches:
        post_labels(url, batches, clients, deadline)


def git_state() -> tuple[str, list[str]]:
    """The last commit that changed loopserve's code and its uncommitted changes: the code
    measured (commits of bench/ or docs only do not count)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--", *CODE).splitlines()
    return git("log", "-1", "--format=%h", "--", *CODE).strip(), [d[3:] for d in dirty]


def environment() -> Environment:
    def versions(names: str) -> dict[str, str]:
        out = {}
        for n in names.split():
            try:
                out[n] = metadata.version(n)
            except metadata.PackageNotFoundError:
                out[n] = "absent"
        return out

    script = "import json, sys; from importlib import metadata as m; "
    script += "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    ml = [str(MLSERVER_VENV / "bin" / "python"), "-c", script, *MLSERVER_DEPS.split()]
    ml_run = subprocess.run(ml, capture_output=True, text=True)
    proc = {k.strip(): v.strip() for k, _, v in _lines("/proc/cpuinfo") + _lines("/proc/meminfo")}
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return Environment(
        nproc=len(os.sched_getaffinity(0)),
        cpu=proc.get("model name", "?"),
        mem_gib=int(proc["MemTotal"].split()[0]) / 1024**2,
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        wrk=(wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0],
        postgres=row[0] if row else "?",
        loopserve=versions(LOOPSERVE_DEPS),
        mlserver=json.loads(ml_run.stdout) if ml_run.returncode == 0 else {"error": ml_run.stderr},
    )


def _lines(path: str) -> list[tuple[str, str, str]]:
    return [line.partition(":") for line in Path(path).read_text().splitlines()]


def _on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s cells: a smoke run")
    quick = parser.parse_args(argv).quick
    signal.signal(signal.SIGTERM, _on_sigterm)
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(LOGS, ignore_errors=True)  # this run's server outputs only
    code, dirty = git_state()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    command = ".venv/bin/python -m bench.run" + " --quick" * quick
    run = Run(started, command, QUICK if quick else Timing(), code, dirty)
    bench = Bench(run)
    try:
        bench.log("setup: wrk, MLServer venv, py-spy, models, database")
        prepare.ensure_wrk(bench.log)
        prepare.ensure_mlserver(bench.log)
        prepare.ensure_pyspy(bench.log)
        models = build_models(bench.log)
        bench.database("fresh")
        payloads: Payloads = {}
        for m, rows in itertools.product(models, ROW_COUNTS):
            for proto, body in (("v1", v1_body), ("v2", v2_body)):
                payloads[m.name, proto, rows] = write_payload(
                    f"{m.name}-{proto}-{rows}", body(m.X[:rows])
                )
        run.models = {m.name: m.description for m in models}
        run.environment = environment()
        bench.log("in-process floor")
        run.inprocess = call_rates(models, ROW_COUNTS)
        bench.log("request stages in-process")
        run.stages = stages(models, ROW_COUNTS)
        bench.matrix(models, payloads)
        labels = bench.scenarios(models, payloads)
        bench.profiles(models, payloads, labels)
    except BaseException as exc:
        run.notes.append(f"the run stopped early: {exc!r}")
        raise
    finally:
        for server in list(bench.running):
            bench.stop(server)
        run.elapsed_s = time.monotonic() - bench.started
        if (end := git_state()) != (code, dirty):
            run.notes.append(
                f"loopserve's code changed during the run (HEAD {code} -> {end[0]}, uncommitted "
                f"{dirty} -> {end[1]}): cells measured before and after are not comparable."
            )
        run.save(WORK / "results.json")
        if run.environment:  # only a complete full run replaces RESULTS.md
            name = "RESULTS.partial.md" if run.profiles is None else "RESULTS.quick.md"
            target = WORK / name if quick or run.profiles is None else RESULTS
            target.write_text(render(run))
            bench.log(f"wrote {target} and {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
