"""Fixtures for the service tests: a fresh PostgreSQL schema per test (real server on 127.0.0.1:5432)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from service_helpers import pg_available, pg_schema


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing the tests do touches the user's parse cache (worker processes inherit it)."""
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with pg_schema() as url:
        yield url
