"""The Salesforce commands: `smartcampaign sync` (the change poller) and `smartcampaign doctor` (the set-up).

Exit codes: 0 done (doctor: every check passed); 1 Salesforce unreachable, refused the credentials or the
quota is spent (doctor: a check failed); 2 unusable input (a settings file or value, the store URL, rules with
errors); 3 an internal error. No traceback and no credential ever reaches the output: every message is passed
through `redact` with the secrets of the settings in use. simple-salesforce, pydantic and rich are imported
when a command runs, not for `--help`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from engine.cli.common import (
    CONTEXT_SETTINGS,
    EXIT_FAIL,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    console,
    format_option,
    setting_name,
)

if TYPE_CHECKING:  # settings load pydantic-settings: only when a command runs, not for `--help`
    from pydantic import ValidationError
    from rich.table import Table

    from engine.model.settings import EngineSettings, SalesforceSettings

DEFAULT_DB = "sqlite:///smartcampaign.db"
SECRET_FIELDS = ("password", "security_token", "session_id", "client_secret")

__all__ = ["doctor_command", "redact", "sync_command"]


class _Stop(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or "")
        self.code = code
        self.message = message


def redact(text: str, settings: SalesforceSettings | None) -> str:
    """`text` with every secret of `settings` replaced by `****`."""
    if settings is None:
        return text
    for name in SECRET_FIELDS:
        secret = getattr(settings, name, None)
        value = secret.get_secret_value() if secret is not None else ""
        if value and len(value) >= 4:
            text = text.replace(value, "****")
    return text


def _settings_problem(error: ValidationError, prefix: str) -> str:
    """A pydantic error as `NAME: what is wrong` lines, without the values given (they may be secrets)."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        lines.append(f"  {setting_name(item, prefix)}: {item.get('msg', 'invalid')}")
    return "invalid settings:\n" + "\n".join(lines)


def _load_settings(settings_file: str | None) -> tuple[SalesforceSettings, EngineSettings]:
    from pydantic import ValidationError

    from engine.model.settings import load_engine_settings, load_salesforce_settings

    try:
        salesforce = load_salesforce_settings(settings_file)
    except ValidationError as error:
        raise _Stop(EXIT_USAGE, _settings_problem(error, "SMARTCAMPAIGN_SFDC_")) from None
    try:
        engine = load_engine_settings(settings_file)
    except ValidationError as error:
        raise _Stop(EXIT_USAGE, _settings_problem(error, "SMARTCAMPAIGN_")) from None
    return salesforce, engine


@contextmanager
def _guard(command: str, secrets: Callable[[], SalesforceSettings | None]) -> Iterator[None]:
    """Turns failures into one redacted line on stderr and an exit code."""
    code = EXIT_OK
    try:
        yield
    except _Stop as stop:
        if stop.message:
            click.echo(redact(f"smartcampaign {command}: {stop.message}", secrets()), err=True)
        code = stop.code
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:
        click.echo(f"smartcampaign {command}: interrupted", err=True)
        code = 130
    except Exception as error:
        message = f"smartcampaign {command}: internal error: {type(error).__name__}: {error}"
        click.echo(redact(message, secrets()), err=True)
        code = EXIT_INTERNAL
    if code != EXIT_OK:
        sys.exit(code)


# ---------------------------------------------------------------------------------------------- sync
settings_option = click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A settings file (.env format: SMARTCAMPAIGN_SFDC_*, SMARTCAMPAIGN_*); the environment wins over it.",
)


def _report_table(report: Any, when: str | None = None) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Salesforce sync{f' at {when}' if when else ''}", show_header=False, title_justify="left")
    table.add_column("What", style="bold", no_wrap=True)
    table.add_column("Count", justify="right", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("CampaignMembers read", report.members_seen),
        ("  already seen (overlap)", report.duplicates_skipped),
        ("  added", report.added),
        ("  status changed", report.status_changed),
        ("  removed", report.removed),
        ("  unchanged", report.unchanged),
        ("  not mirrored", report.skipped),
        ("Deletions read", report.deletions_seen),
        ("  already seen (overlap)", report.deletions_repeated),
        ("Persons created", report.persons_created),
        ("Persons linked by email", report.persons_linked),
        ("Campaigns added", report.campaigns_added),
        ("Campaigns refreshed", report.campaigns_refreshed),
        ("Campaign statuses refreshed", report.statuses_refreshed),
        ("API calls", report.api_calls),
        ("Full resync", f"yes: {report.resync_reason}" if report.resync else "no"),
        ("Cursor", f"{report.cursor_before or '(none)'} -> {report.cursor_after}"),
        ("Seconds", f"{report.seconds:.2f}"),
    ]
    for label, value in rows:
        table.add_row(escape(label), escape(str(value)))
    return table


def _print_report(report: Any, output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    from rich.markup import escape

    out = console()
    out.print(_report_table(report))
    if report.problems:
        out.print(f"[yellow]{report.problems_total} not mirrored:[/yellow]")
        for problem in report.problems:
            out.print(f"  - {escape(problem)}")
        if report.problems_total > len(report.problems):
            out.print(f"  ... and {report.problems_total - len(report.problems)} more (see the log)")


def _load_rules(path: str, outcome: str = "nothing was synced") -> Any:
    from engine.language.loader import RuleSetNotFound, load_rule_set

    try:
        loaded = load_rule_set([path])
    except RuleSetNotFound as error:
        raise _Stop(EXIT_USAGE, str(error)) from None
    errors = loaded.errors
    if errors:
        from engine.language.diagnostics import render_all

        click.echo(render_all(errors, loaded.sources), err=True)
        raise _Stop(EXIT_USAGE, f"the rules in {path} have {len(errors)} error(s): {outcome}")
    return loaded.rule_set


@click.command("sync", context_settings=CONTEXT_SETTINGS)
@click.option("--once", is_flag=True, help="Run one cycle, print what it saw, and exit.")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True, help="The store (an SQLAlchemy URL).")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(),
    help="A .campaign file or folder: run these smart campaigns on what the sync sees (else only the mirror).",
)
@settings_option
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between cycles (without --once).",
)
@click.option(
    "--overlap",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds each cycle reads again before its cursor (changes committed late).",
)
@format_option()
def sync_command(
    once: bool,
    db_url: str,
    rules_path: str | None,
    settings_file: str | None,
    interval: float,
    overlap: float,
    output_format: str,
) -> None:
    """Mirror Salesforce campaign memberships and run smart campaigns on the changes.

    \b
    Each cycle reads the CampaignMembers changed since the last one (and deletions, Campaigns and their
    member statuses), turns them into observations and stores them; the cursor moves only once they are
    stored. Credentials come from SMARTCAMPAIGN_SFDC_* (environment or --settings).

    \b
    Examples:
      smartcampaign sync --once --settings sfdc.env
      smartcampaign sync --rules rules/ --db postgresql+psycopg://localhost/smartcampaign --interval 120
    """
    settings: list[SalesforceSettings] = []
    with _guard("sync", lambda: settings[0] if settings else None):
        salesforce, engine = _load_settings(settings_file)
        settings.append(salesforce)
        _sync(salesforce, engine, once, db_url, rules_path, interval, overlap, output_format)


def _sync(
    salesforce: SalesforceSettings,
    engine: EngineSettings,
    once: bool,
    db_url: str,
    rules_path: str | None,
    interval: float,
    overlap: float,
    output_format: str,
) -> None:
    from engine.crm.salesforce import AuthenticationError, SalesforceAdapter, SalesforceUnavailable
    from engine.store.store import Store, StoreError
    from engine.sync.poller import Poller, SyncError

    if not engine.campaign_sync:
        raise _Stop(
            EXIT_FAIL,
            "campaign sync is turned off (SMARTCAMPAIGN_CAMPAIGN_SYNC=false): nothing was synced; "
            "`smartcampaign doctor` checks the set-up",
        )
    rule_set = _load_rules(rules_path) if rules_path else None
    try:
        store = Store.open(db_url)
    except StoreError as error:
        raise _Stop(EXIT_USAGE, str(error)) from None
    except Exception as error:  # a URL SQLAlchemy cannot use
        raise _Stop(EXIT_USAGE, f"cannot open the store {db_url!r}: {type(error).__name__}: {error}") from None
    try:
        adapter = SalesforceAdapter(salesforce)
        interpreter = None
        if rule_set is not None:
            from engine.runtime.interpreter import Interpreter
            from engine.sync.programs import program_sync

            interpreter = Interpreter(
                rule_set,
                store,
                adapter,
                max_depth=engine.max_depth,
                program_sync=program_sync(disabled=frozenset(engine.sync_disabled_programs)),
            )
        poller = Poller(adapter, store, interpreter, overlap_seconds=overlap)
        while True:
            try:
                report = poller.poll_once()
            except AuthenticationError as error:
                raise _Stop(EXIT_FAIL, f"{error} ({salesforce.describe()})") from None
            except SalesforceUnavailable as error:
                if once:
                    raise _Stop(EXIT_FAIL, f"{error}; nothing was synced ({salesforce.describe()})") from None
                click.echo(redact(f"smartcampaign sync: {error}; trying again in {interval:g} s", salesforce), err=True)
            except SyncError as error:
                raise _Stop(EXIT_FAIL, f"{error}; nothing was synced") from None
            else:
                _print_report(report, output_format)
            if once:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- doctor
MARKS = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red"), "skip": ("-", "dim")}


def _print_checks(checks: list[Any], output_format: str) -> None:
    ok = all(check.ok for check in checks)
    if output_format == "json":
        click.echo(json.dumps({"ok": ok, "checks": [c.to_json() for c in checks]}, indent=2, ensure_ascii=False))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="smartcampaign doctor", title_justify="left", show_lines=True)
    table.add_column("", no_wrap=True)
    table.add_column("Check", style="bold", overflow="fold")
    table.add_column("Result", overflow="fold")
    table.add_column("Fix", overflow="fold")
    for check in checks:
        mark, style = MARKS[check.status]
        table.add_row(f"[{style}]{mark}[/{style}]", escape(check.name), escape(check.detail), escape(check.fix))
    out = console()
    out.print(table)
    failed = [c for c in checks if c.status == "fail"]
    skipped = [c for c in checks if c.status == "skip"]
    passed = len(checks) - len(failed) - len(skipped)
    summary = f"{passed} passed, {len(failed)} failed" + (f", {len(skipped)} not checked" if skipped else "")
    out.print(f"[{'green' if ok else 'bold red'}]{summary}[/]")


@click.command("doctor", context_settings=CONTEXT_SETTINGS)
@settings_option
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(),
    help="A .campaign file or folder: also check that each synced program's campaign has the channel's statuses.",
)
@format_option()
def doctor_command(settings_file: str | None, rules_path: str | None, output_format: str) -> None:
    """Check the Salesforce set-up campaign sync needs, and say how to fix what is wrong.

    \b
    Checks: Salesforce reachable and authenticated; API calls left today; the sync user is a Marketing User;
    it may create and edit Campaigns and CampaignMembers; campaign sync is enabled in the settings; with
    --rules, the member statuses of every synced program's campaign match its channel. Exit 1 when a check fails.
    """
    settings: list[SalesforceSettings] = []
    with _guard("doctor", lambda: settings[0] if settings else None):
        salesforce, engine = _load_settings(settings_file)
        settings.append(salesforce)
        from engine.crm.doctor import run_doctor
        from engine.crm.salesforce import SalesforceAdapter

        rule_set = _load_rules(rules_path, "nothing was checked") if rules_path else None
        checks = [
            replace(check, detail=redact(check.detail, salesforce), fix=redact(check.fix, salesforce))
            for check in run_doctor(SalesforceAdapter(salesforce), engine, rule_set)
        ]
        _print_checks(checks, output_format)
        if not all(check.ok for check in checks):
            raise _Stop(EXIT_FAIL)
