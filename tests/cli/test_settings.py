"""The command line reads LOOPSERVE_* through its settings, and its flags win."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.client import AdminClient
from cli.main import parser
from cli.settings import CliSettings
from cli.supervisor import admin_token


def test_flags_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSERVE_API_PORT", "9001")
    monkeypatch.setenv("LOOPSERVE_WORKER_CONCURRENCY", "3")
    assert parser().parse_args(["api"]).port == 9001
    assert parser().parse_args(["api", "--port", "9002"]).port == 9002
    assert parser().parse_args(["worker"]).concurrency == 3


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSERVE_API_PORT", "eighty")
    with pytest.raises(ValidationError, match="api_port"):
        CliSettings()


def test_the_admin_token_is_kept_in_home_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LOOPSERVE_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("LOOPSERVE_HOME", str(tmp_path))
    monkeypatch.setenv("LOOPSERVE_URL", "http://127.0.0.1:9/")
    token = admin_token(CliSettings())
    assert len(token) >= 16 and admin_token(CliSettings()) == token
    assert (tmp_path / "admin-token").stat().st_mode & 0o777 == 0o600
    client = AdminClient()  # what the admin commands use: the same home, the same token
    assert client.token == token and client.url == "http://127.0.0.1:9"
