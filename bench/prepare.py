"""Setup: wrk, MLServer's own venv, py-spy (each installed once), and the bench database.

bench.run calls the database steps as `python -m bench.prepare fresh|ensure` in a new process,
so that they use the registry code and migrations on disk at that moment.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import sklearn

from bench.config import (
    CLASSES,
    DB_NAME,
    DB_URL,
    LOOPSERVE_VENV,
    MLSERVER_PINS,
    MLSERVER_VENV,
    PG_ADMIN_URL,
)
from bench.models import BenchModel, build_models, spec_for
from registry import catalog
from registry.catalog import NewVersion
from registry.db import Database
from registry.migrate import upgrade

Log = Callable[[str], None]


def ensure_wrk(log: Log) -> str:
    """wrk from Debian; `apt-get update` only when the first install attempt fails."""
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk (apt-get)")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def ensure_mlserver(log: Log) -> Path:
    """MLServer in bench/.venv-mlserver, with loopserve's scikit-learn so that both load the
    same pickled pipeline; rebuilt only when the pins changed."""
    marker = MLSERVER_VENV / ".bench-pins"
    pins = [*MLSERVER_PINS, f"scikit-learn=={sklearn.__version__}"]
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if binary.exists() and marker.exists() and marker.read_text() == "\n".join(pins):
        return binary
    log(f"installing {' '.join(pins)} into {MLSERVER_VENV} (a few minutes, once)")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(MLSERVER_VENV)], check=True)
    pip = [str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *pins], check=True, capture_output=True)
    marker.write_text("\n".join(pins))
    return binary


def ensure_pyspy(log: Log) -> Path:
    """py-spy in loopserve's venv, to profile the API process when a target is missed."""
    binary = LOOPSERVE_VENV / "bin" / "py-spy"
    if not binary.exists():
        log("installing py-spy into loopserve's venv")
        pip = [str(LOOPSERVE_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "py-spy"], check=True, capture_output=True)
    return binary


def fresh_database(models: list[BenchModel], log: Log) -> None:
    """Drop and recreate the bench database, then `register` the models in it."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    register(DB_URL, models, log)


def register(url: str, models: list[BenchModel], log: Log) -> None:
    """Migrate the database at `url`, register two versions per model and promote version 1
    (in the registry directly, as the API tests do)."""
    upgrade(url)
    db = Database(url)
    try:
        for m in models:
            with db.session() as s:
                catalog.create_model(s, spec_for(m.name), actor="bench")
            for onnx in (m.onnx, m.onnx_v2):
                new = NewVersion(
                    kind="refit",
                    onnx=onnx,
                    pipeline=None,
                    params={"bench": m.description},
                    metrics={},
                    data_window={},
                    classes=CLASSES,
                    parent_version=None,
                    reason="bench",
                    job_id=None,
                )
                with db.session() as s:
                    model = catalog.get_model(s, m.name, lock=True)
                    catalog.register_version(s, model, new, stage="challenger")
            with db.session() as s:
                model = catalog.get_model(s, m.name, lock=True)
                v1 = catalog.get_version(s, model, 1)
                catalog.promote(s, model, v1, actor="bench", reason="bench champion")
            log(f"registered {m.name} v1 (champion) and v2")
    finally:
        db.dispose()


def labelled_rows(name: str, url: str = DB_URL) -> int:
    """Feedback rows stored for a model, counted in the database itself."""
    query = "SELECT count(*) FROM labelled_rows l JOIN models m ON m.id = l.model_id "
    query += "WHERE m.name = %s AND l.source = 'feedback'"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(query, (name,)).fetchone()
    return int(row[0]) if row else 0


def ensure_database(log: Log) -> str:
    """Migrate the bench database to head; recreate it when that fails (for instance, the
    migration history it was built with no longer exists). Returns what was done."""
    try:
        upgrade(DB_URL)
        return "migrated"
    except Exception as exc:
        log(f"migrating the bench database failed ({exc}); recreating it")
        fresh_database(build_models(log), log)
        return f"recreated ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prepare")
    parser.add_argument("action", choices=["fresh", "ensure"])
    if parser.parse_args(argv).action == "fresh":
        fresh_database(build_models(print), print)
    else:
        print(f"BENCH_DB {ensure_database(print)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
