"""One HTTPS Salesforce emulator for the sync tests, emptied before each test; a mirror store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce.api import Salesforce

from engine.emulator.testing import RunningEmulator
from engine.store.store import Store


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path_factory.mktemp("sync-emulator")) as running:
        yield running


@pytest.fixture
def org(emulator: RunningEmulator) -> RunningEmulator:
    emulator.reset()
    return emulator


@pytest.fixture
def sf(org: RunningEmulator) -> Salesforce:
    return org.client()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mirror.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No SMARTCAMPAIGN_* setting of the machine leaks in; the parse cache stays private."""
    import os

    for name in list(os.environ):
        if name.startswith("SMARTCAMPAIGN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
