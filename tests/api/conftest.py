"""An app on a real database with one served champion, driven through its ASGI interface."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from registry import catalog, labelled
from registry.catalog import NewVersion
from registry.db import Database
from tests.factories import churn_rows, churn_spec
from tuning import persist
from tuning.data import frame, target
from tuning.export import to_onnx
from tuning.pipeline import build_pipeline

ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}


def train_version(db: Database, name: str, *, seed: int, flipped: bool = False) -> int:
    """Fit, export and register a logistic pipeline as a challenger; return its number."""
    with db.session() as s:
        model = catalog.get_model(s, name)
        spec = catalog.spec_of(model)
    rows = churn_rows(300, seed=seed, flipped=flipped)
    pipe = build_pipeline(spec, {"family": "logistic"}, random_state=0)
    pipe.fit(frame(spec, rows), target(spec, [r["churned"] for r in rows]))
    new = NewVersion(
        kind="refit",
        onnx=to_onnx(pipe, spec),
        pipeline=persist.dumps(pipe),
        params={"family": "logistic"},
        metrics={},
        data_window={},
        classes=["no", "yes"],
        parent_version=None,
        reason="test",
        job_id=None,
    )
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        return catalog.register_version(s, model, new, stage="challenger").version


def api_settings(database_url: str, tmp_path, **settings) -> ApiSettings:  # type: ignore[no-untyped-def]
    """The settings of an API process on this database, home in tmp_path, with the test
    admin token (and whatever else the environment sets, as in a deployment)."""
    token = ADMIN["Authorization"].split()[1]
    return ApiSettings(admin_token=token, database_url=database_url, home=tmp_path, **settings)


def app_client(database_url: str, tmp_path, **settings) -> TestClient:  # type: ignore[no-untyped-def]
    """A client of an app on the database with these API settings; enter it to start the app."""
    return TestClient(create_app(api_settings(database_url, tmp_path, **settings)))


def with_champion(db: Database) -> None:
    """The model "churn" with 100 labelled rows and a trained version 1 as its champion."""
    spec = churn_spec()
    with db.session() as s:
        model = catalog.create_model(s, spec, actor="test")
        labelled.add_rows(s, model, spec, churn_rows(100, seed=1))
    v1 = train_version(db, "churn", seed=1)
    with db.session() as s:
        model = catalog.get_model(s, "churn", lock=True)
        catalog.promote(s, model, catalog.get_version(s, model, v1), actor="test", reason="seed")


@pytest.fixture
def served(db: Database, database_url: str, tmp_path) -> Iterator[tuple[TestClient, Database]]:  # type: ignore[no-untyped-def]
    with_champion(db)
    settings = {"champion_poll_seconds": 0.1, "log_flush_seconds": 0.05, "max_batch_rows": 50}
    with app_client(database_url, tmp_path, **settings) as client:
        yield client, db


@contextmanager
def serve(database_url: str, tmp_path, **settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An app with these API settings behind a real uvicorn server on 127.0.0.1, run as
    `loopserve api` runs it; its base URL."""
    import threading

    import uvicorn

    from cli.main import UVICORN
    from tests.e2e.stack import free_port

    app = create_app(api_settings(database_url, tmp_path, **settings))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **UVICORN)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live(served, database_url: str, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A second app on the same database (and its champion, from `served`) behind a real
    uvicorn server on 127.0.0.1, for real HTTP clients. It runs every ONNX call in the thread
    pool (`served` runs small ones on the event loop), so both paths are exercised."""
    with serve(
        database_url, tmp_path, champion_poll_seconds=0.1, max_batch_rows=50, inline_onnx_ms=0
    ) as url:
        yield url
