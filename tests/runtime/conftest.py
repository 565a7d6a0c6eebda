"""The `replay` fixture: runs a replay in-process from rule text, a world and a list of event dicts.

    def test_x(replay):
        result = replay(RULES, [added(ANN, "Webinar", "Registered")])
        assert result.members("Nurture") == {ANN: "Sent"}

The builders (world, added, changed, removed, program_event, at) live in `replay_helpers.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import Result, run_replay


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Nothing the tests do touches the user's parse cache."""
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SMARTCAMPAIGN_CACHE_DIR")
    os.environ["SMARTCAMPAIGN_CACHE_DIR"] = str(folder)
    yield
    if old is None:
        os.environ.pop("SMARTCAMPAIGN_CACHE_DIR", None)
    else:
        os.environ["SMARTCAMPAIGN_CACHE_DIR"] = old


@pytest.fixture
def replay(tmp_path: Path) -> Callable[..., Result]:
    """replay(rules, events=(), world=None, store_url=None, **ReplayOptions fields) -> Result."""

    def run(
        rules: str, events: Any = (), world: dict[str, Any] | None = None, store_url: str | None = None, **options: Any
    ) -> Result:
        return run_replay(tmp_path, rules, list(events), world, store_url, **options)

    return run
