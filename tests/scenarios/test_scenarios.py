"""Every folder beside this file with an expect.json, replayed by the `smartcampaign` command (README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner import check, find_scenarios

SCENARIOS = find_scenarios(Path(__file__).resolve().parent)


def test_there_are_scenarios() -> None:
    assert SCENARIOS, "no scenario folders found"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Path) -> None:
    problems = check(scenario)
    assert not problems, f"scenario {scenario.name}:\n  " + "\n  ".join(problems)
