"""Testing campaign rules: in-process replays, readable snapshots and rule coverage, as a pytest plugin.

Installing smartcampaign registers the pytest plugin (`engine.testing.plugin`): the `campaign_rules` fixture,
a `snapshot` fixture (with syrupy) that stores replay results as readable text, and the `--campaign-coverage`
options. Outside pytest, `load_rules(path).replay(world=..., events=...)` does the same replays.

    from engine.testing import load_rules
    from engine.testing.events import added, status_changed, removed, program_status
    from engine.testing.world import world, person, campaign

The names below are imported on first use, so that loading the plugin stays cheap for test suites that do
not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.testing.harness import CampaignRules, ReplayInputError, ReplayResult, RuleSetError, load_rules
    from engine.testing.render import render_result

__all__ = ["CampaignRules", "ReplayInputError", "ReplayResult", "RuleSetError", "load_rules", "render_result"]

_WHERE = {
    "CampaignRules": "engine.testing.harness",
    "ReplayInputError": "engine.testing.harness",
    "ReplayResult": "engine.testing.harness",
    "RuleSetError": "engine.testing.harness",
    "load_rules": "engine.testing.harness",
    "render_result": "engine.testing.render",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
