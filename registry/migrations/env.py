"""Alembic environment: the URL comes from the caller (registry.migrate) or the settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event, pool

from registry.db import make_engine
from registry.models import Base
from registry.settings import RegistrySettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or RegistrySettings().url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url) if url.startswith("sqlite") else None
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(url, poolclass=pool.NullPool)
    else:
        # Batch migrations rebuild a SQLite table by copying it and dropping the original;
        # with foreign keys enforced that drop would cascade into the rows referencing it.
        @event.listens_for(engine, "connect")
        def _no_cascades(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=OFF")

    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
