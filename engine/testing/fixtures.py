"""What the `campaign_rules` fixture returns: rule sets loaded once per session, failures without tracebacks."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from engine.language import ast
from engine.language.parser import iter_rule_files
from engine.runtime.interpreter import DEFAULT_MAX_DEPTH
from engine.testing.coverage import CoverageCollector
from engine.testing.harness import (
    CampaignRules,
    EventsInput,
    ReplayInputError,
    ReplayResult,
    RuleSetError,
    WorldInput,
    load_rules,
)

__all__ = ["PytestCampaignRules", "RuleLoader", "RuleSetCache"]

# (resolved path, (file, mtime, size) of each rule file) -> the loaded rule set, or the failure message
RuleSetCache = dict[tuple[str, tuple[tuple[str, int, int], ...]], ast.RuleSet | str]


class PytestCampaignRules(CampaignRules):
    """CampaignRules whose unusable input fails the test with the message alone (no traceback)."""

    def replay(
        self,
        world: WorldInput = None,
        events: EventsInput = (),
        *,
        until: str | datetime | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> ReplayResult:
        __tracebackhide__ = True
        try:
            return super().replay(world, events, until=until, max_depth=max_depth)
        except ReplayInputError as error:
            message = str(error)
        pytest.fail(f"unusable replay input: {message}", pytrace=False)  # outside `except`: no chained traceback


class RuleLoader:
    """`campaign_rules(path)`: the rule set at `path` (relative: from the test file's folder), ready to replay.

    A rule set is parsed once per session and per content (files, modification times and sizes); a rule set
    with errors fails every test that loads it, with the errors as FILE:LINE:COL and the source line.
    """

    def __init__(self, cache: RuleSetCache, coverage: CoverageCollector | None, base: Path) -> None:
        self._cache = cache
        self._coverage = coverage
        self.base = base

    def __call__(self, path: str | Path) -> PytestCampaignRules:
        __tracebackhide__ = True
        given = Path(path)
        resolved = Path(os.path.normpath((given if given.is_absolute() else self.base / given).absolute()))
        if not resolved.exists():
            pytest.fail(f"campaign_rules: {path}: no such rule file or folder (looked for {resolved})", pytrace=False)
        files = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in iter_rule_files(resolved))
        key = (str(resolved), files)
        loaded = self._cache.get(key)
        if loaded is None:
            try:
                loaded = load_rules(resolved).rule_set
            except RuleSetError as error:
                loaded = f"campaign_rules: the rule set {path} has errors:\n{error}"
            except ReplayInputError as error:
                loaded = f"campaign_rules: {error}"
            else:
                if self._coverage is not None:
                    self._coverage.add_rule_set(loaded)
            self._cache[key] = loaded
        if isinstance(loaded, str):
            pytest.fail(loaded, pytrace=False)
        rules = PytestCampaignRules(loaded, resolved, base=self.base)
        rules.tracing = self._coverage
        return rules
