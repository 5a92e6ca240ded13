"""The speed bench's parts without servers or load, in a few seconds, so that nothing in bench/
rots unnoticed: every module imports, the targets and their verdicts, the report, wrk's and
py-spy's output, and the in-process timings on tiny models (through loopserve's own request
stages, the bench's only use of api/ internals)."""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

import bench
from bench import backtoback, inprocess, load, prepare, profiling, report, run, servers
from bench.config import CLASSES, QUICK, Timing, path
from bench.floor_app import Floor
from bench.models import BenchModel, build_models
from bench.record import SERVERS, Cell, Environment, Feedback, Load, Run, Swap, Target, Wrk
from bench.servers import CpuWatch
from registry import catalog
from registry.db import Database

LAST_RUN = Path(__file__).parent / "data" / "run-75784a2.json"


def test_every_bench_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(bench.__path__, "bench.")]
    assert {"bench.run", "bench.report", "bench.inprocess", "bench.drift.__main__"} <= set(names)
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize(
    ("target", "ratio", "passed"),
    [
        (Target("", 300, 100, 3), 3.0, True),
        (Target("", 299, 100, 3), 2.99, False),
        (Target("", 5, 10, 0.5, "max", "ms"), 0.5, True),
        (Target("", 90, 100, 0.10, "cost"), pytest.approx(0.10), True),
        (Target("", 89, 100, 0.10, "cost"), pytest.approx(0.11), False),
        (Target("", 0, None, 0, "count"), 0, True),
        (Target("", 1, None, 0, "count"), 1, False),
        (Target("", 20, 20, 1, "equal"), 1.0, True),
        (Target("", 19, 20, 1, "equal"), 0.95, False),
        (Target("", None, 100, 3), None, None),  # a missing cell is n/a, never a pass
        (Target("", 300, None, 3), None, None),
        (Target("", 300, 0, 3), None, None),
    ],
)
def test_target_verdicts(target: Target, ratio: float | None, passed: bool | None) -> None:
    assert target.ratio == ratio
    assert target.passed is passed


def test_the_last_full_run_gives_the_same_targets_and_verdicts(tmp_path: Path) -> None:
    """The record is rebuilt from the tables of bench/RESULTS.md as committed in 75784a2, the
    last full run, whose results.json is not kept (r/s are rounded to units there, so a few
    ratios differ in their last digit; p90 and the cells' max latency, not in its tables, are
    0): 32 targets, the same two missed."""
    last = Run.load(LAST_RUN)
    found = report.targets(last)
    assert len(found) == 32
    assert [t.name for t in found if not t.passed] == [
        "bench_lr v1: 1000-row r/s (c16) vs MLServer best",
        "bench_rf v2: cost of the prediction log, 1000-row r/s (c16)",
    ]
    text = report.render(last)
    for t in found:
        assert t.name in text
    assert "30 PASS, 2 MISS, 0 n/a." in text
    last.save(tmp_path / "results.json")
    assert Run.load(tmp_path / "results.json") == last
    report.main([str(LAST_RUN), str(tmp_path / "RESULTS.md")])
    assert (tmp_path / "RESULTS.md").read_text() == text


def test_a_partial_run_renders_with_n_a() -> None:
    wrk = Wrk(8000, 8.0, 0, 0, 1.0, 1.5, 2.0, 3.0)
    partial = Run("2026-01-01 00:00", "cmd", Timing(), "abc1234", models={"m": "a model"})
    partial.cells = [
        Cell("loopserve_log_on", "v1", "m", 1, 16, wrk, statuses={"503": 4}),
        Cell("floor", "v1", "m", 1, 16, note="probe answered HTTP 404: not | found"),
    ]
    partial.swap = Swap("m", wrk, wrk, [], 0)
    partial.feedback = Feedback("m", 10, 0.1, 10, 1, 1, 10, 0, 0.5, 9)
    partial.errors["profiles"] = "RuntimeError('stopped')"
    text = report.render(partial)
    assert "| m v1: single-row r/s (c16) vs floor | 1,000 r/s | n/a | n/a | ≥ 0.5x | n/a |" in text
    assert "HTTP 503: 4" in text and "not / found" in text  # a "|" would break the table
    assert "| feedback: labelled_rows in the database vs acknowledged | 9 | 10 |" in text
    assert report.table("a | b", [[None, 1.254], [12.34, 1234.5]]) == [
        "| a | b |",
        "|---|---|",
        "| n/a | 1.25 |",
        "| 12.3 | 1,234 |",
        "",
    ]


def test_wrk_summary_is_parsed() -> None:
    out = (
        "Running 8s test @ http://127.0.0.1:1/v1/models/m/predict\n"
        'BENCH_JSON {"requests": 1000, "duration_us": 2000000, "connect": 1, "read": 2, '
        '"write": 0, "status": 10, "timeout": 3, "p50_us": 1500, "p90_us": 2500, '
        '"p99_us": 9000, "max_us": 12000}\n'
    )
    w = load.parse_wrk(out)
    assert (w.ok, w.rps, w.socket_errors, w.p99_ms) == (990, 495.0, 6, 9.0)
    with pytest.raises(RuntimeError):
        load.parse_wrk("no summary")


def test_pyspy_stacks_are_summarised() -> None:
    raw = "\n".join(
        [
            "Thread._bootstrap (threading.py:1);handle (api/app.py:10);_run (api/champions.py:9) 6",
            "Thread._bootstrap (threading.py:1);handle (api/app.py:12) 2",
            "Thread._bootstrap (threading.py:1);Condition.wait (threading.py:320) 5",
            "garbage",
        ]
    )
    p = profiling.summarize(raw, Load("predict", "m"), "x.txt")
    assert (p.samples, p.waiting) == (8, 5)
    assert p.own == [("_run (api/champions.py)", 75.0), ("handle (api/app.py)", 25.0)]
    assert ("handle (api/app.py)", 100.0) in p.inclusive
    assert all(not f.startswith("Thread._bootstrap") for f, _ in p.inclusive)


def test_a_profile_drives_its_load_meanwhile(tmp_path: Path) -> None:
    driven: list[float] = []

    def drive(seconds: float) -> None:
        driven.append(seconds)

    load = Load("predict", "m", "v1", 1)
    fake_pyspy = tmp_path / "py-spy"  # writes one sample where py-spy writes its stacks
    fake_pyspy.write_text(
        '#!/bin/sh\nwhile [ "$1" != --output ]; do shift; done\necho "f (a.py:3) 4" > "$2"\n'
    )
    fake_pyspy.chmod(0o755)
    out = tmp_path / "profile.txt"
    found = profiling.profile_under_load(1, load, drive, 0.1, out, 0, fake_pyspy)
    assert driven == [3.1] and found.samples == 4 and found.own == [("f (a.py)", 100.0)]
    absent = tmp_path / "absent"
    missing = profiling.profile_under_load(1, load, drive, 0.1, out, 0, absent)
    assert missing.samples == 0 and "FileNotFoundError" in missing.error


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[BenchModel]:
    folder = tmp_path_factory.mktemp("models")
    return build_models(lambda _: None, folder, train_rows=200, payload_rows=1000, trees=3)


def test_inprocess_timings_run_loopserves_own_stages(tiny_models: list[BenchModel]) -> None:
    rates = inprocess.call_rates(tiny_models, (1, 4), seconds=0.005)
    assert len(rates) == 2 * 2 * 2 and all(r.calls_per_s > 0 for r in rates)
    stages = inprocess.stages(tiny_models, (1, 4), seconds=0.005)
    found = {(s.model, s.rows, s.protocol, s.stage) for s in stages}
    for stage in (*report.PATH_STAGES, report.LOG_STAGE, report.FLOOR_STAGE):
        assert ("bench_rf", 4, "v2", stage) in found
    assert all(s.us > 0 for s in stages)
    lines = inprocess.tables("threads", tiny_models[:1], seconds=0.005)
    assert lines[0] == "| model | threads | rows | µs per call |" and len(lines) == 2 + 2 * 2 + 1


def test_floor_app_answers_both_protocols(tiny_models: list[BenchModel]) -> None:
    m = tiny_models[0]
    transport = httpx.ASGITransport(app=Floor({m.name: (m.onnx, CLASSES)}).app)

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://floor") as client:
            return [
                await client.post(f"/v1/models/{m.name}/predict", content=load.v1_body(m.X[:3])),
                await client.post(f"/v2/models/{m.name}/infer", content=load.v2_body(m.X[:3])),
                await client.post("/v1/models/nope/predict", content=b"{}"),
            ]

    v1, v2, missing = asyncio.run(ask())
    assert len(v1.json()["predictions"]) == 3
    assert v2.json()["outputs"][1]["shape"] == [3, 2]
    assert missing.status_code == 404


@pytest.mark.postgres
def test_the_bench_database_gets_both_versions(
    postgres_url: str, tiny_models: list[BenchModel]
) -> None:
    prepare.register(postgres_url, tiny_models, lambda _: None)
    db = Database(postgres_url)
    try:
        with db.session() as s:
            for m in tiny_models:
                model = catalog.get_model(s, m.name)
                assert [v.version for v in catalog.versions(s, model.id)] == [1, 2]
                assert getattr(catalog.champion(s, model.id), "version", None) == 1
    finally:
        db.dispose()
    assert prepare.labelled_rows("bench_lr", postgres_url) == 0


def test_the_floor_serves_under_uvicorn(tmp_path: Path, tiny_models: list[BenchModel]) -> None:
    """The floor as bench.run starts it: its own process tree, stopped with nothing logged."""
    m = tiny_models[0]
    server = servers.start_floor([m], work=tmp_path)
    try:
        answer = httpx.post(server.url + path("v2", m.name), content=load.v2_body(m.X[:2]))
        assert answer.json()["outputs"][0]["shape"] == [2]
        assert server.rss_mib()[0] > 0
    finally:
        server.stop()
    assert server.proc.poll() is not None and server.log_errors() == (0, [])


def test_back_to_back_tables(tiny_models: list[BenchModel]) -> None:
    a, b = backtoback.Measured(110, 4.0, 60, 1), backtoback.Measured(100, 5.0, 50, 2)
    assert backtoback.MICROBATCH.row(a, b)[2] == "+10.0 %"
    assert backtoback.LOGWRITER.row(a, b, b)[3] == "-10.0 %"
    for comparison in (backtoback.MICROBATCH, backtoback.LOGWRITER):
        assert len(comparison.row(*[a] * len(comparison.servers))) == len(comparison.columns)
        assert comparison.cells(tiny_models)


def test_cpu_watch_and_git_state() -> None:
    watch = CpuWatch(lambda: [os.getpid()])
    assert watch.other_cores() >= 0
    head, dirty = run.git_state()
    assert head and isinstance(dirty, list)


class FakeServer:
    """Stands for a started server: the run's steps only read its url, pids and logs."""

    def __init__(self, name: str) -> None:
        self.name, self.url = name, f"http://{name}"
        self.proc = SimpleNamespace(pid=os.getpid())

    def pids(self) -> list[int]:
        return [os.getpid()]

    def rss_mib(self) -> tuple[float, int]:
        return 100.0, 1

    def log_errors(self) -> tuple[int, list[str]]:
        return 0, []

    def stop(self) -> None:
        pass


def fake_wrk(url: str, payload: load.Payload, *, connections: int, seconds: float) -> Wrk:
    """loopserve twice the floor and ten times MLServer, its log costing 20 % on 1000 rows."""
    rows = int(payload.body_path.stem.rsplit("-", 1)[1])
    rps = {"floor": 5000, "mlserver": 1000, "log-True": 10000, "log-False": 10000}
    base = next(v for k, v in rps.items() if k in url) / rows**0.5
    if "log-True" in url and rows > 1:
        base *= 0.8
    return Wrk(int(base * 8), 8.0, 0, 0, 1.0, 2.0, 3.0 if "mlserver" not in url else 30.0, 9.0)


def fake_probe(url: str, payload: load.Payload) -> tuple[int, str]:
    """MLServer has no 1000-row bench_rf: those cells are n/a."""
    missing = "mlserver" in url and "bench_rf" in url and "1000" in payload.body_path.name
    return (404, "no route") if missing else (200, "{}")


def test_the_run_goes_through_every_step_with_fake_servers_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: list[BenchModel]
) -> None:
    """bench.run's orchestration without servers, wrk, py-spy or a database: every step runs,
    fills the record and writes the report. Each fake replaces the name of bench.run it is
    keyed by."""
    wrk = Wrk(8000, 8.0, 0, 0, 1.0, 2.0, 3.0, 9.0)
    fakes = {
        "WORK": tmp_path,
        "LOGS": tmp_path / "logs",
        "RESULTS": tmp_path / "RESULTS.md",
        "prepare": SimpleNamespace(ensure_wrk=print, ensure_mlserver=print, ensure_pyspy=print),
        "build_models": lambda log: tiny_models,
        "environment": lambda: Environment(2, "cpu", 1.0, "Linux", "3", "wrk", "15", {}, {}),
        "write_payload": lambda name, body: load.Payload(tmp_path / name, tmp_path / name),
        "call_rates": lambda models, rows: [],  # timed in the test above
        "stages": lambda models, rows: [],
        "start_floor": lambda models: FakeServer("floor"),
        "start_loopserve": lambda prediction_log: FakeServer(f"log-{prediction_log}"),
        "start_mlserver": lambda models, parallel_workers: FakeServer("mlserver"),
        "probe": fake_probe,
        "run_wrk": fake_wrk,
        "CpuWatch": lambda pids: SimpleNamespace(other_cores=lambda: 0.0),
        "status_counts": lambda server: {},
        "wait_log_drained": lambda server: 0.0,
        "swap_under_load": lambda server, model, payload, timing: Swap(model, wrk, wrk, [], 0),
        "feedback_ingest": lambda server, m, timing: (
            Feedback(m.name, 10, 0.1, 10, 1, 1, 10, 0, 0.001, 10),
            [],
        ),
        "profile_under_load": lambda pid, load, drive, seconds, out: (
            drive(seconds=seconds),
            profiling.summarize("f (a.py:1) 1", load, str(out)),
        )[1],
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(run, name, fake)
    monkeypatch.setattr(run.Bench, "database", lambda self, action: None)  # python -m bench.prepare
    monkeypatch.setattr(run.signal, "signal", lambda *args: None)
    assert run.main(["--quick"]) == 0
    done = Run.load(tmp_path / "results.json")
    assert len(done.cells) == 2 * 2 * 2 * (3 * 2 + 2 * 1)  # models, rows, conc, server-protocols
    assert sum(c.wrk is None for c in done.cells) == 2 * 2  # the rf 1000-row MLServer probes
    assert [m.server for m in done.memory] == list(SERVERS)
    found = report.targets(done)
    assert len(found) == 32
    missed = {t.load for t in found if t.passed is False}
    assert missed == {Load("predict", m, p, 1000) for m in done.models for p in ("v1", "v2")}
    assert done.profiles is not None and len(done.profiles) == QUICK.max_profiles
    assert "more missed load(s) not profiled" in " ".join(done.notes)
    assert "**MISS**" in (tmp_path / "RESULTS.quick.md").read_text()
    assert not (tmp_path / "RESULTS.md").exists()  # only a full run replaces it
