"""Fixtures for the rule-language tests (helpers live in lang_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test parses with a private cache folder, never the user's."""
    folder = tmp_path_factory.mktemp("smartcampaign-cache")
    old = os.environ.get("SMARTCAMPAIGN_CACHE_DIR")
    os.environ["SMARTCAMPAIGN_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SMARTCAMPAIGN_CACHE_DIR", None)
    else:
        os.environ["SMARTCAMPAIGN_CACHE_DIR"] = old
