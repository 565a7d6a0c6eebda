"""The `smartcampaign` command line: thin wrappers that parse arguments, call the library and print.

The top layer: it may import every room of the engine (and is the only importer of `engine.emulator`); nothing
in `engine` imports it. One module per group of commands, each imported only when one of its commands runs or
`--help` lists them, so that `smartcampaign check` loads neither the service, Salesforce nor the emulator:

- `rules`: check, fmt, explain, graph, lsp
- `run`: replay
- `salesforce`: sync, doctor
- `service`: serve, worker, status, db
- `emulator`: emulator

`common` holds what they share: exit codes, `--format`, stderr, consoles, settings names, the traceback guard.
"""

from __future__ import annotations

import importlib

import click

from engine import __version__
from engine.cli.common import CONTEXT_SETTINGS

__all__ = ["SECTIONS", "cli", "main"]

# The root help's table of contents, in order: (heading, module, ((command, attribute in the module), ...)).
SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Rules",
        "engine.cli.rules",
        (
            ("check", "check"),
            ("fmt", "fmt"),
            ("explain", "explain"),
            ("graph", "graph_command"),
            ("schedule", "schedule_command"),
            ("lsp", "lsp"),
        ),
    ),
    ("Run", "engine.cli.run", (("replay", "replay"),)),
    ("Salesforce", "engine.cli.salesforce", (("sync", "sync_command"), ("doctor", "doctor_command"))),
    (
        "Service",
        "engine.cli.service",
        (("serve", "serve_command"), ("worker", "worker_command"), ("status", "status_command"), ("db", "db_command")),
    ),
    ("Emulator", "engine.cli.emulator", (("emulator", "emulator_command"),)),
)

# The root help's last section, verbatim.
EXAMPLES = (
    "smartcampaign check rules/",
    "smartcampaign fmt --check rules/",
    "smartcampaign replay examples/webinar-follow-up/rules --world examples/webinar-follow-up/world.json \\",
    "    --events examples/webinar-follow-up/events.jsonl --format text",
    "smartcampaign serve --rules rules/ --world world.json --token s3cret",
)

_WHERE: dict[str, tuple[str, str]] = {
    name: (module, attribute) for _heading, module, commands in SECTIONS for name, attribute in commands
}


class _Sections(click.Group):
    """The root group: commands imported on first use, and listed in `--help` section by section."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_WHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _WHERE:
            module, attribute = _WHERE[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command sections first (a table of contents), then the options."""
        self.format_commands(ctx, formatter)
        click.Command.format_options(self, ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: list[tuple[str, list[tuple[str, click.Command]]]] = []
        for heading, _module, commands in SECTIONS:
            sections.append((heading, [(name, self._listed(ctx, name)) for name, _attribute in commands]))
        others = [name for name in self.list_commands(ctx) if name not in _WHERE]
        if others:
            sections.append(("Other", [(name, self._listed(ctx, name)) for name in others]))
        shown = [(heading, [(n, c) for n, c in rows if not c.hidden]) for heading, rows in sections]
        names = [name for _heading, rows in shown for name, _command in rows]
        if not names:
            return
        width = max(len(name) for name in names)
        limit = formatter.width - 6 - width
        for heading, rows in shown:
            if rows:
                with formatter.section(heading):
                    # names padded to one width: the help column lines up across the sections
                    formatter.write_dl([(name.ljust(width), cmd.get_short_help_str(limit)) for name, cmd in rows])

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The examples, last, as lines of their own (never wrapped)."""
        with formatter.section("Examples"):
            for line in EXAMPLES:
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")

    def _listed(self, ctx: click.Context, name: str) -> click.Command:
        command = self.get_command(ctx, name)
        if command is None:  # pragma: no cover - every listed name resolves
            raise RuntimeError(f"smartcampaign: no command {name!r}")
        return command


@click.group(cls=_Sections, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="smartcampaign")
def cli() -> None:
    """Marketo-style smart campaigns over Salesforce, as code.

    Every command takes -h / --help for its options and examples; docs/cli.md is the reference.
    """


def main() -> None:
    """Console entry point (`smartcampaign = "engine.cli:main"`)."""
    cli(prog_name="smartcampaign")
