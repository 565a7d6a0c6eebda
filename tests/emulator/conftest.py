"""One HTTPS emulator for the whole emulator suite, emptied before each test that asks for `org` or `sf`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simple_salesforce.api import Salesforce

from engine.emulator.testing import RunningEmulator


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path_factory.mktemp("sf-emulator")) as running:
        yield running


@pytest.fixture
def org(emulator: RunningEmulator) -> RunningEmulator:
    emulator.reset()
    return emulator


@pytest.fixture
def sf(org: RunningEmulator) -> Salesforce:
    return org.client()
