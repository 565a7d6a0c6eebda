"""The service commands' edges: `db upgrade`, refusals with their exit codes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from service_helpers import RULES, query

from engine.cli.service import db_command, serve_command, worker_command
from engine.service.schema import head_revision

HEAD = head_revision()


def test_db_upgrade_creates_then_reports_the_revision(pg_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(db_command, ["upgrade", "--db", pg_url])
    assert first.exit_code == 0, first.output
    assert f"upgraded from an empty database to revision {HEAD}" in first.output
    again = runner.invoke(db_command, ["upgrade", "--db", pg_url])
    assert again.exit_code == 0 and f"already at revision {HEAD}" in again.output
    tables = {row[0] for row in query(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    assert {
        "service_inbox",
        "service_outbox",
        "service_cursors",
        "service_api_calls",
        "alembic_version",
        "persons",
        "runs",
    } <= tables


def test_db_upgrade_on_sqlite_and_an_unreachable_database(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(db_command, ["upgrade", "--db", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 0 and f"revision {HEAD}" in result.output
    down = runner.invoke(db_command, ["upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"])
    assert down.exit_code == 2 and "Traceback" not in down.output


def test_broken_rules_and_usage_errors_exit_with_their_codes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.campaign"
    broken.write_text('campaign "Broken" {\n    trigger added to\n}\n')
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = runner.invoke(serve_command, ["--rules", str(broken), "--db", db, "--token", "t"])
    assert result.exit_code == 1 and "broken.campaign:3:1: error:" in result.output
    result = runner.invoke(worker_command, ["--rules", str(broken), "--db", db])
    assert result.exit_code == 1 and "broken.campaign:3:1: error:" in result.output
    result = runner.invoke(worker_command, ["--rules", RULES])
    assert result.exit_code == 2 and "--db is required" in result.output
    result = runner.invoke(serve_command, ["--rules", RULES, "--db", db, "--workers", "2", "--token", "t"])
    assert result.exit_code == 2 and "SQLite runs one worker" in result.output
    names = ("USERNAME", "INSTANCE_URL", "SESSION_ID", "CLIENT_ID")
    no_credentials: dict[str, str | None] = {f"SMARTCAMPAIGN_SFDC_{name}": None for name in names}
    args = ["--rules", RULES, "--db", db, "--crm", "salesforce", "--token", "t"]
    result = runner.invoke(serve_command, args, env=no_credentials)
    assert result.exit_code == 2 and "needs credentials" in result.output
