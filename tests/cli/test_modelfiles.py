"""`loopserve export` and `loopserve import` against a real server: a version's graph written
to a file, checked against the sha256 the API sent, and imported again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from cli.main import main
from registry import catalog
from tests.api.conftest import ADMIN

TOKEN = ADMIN["Authorization"].split()[1]


def test_export_then_import(
    live: str,
    served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    _, db = served
    auth = ["--url", live, "--token", TOKEN]
    monkeypatch.chdir(tmp_path)
    assert main(["export", "churn", "1", *auth]) == 0
    written = tmp_path / "churn-v1.onnx"
    with db.session() as s:
        digest = catalog.get_version(s, catalog.get_model(s, "churn"), 1).onnx_sha256
        assert written.read_bytes() == catalog.get_artifact(s, digest)
    size = written.stat().st_size
    assert capsys.readouterr().out == f"wrote churn-v1.onnx ({size} bytes, sha256 {digest})\n"

    assert main(["import", "churn", str(written), "--no-promote", *auth]) == 0
    first, reason, _ = capsys.readouterr().out.split("\n")
    assert first == "churn v2 registered; champion: v1"
    assert reason.startswith("imported onnx file 'churn-v1.onnx'; registered without promotion")
    with db.session() as s:
        v2 = catalog.get_version(s, catalog.get_model(s, "churn"), 2)
        assert (v2.kind, v2.onnx_sha256, v2.params["imported"]["filename"]) == (
            "imported",
            digest,
            "churn-v1.onnx",
        )


def test_export_to_stdout(live: str, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["export", "churn", "1", "-o", "-", "--url", live, "--token", TOKEN]) == 0
    out = capsysbinary.readouterr().out
    with httpx.Client(base_url=live) as client:
        r = client.get("/v1/models/churn/versions/1/onnx")
    assert out == r.content and hashlib.sha256(out).hexdigest() == r.headers["x-content-sha256"]


def test_errors_are_named(live: str, tmp_path: Path) -> None:
    auth = ["--url", live, "--token", TOKEN]
    with pytest.raises(SystemExit, match="404 model 'churn' has no version 9"):
        main(["export", "churn", "9", "-o", str(tmp_path / "x.onnx"), *auth])
    assert not (tmp_path / "x.onnx").exists()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(SystemExit, match=r"422 \n  file: the file is neither a skops file"):
        main(["import", "churn", str(junk), *auth])
    with pytest.raises(SystemExit, match="cannot read"):
        main(["import", "churn", str(tmp_path / "missing.onnx"), *auth])
