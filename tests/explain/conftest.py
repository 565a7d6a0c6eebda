"""The explain tests: nothing they do touches the user's parse cache (as tests/runtime/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SMARTCAMPAIGN_CACHE_DIR")
    os.environ["SMARTCAMPAIGN_CACHE_DIR"] = str(folder)
    yield
    if old is None:
        os.environ.pop("SMARTCAMPAIGN_CACHE_DIR", None)
    else:
        os.environ["SMARTCAMPAIGN_CACHE_DIR"] = old
