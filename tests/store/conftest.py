"""Fixtures for the store tests: private PostgreSQL schemas (real server on 127.0.0.1:5432, or
SMARTCAMPAIGN_TEST_POSTGRES)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get("SMARTCAMPAIGN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A private schema in the test database, dropped afterwards; skipped without psycopg or a server."""
    pytest.importorskip("psycopg", reason="psycopg is not installed: the PostgreSQL store is not tested")
    from sqlalchemy import create_engine, text

    name = f"sc_test_{uuid.uuid4().hex[:12]}"
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    except Exception as error:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {type(error).__name__}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture
def second_postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url
