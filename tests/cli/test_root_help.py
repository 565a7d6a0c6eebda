"""`smartcampaign --help` is a table of contents: every command under its section, with its one-line help."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from engine.cli import cli

SECTIONS = {
    "Rules": ["check", "fmt", "explain", "graph", "schedule", "lsp"],
    "Run": ["replay"],
    "Salesforce": ["sync", "doctor"],
    "Service": ["serve", "worker", "status", "db"],
    "Emulator": ["emulator"],
}


def root_help() -> str:
    result = CliRunner().invoke(cli, ["--help"], prog_name="smartcampaign")
    assert result.exit_code == 0, result.output
    return result.output


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each `Heading:` block of the help: the (command, one-line help) rows under it."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        heading = re.fullmatch(r"([A-Z][A-Za-z]*):", line)
        if heading:
            current = found.setdefault(heading.group(1), [])
        elif current is not None and line.startswith("  ") and line.strip():
            name, _, summary = line.strip().partition(" ")
            current.append((name, summary.strip()))
        elif not line.strip():
            current = None
    return found


def test_every_command_is_listed_under_its_section_in_order() -> None:
    found = sections(root_help())
    for heading, commands in SECTIONS.items():
        assert [name for name, _summary in found.get(heading, [])] == commands, heading


def test_the_sections_come_in_order_before_the_options_and_the_examples() -> None:
    text = root_help()
    positions = [text.index(f"\n{heading}:\n") for heading in (*SECTIONS, "Options", "Examples")]
    assert positions == sorted(positions)
    assert "Commands:" not in text
    assert "smartcampaign check rules/" in text.split("\nExamples:\n", 1)[1]


def test_each_command_shows_its_own_one_line_help() -> None:
    found = {name: summary for rows in sections(root_help()).values() for name, summary in rows}
    for name in (command for commands in SECTIONS.values() for command in commands):
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        assert found[name], name
        assert command.get_short_help_str(200).startswith(found[name].removesuffix("..."))


def test_every_command_of_the_group_is_in_a_section() -> None:
    listed = {command for commands in SECTIONS.values() for command in commands}
    assert set(cli.list_commands(click.Context(cli))) == listed
