"""One deployment per test, on each backend pair the product supports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack


@pytest.fixture(params=["sqlite+embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """A deployment with nothing started yet; every process is stopped afterwards."""
    if request.param == "sqlite+embedded":
        db_url, broker = f"sqlite:///{tmp_path / 'loopserve.db'}", None
    else:
        db_url = request.getfixturevalue("postgres_url")
        broker = request.getfixturevalue("redis_url")
    platform = Stack(tmp_path, db_url, broker)
    try:
        yield platform
    finally:
        platform.stop()
        print(platform.logs())  # pytest shows it only when the test failed
