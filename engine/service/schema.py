"""The database a service runs on: the store's schema (versioned by the store) and the service's tables
(versioned by Alembic, `smartcampaign db upgrade`; `serve` and `worker` upgrade on start, one at a time)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from engine.store.store import Store, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x5C_0002  # advisory lock: one process upgrades at a time


def _config(conn: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def prepare_database(url: str) -> tuple[str | None, str | None]:
    """Creates or upgrades the store and the service tables. Returns (revision before, revision after)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command

    Store.open(url).close()  # the store's own tables, at the store's schema version
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            before = current_revision(conn)
            if before != head_revision():
                command.upgrade(_config(conn), "head")  # type: ignore[arg-type]
            after = current_revision(conn)
        return before, after
    finally:
        engine.dispose()
