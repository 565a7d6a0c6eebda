"""Tests of the pytest plugin (`engine.testing`): end to end through `pytester`, and its parts one by one.

`campaign_project` writes a small user project into pytester's folder: a rule file, a world and a test that
snapshots a replay, as a rule author would write them.
"""

from __future__ import annotations

import json

import pytest
from testing_helpers import RULES, USER_TEST, WORLD, CampaignProject

pytest_plugins = ["pytester"]


@pytest.fixture
def campaign_project(pytester: pytest.Pytester) -> CampaignProject:
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules" / "webinar.campaign").write_text(RULES, encoding="utf-8")
    (pytester.path / "world.json").write_text(json.dumps(WORLD, indent=2), encoding="utf-8")
    pytester.makepyfile(test_webinar=USER_TEST)
    return CampaignProject(pytester.path)
