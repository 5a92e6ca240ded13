"""How the processes log (cli.logs): JSON lines off a terminal, text in one, with the request
id of the API's lines; `loopserve api` writes one JSON line per request, and Celery's
processes log through the same set-up."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from cli.logs import JsonFormatter, TextFormatter, config, is_json
from cli.main import parser
from cli.settings import CliSettings
from registry.migrate import upgrade
from tests.api.conftest import ADMIN
from tests.e2e.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("api.access", logging.INFO, "", 0, "GET %s %d", ("/x", 200), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_json_line_has_the_records_fields() -> None:
    line = JsonFormatter().format(_record(request_id="r-1", status=200, duration_ms=1.5))
    out = json.loads(line)
    assert set(out) == {"time", "level", "logger", "message", "request_id", "status", "duration_ms"}
    assert (out["level"], out["logger"], out["message"]) == ("info", "api.access", "GET /x 200")
    assert out["time"].endswith("+00:00") and out["request_id"] == "r-1"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = _record(job_id="j1")
        failed.exc_info = sys.exc_info()
    out = json.loads(JsonFormatter().format(failed))
    assert "\n" not in JsonFormatter().format(failed)
    assert out["job_id"] == "j1" and "ValueError: boom" in out["exception"]
    odd = json.loads(JsonFormatter().format(_record(data={"when": object})))  # not JSON: str()
    assert odd["data"]["when"] == str(object)


def test_a_text_line_names_the_request() -> None:
    assert (
        TextFormatter()
        .format(_record(request_id="r-1"))
        .endswith(" INFO api.access [r-1]: GET /x 200")
    )
    assert TextFormatter().format(_record()).endswith(" INFO api.access: GET /x 200")


def test_the_format_follows_the_setting_and_the_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert is_json("json") and not is_json("text")

    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "__stderr__", Terminal(True))
    assert not is_json("auto")
    assert config("auto", "info")["handlers"]["stderr"]["formatter"] == "text"
    monkeypatch.setattr(sys, "__stderr__", Terminal(False))
    assert is_json("auto")
    made = config("auto", "warning", request_ids=True)
    assert made["handlers"]["stderr"]["formatter"] == "json"
    assert made["handlers"]["stderr"]["filters"] == ["request_id"]
    assert made["root"]["level"] == "WARNING"


def test_the_settings_are_read_and_checked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOOPSERVE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOOPSERVE_LOG_FORMAT", "Text")
    settings = CliSettings()
    assert (settings.log_level, settings.log_format) == ("debug", "text")
    assert parser().parse_args(["worker"]).loglevel == "DEBUG"
    assert parser().parse_args(["beat"]).loglevel == "DEBUG"
    monkeypatch.setenv("LOOPSERVE_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        CliSettings()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSERVE_")}
    return env | {
        "LOOPSERVE_HOME": str(tmp_path),
        "LOOPSERVE_ADMIN_TOKEN": ADMIN["Authorization"].split()[1],
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def test_loopserve_api_logs_a_json_line_per_request(tmp_path: Path) -> None:
    """Off a terminal (`auto`): JSON, uvicorn's lines too, one per request with its id."""
    upgrade(f"sqlite:///{tmp_path / 'loopserve.db'}")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", headers={"X-Request-ID": "hz-1"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        r = httpx.post(f"{url}/v1/models/nope/predict", json={"instances": []})
        assert r.status_code == 404
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    access = [line for line in lines if line["logger"] == "api.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/healthz", 200),
        ("POST", "/v1/models/{name}/predict", 404),
    ]
    assert access[0]["request_id"] == "hz-1"
    assert access[1]["request_id"] == r.headers["x-request-id"]
    assert all(a["duration_ms"] >= 0 and a["level"] == "info" for a in access)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_celery_processes_log_as_the_api_does(tmp_path: Path, log_format: str) -> None:
    """What `loopserve worker` and `beat` set up before Celery starts: its setup_logging
    signal configures our handler (Celery's own configuration is skipped)."""
    code = (
        "import logging, sys\n"
        "from celery.signals import setup_logging\n"
        "from cli.main import _celery_logs\n"
        "_celery_logs('INFO')\n"
        "setup_logging.send(sender=None, loglevel='INFO', logfile=None, format='')\n"
        "logging.getLogger('worker.training').info('job %s: done', 'j1', extra={'job_id': 'j1'})\n"
        "logging.getLogger('worker.training').debug('hidden')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path, LOOPSERVE_LOG_FORMAT=log_format),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    (line,) = run.stderr.splitlines()
    if log_format == "json":
        out = json.loads(line)
        assert (out["message"], out["job_id"], out["logger"]) == (
            "job j1: done",
            "j1",
            "worker.training",
        )
    else:
        assert line.endswith(" INFO worker.training: job j1: done")
