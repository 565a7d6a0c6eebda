"""The pytest plugin shipped with smartcampaign (entry point `pytest11: smartcampaign`): installing is enough.

Fixtures:

- `campaign_rules(path)`: loads a `.campaign` file or a folder of them (relative paths: from the test file's
  folder), once per session and per content; a rule set with errors fails the test with the diagnostics. It
  returns `CampaignRules`, whose `.replay(world=..., events=..., until=None, max_depth=10)` returns the
  REPLAY.md result (`engine.testing.harness.ReplayResult`, a dict). `world`: a path, a dict or None; `events`: a
  `.jsonl` path or a list of event dicts (see `engine.testing.events` and `engine.testing.world` for builders).
  Unusable input (a typo in a campaign name, a missing field) fails the test naming `events[N]` and the field.
- `snapshot` (with syrupy installed): syrupy's fixture, with replay results stored as readable text
  (`engine.testing.serializer.CampaignSnapshotExtension`); other values serialize as amber does. Left alone
  when `--snapshot-default-extension` names another extension.

Options:

- `--campaign-coverage[=PATH]`: rule coverage of the replays made through `campaign_rules` (triggers, filter
  clauses true and false, choice branches, flow steps), a table per rule file at the end of the session, and
  with PATH a JSON report. Write `--campaign-coverage=PATH` (a bare value after it would be read as PATH).
- `--campaign-coverage-fail-under=N`: the session fails (exit code 1) when total rule coverage is below N%.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

    from engine.testing.coverage import CoverageCollector
    from engine.testing.fixtures import RuleLoader, RuleSetCache


@dataclass
class _State:
    coverage: CoverageCollector | None = None
    report_path: Path | None = None
    fail_under: float | None = None
    failed_under: bool = False
    written: Path | None = None
    cache: RuleSetCache = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smartcampaign", "smart campaign rules (smartcampaign)")
    group.addoption(
        "--campaign-coverage",
        action="store",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        dest="campaign_coverage",
        help="report which triggers, filter clauses, choice branches and flow steps of the rule sets replayed "
        "through campaign_rules the tests exercised; with =PATH, also write a JSON report there",
    )
    group.addoption(
        "--campaign-coverage-fail-under",
        action="store",
        type=float,
        default=None,
        metavar="N",
        dest="campaign_coverage_fail_under",
        help="fail the session if total campaign rule coverage is below N percent (implies --campaign-coverage)",
    )


def pytest_configure(config: pytest.Config) -> None:
    state = _State()
    given = config.getoption("campaign_coverage", None)
    fail_under = config.getoption("campaign_coverage_fail_under", None)
    if fail_under is not None and not 0 <= fail_under <= 100:
        raise pytest.UsageError(f"--campaign-coverage-fail-under: {fail_under:g} is not a percentage (0 to 100)")
    if given is not None or fail_under is not None:
        from engine.testing.coverage import CoverageCollector

        state.coverage = CoverageCollector()
        state.fail_under = fail_under
        if given:
            path = config.invocation_params.dir / given
            # `--campaign-coverage tests/` reads the test path as PATH: never write the report over it
            if "::" in given or path.is_dir() or (path.suffix.lower() != ".json" and (path.exists() or path.suffix)):
                raise pytest.UsageError(
                    f"--campaign-coverage: {given!r} does not look like the JSON report's file (a new file or a "
                    ".json file); write --campaign-coverage=PATH, or put --campaign-coverage after the test paths"
                )
            state.report_path = path
    config.stash[_STATE] = state
    if config.pluginmanager.hasplugin("syrupy") and not config.pluginmanager.hasplugin("smartcampaign-snapshot"):
        # Registered now, after every entry-point plugin (syrupy included), so that this `snapshot` overrides
        # syrupy's; conftest files, registered later still, can override it in turn.
        config.pluginmanager.register(_SnapshotPlugin(), "smartcampaign-snapshot")


class _SnapshotPlugin:
    @pytest.fixture
    def snapshot(self, snapshot: SnapshotAssertion) -> SnapshotAssertion:
        """syrupy's snapshot, storing replay results as readable text (CampaignSnapshotExtension)."""
        from syrupy.extensions.amber import AmberSnapshotExtension

        if snapshot.extension_class is not AmberSnapshotExtension:
            return snapshot  # --snapshot-default-extension chose another one
        from engine.testing.serializer import CampaignSnapshotExtension

        return snapshot.use_extension(CampaignSnapshotExtension)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def campaign_rules(request: pytest.FixtureRequest) -> RuleLoader:
    """Loads rule sets for replays: `campaign_rules("rules/").replay(world=..., events=[...])`."""
    from engine.testing.fixtures import RuleLoader

    state = request.config.stash[_STATE]
    return RuleLoader(state.cache, state.coverage, request.path.parent)


# ------------------------------------------------------------------------------------------ coverage
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or state.coverage is None:
        return
    root = session.config.rootpath
    if state.report_path is not None:
        state.report_path.parent.mkdir(parents=True, exist_ok=True)
        state.report_path.write_text(json.dumps(state.coverage.report(root), indent=2) + "\n", encoding="utf-8")
        state.written = state.report_path
    if state.fail_under is not None and state.coverage.total and state.coverage.percent < state.fail_under:
        state.failed_under = True
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.coverage is None:
        return
    coverage = state.coverage
    terminalreporter.write_sep("-", "campaign rule coverage")
    for line in coverage.table(config.rootpath):
        terminalreporter.write_line(line)
    if state.written is not None:
        terminalreporter.write_line(f"JSON report written to {state.written}")
    if state.fail_under is not None and coverage.total:
        total = f"{coverage.percent:.2f}%"
        if state.failed_under:
            terminalreporter.write_line(
                f"FAIL Required campaign rule coverage of {state.fail_under:g}% not reached. Total coverage: {total}",
                red=True,
                bold=True,
            )
        else:
            terminalreporter.write_line(
                f"Required campaign rule coverage of {state.fail_under:g}% reached. Total coverage: {total}",
                green=True,
            )
