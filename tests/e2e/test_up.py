"""`loopserve up`: the whole platform from one command on embedded defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.stack import ROOT, Client, free_port
from tests.factories import churn_rows, churn_spec, features_only

pytestmark = pytest.mark.slow


def test_up_runs_the_loop_and_stops_cleanly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSERVE_")} | {
        "LOOPSERVE_HOME": str(tmp_path / "home")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        while not any(line.startswith("admin token:") for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert f"http://127.0.0.1:{port}" in "".join(lines)
        token = lines[-1].split(":", 1)[1].strip()
        assert (tmp_path / "home" / "admin-token").read_text().strip() == token
        api = Client(f"http://127.0.0.1:{port}")
        api.headers["Authorization"] = f"Bearer {token}"
        _wait_ready(api)
        api.ok("POST", "/v1/admin/models", 201, json=churn_spec().model_dump())
        api.ok("POST", "/v1/admin/models/churn/data", 202, json={"rows": churn_rows(400, seed=1)})
        assert api.retrain("churn")["result"]["decision"] == "promoted"
        api.wait_version("churn", 1)
        out = api.ok(
            "POST",
            "/v1/models/churn/predict",
            json={"instances": features_only(churn_rows(2, seed=2))},
        )
        assert out["version"] == 1
        cli = env | {"LOOPSERVE_URL": f"http://127.0.0.1:{port}"}  # token from LOOPSERVE_HOME
        models = _loopserve(cli, "models")
        assert models.returncode == 0 and "churn" in models.stdout, models
        versions = _loopserve(cli, "versions", "churn")
        assert "champion" in versions.stdout and "baseline" in versions.stdout, versions
        refused = _loopserve(cli, "rollback", "churn")
        assert refused.returncode == 1 and "409 model 'churn' has no previous" in refused.stderr
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 3  # api, worker, beat
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, rest
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    for child in children:  # each leads its own process group (worker pool, uvicorn)
        group = subprocess.run(["pgrep", "-g", child], capture_output=True, text=True)
        assert group.stdout == "", f"processes of group {child} outlived loopserve up"


def _loopserve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_ready(api: Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if api.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("loopserve up never became ready")
