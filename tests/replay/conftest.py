"""Nothing the replay tests do touches the user's parse cache (the subprocesses inherit the variable)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
