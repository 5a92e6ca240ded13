"""Shared fixtures: real PostgreSQL and Redis (a test fails, never skips, when they are down),
fresh databases with migrations applied, and real platform processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

from registry.db import Database
from registry.migrate import upgrade

PG_ADMIN_URL = os.environ.get(
    "LOOPSERVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LOOPSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _sqla(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is required at {PG_ADMIN_URL} (LOOPSERVE_TEST_POSTGRES_URL): {exc}"
        )
    return PG_ADMIN_URL


@contextmanager
def fresh_postgres(server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server, dropped afterwards."""
    name = f"loopserve_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = server.rsplit("/", 1)[0]
    try:
        yield _sqla(f"{base}/{name}")
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres(postgres_server) as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    """A flushed Redis database for one test."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        client.ping()
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL} (LOOPSERVE_TEST_REDIS_URL): {exc}")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """An empty database, no migration applied, on the embedded SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loopserve.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """The same test on the embedded SQLite and on PostgreSQL, migrations applied."""
    upgrade(empty_database_url)
    return empty_database_url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()
