"""docker-compose.yml, checked without a Docker engine: its structure, and its services' own
commands run as local processes with the compose environment (service hostnames mapped to the
local Postgres and Redis): two api replicas, two workers, beat, after the one-shot migrate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose import ROOT, load, local_url
from tests.e2e.stack import Client, free_port
from tests.factories import churn_rows, churn_spec, features_only
from tuning.challenge import prepare
from tuning.search import tune

TOKEN = "compose-admin-token-0123456789"
NOTIFY_BOUND = 3.0  # seconds; the poll fallback is set to 30 s, so only pub/sub can meet it


def test_compose_declares_the_deployment() -> None:
    compose = load({"LOOPSERVE_ADMIN_TOKEN": TOKEN})
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "beat", "flower"}
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert services["redis"]["volumes"] == ["redisdata:/data"]
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["loopserve", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker", "beat"):
        svc = services[name]
        assert svc["command"][:2] == ["loopserve", name]
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}
        env = svc["environment"]
        assert env["LOOPSERVE_BROKER_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["LOOPSERVE_DATABASE_URL"]
    assert services["flower"]["profiles"] == ["monitoring"]
    with pytest.raises(KeyError, match="LOOPSERVE_ADMIN_TOKEN"):
        load({})  # no default secret: compose refuses to start without one


def test_ports_are_published_on_the_chosen_address_only() -> None:
    """Every published port names the host address it listens on: 127.0.0.1 unless
    LOOPSERVE_BIND says otherwise; only api and (under its profile) flower publish one."""
    for env, address in (({}, "127.0.0.1"), ({"LOOPSERVE_BIND": "10.1.2.3"}, "10.1.2.3")):
        services = load({"LOOPSERVE_ADMIN_TOKEN": TOKEN, **env})["services"]
        published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
        assert published == {
            "api": [f"{address}:8000:8000"],
            "flower": [f"{address}:5555:5555"],
        }


def test_flower_runs_only_behind_basic_auth(tmp_path: Path) -> None:
    """Flower's command, run as the container runs it: without FLOWER_BASIC_AUTH it refuses
    to start; with it, Flower is started with that basic auth (a stand-in `celery` on PATH
    prints how it was called)."""
    compose = load({"LOOPSERVE_ADMIN_TOKEN": TOKEN, "FLOWER_BASIC_AUTH": "ops:s3cret"})
    flower = compose["services"]["flower"]
    assert flower["environment"] == {"FLOWER_BASIC_AUTH": "ops:s3cret"}
    stand_in = tmp_path / "celery"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stand_in.chmod(0o755)
    path = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for value in (None, ""):
        env = path if value is None else {**path, "FLOWER_BASIC_AUTH": value}
        run = subprocess.run(flower["command"], env=env, capture_output=True, text=True)
        assert run.returncode != 0 and "set FLOWER_BASIC_AUTH" in run.stderr, run
        assert run.stdout == ""  # celery never ran
    env = {**path, **flower["environment"]}
    run = subprocess.run(flower["command"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "--broker=redis://redis:6379/0",
        "flower",
        "--port=5555",
        "--basic_auth=ops:s3cret",
    ]
    without = load({"LOOPSERVE_ADMIN_TOKEN": TOKEN})["services"]["flower"]
    assert without["environment"] == {"FLOWER_BASIC_AUTH": ""}  # compose starts without it


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    for name in used | {"LOOPSERVE_HOME", "LOOPSERVE_NOTIFY_URL", "LOOPSERVE_FANOUT"}:
        assert f"`{name}`" in readme, f"{name} is not documented in README.md"


@pytest.fixture
def deployment(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict]:
    """migrate, then two api replicas, two workers and beat: compose commands and environment."""
    db_name = postgres_url.rsplit("/", 1)[1]
    compose = load(
        {
            "LOOPSERVE_ADMIN_TOKEN": TOKEN,
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": db_name,
            "LOOPSERVE_CHAMPION_POLL_SECONDS": "30",
            "LOOPSERVE_TICK_SECONDS": "1",
            "LOOPSERVE_API_WORKERS": "2",
            "LOOPSERVE_WORKER_CONCURRENCY": "2",
        }
    )
    redis_db = redis_url.rsplit("/", 1)[1]
    hosts = {"postgres": "127.0.0.1:5432", "redis": "127.0.0.1:6379"}
    procs: dict[str, subprocess.Popen] = {}
    urls: list[str] = []

    def env_of(service: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSERVE_")}
        for key, value in compose["services"][service]["environment"].items():
            value = "" if value is None else str(value)
            env[key] = local_url(value, hosts) if "://" in value else value
        env["LOOPSERVE_BROKER_URL"] = env["LOOPSERVE_BROKER_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
        return env | {"LOOPSERVE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)} | extra

    def argv(service: str, **replace: str) -> list[str]:
        cmd = list(compose["services"][service]["command"])
        assert cmd[0] == "loopserve"
        for flag, value in replace.items():
            cmd[cmd.index(flag) + 1] = value
        return [sys.executable, "-m", "cli.main", *cmd[1:]]

    def spawn(name: str, service: str, cmd: list[str], **extra: str) -> None:
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        procs[name] = subprocess.Popen(
            cmd,
            env=env_of(service, **extra),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    migrate = subprocess.run(
        argv("migrate"),
        env=env_of("migrate"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    try:
        for i in (1, 2):
            port = str(free_port())
            spawn(f"api{i}", "api", argv("api", **{"--host": "127.0.0.1", "--port": port}))
            urls.append(f"http://127.0.0.1:{port}")
            spawn(f"worker{i}", "worker", argv("worker"), LOOPSERVE_WORKER_NAME=f"w{i}@%h")
        spawn("beat", "beat", argv("beat"))
        for url in urls:
            _wait_ready(url, procs, tmp_path)
        yield {"urls": urls, "procs": procs}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_compose_services_run_the_loop_across_replicas_and_workers(deployment) -> None:  # type: ignore[no-untyped-def]
    first, second = (Client(u) for u in deployment["urls"])
    for api in (first, second):
        api.headers["Authorization"] = f"Bearer {TOKEN}"
    spec = churn_spec(retrain={"families": ["logistic", "sgd", "mlp"], "max_candidates": 9})
    rows = churn_rows(600, seed=10)
    first.ok("POST", "/v1/admin/models", 201, json=spec.model_dump())
    first.ok("POST", "/v1/admin/models/churn/data", 202, json={"rows": rows})
    job = second.retrain("churn")
    finished = time.monotonic()
    assert job["status"] == "succeeded", job
    assert job["result"]["decision"] == "promoted"

    # The promotion reaches every replica (and each of its uvicorn workers) by notification.
    for api in (first, second):
        _serves(api, version=1, deadline=finished + NOTIFY_BOUND)

    # The candidates fanned out over both workers ...
    fits = [t for t in job["result"]["trials"] if t.get("worker")]
    assert {t["worker"].split("@")[0] for t in fits} == {"w1", "w2"}, fits
    # ... and chose exactly what one process chooses for the same seed.
    data = prepare(spec, features_only(rows), [r["churned"] for r in rows])
    alone = tune(spec, data.X_train, data.y_train).best
    candidate = job["result"]["candidate"]
    assert (candidate["config"], candidate["window"]) == (alone.config, alone.window)
    assert candidate["validation_score"] == pytest.approx(alone.validation_score, abs=1e-12)


def _serves(api: Client, *, version: int, deadline: float) -> None:
    body = {"instances": features_only(churn_rows(1, seed=3))}
    while True:
        answers = [api.post("/v1/models/churn/predict", json=body) for _ in range(20)]
        # 503: a uvicorn worker that has not loaded the champion yet; it must within the bound.
        seen = {r.json()["version"] if r.status_code == 200 else r.status_code for r in answers}
        if seen == {version}:
            return
        assert time.monotonic() < deadline, f"{api.base_url} still serves {seen}"
        time.sleep(0.05)


def _wait_ready(url: str, procs: dict, tmp_path: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        for name, proc in procs.items():
            assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")
