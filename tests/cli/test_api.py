"""`loopserve api` as a deployment starts it: no server banner, the security headers; and a
rejected admin token is never printed by `loopserve api` or `loopserve up`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import ROOT, free_port

TOKEN = "cli-admin-token-0123456789"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSERVE_")}
    return env | {"LOOPSERVE_HOME": str(home), "PYTHONPATH": str(ROOT)} | extra


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path, LOOPSERVE_ADMIN_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "api did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_loopserve_api_sends_no_banner(api: str) -> None:
    for r in (
        httpx.get(f"{api}/healthz"),
        httpx.post(f"{api}/v1/models/churn/predict", json={"instances": []}),
        httpx.get(f"{api}/docs"),
    ):
        assert "server" not in r.headers, r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("token", ["hunter2-short", "changeme"])
@pytest.mark.parametrize("command", ["api", "up"])
def test_a_rejected_admin_token_is_never_printed(tmp_path: Path, command: str, token: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", command, "--port", str(free_port())],
        cwd=ROOT,
        env=_env(tmp_path, LOOPSERVE_ADMIN_TOKEN=token),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "admin_token" in output.lower() and token not in output, output
