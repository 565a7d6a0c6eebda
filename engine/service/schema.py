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
            refresh_statistics(conn)
        return before, after
    finally:
        engine.dispose()


# the tables a worker's batch queries lean on: the inbox's pending rows, processed events, the batch's persons
HOT_TABLES = ("service_inbox", "processed_events", "persons", "memberships")


def refresh_statistics(conn: Connection) -> list[str]:
    """Analyzes those of HOT_TABLES whose planner statistics are stale as autovacuum counts it (more rows changed
    since the last analyze than 50 + 10% of the table), now rather than at autovacuum's next round: after a bulk
    load the planner takes the inbox for nearly empty and reads every pending row for each batch. PostgreSQL only;
    returns the tables analyzed."""
    if conn.dialect.name != "postgresql":
        return []
    stale = [
        str(row[0])
        for row in conn.exec_driver_sql(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND relname = ANY(%(tables)s) AND n_mod_since_analyze > 50 + 0.1 * n_live_tup ORDER BY relname",
            {"tables": list(HOT_TABLES)},
        ).fetchall()
    ]
    if stale:
        conn.exec_driver_sql(f"ANALYZE {', '.join(stale)}")
    return stale
