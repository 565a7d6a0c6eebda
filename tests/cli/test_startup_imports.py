"""What a `smartcampaign` process imports: `check` must not pay for the service, Salesforce or the store.

These assert which modules are loaded (in a fresh interpreter), never how long anything takes, so that a
top-level import added to the wrong module shows up here instead of as a slower command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What only the service, the emulator, `sync`, `doctor`, `status` or `replay --format text` need.
HEAVY = ("fastapi", "uvicorn", "starlette", "simple_salesforce", "sqlalchemy", "alembic", "pydantic", "rich")
# What only parsing and checking need: an unchanged rule set is answered from the check cache without them.
PARSING = ("lark", "engine.language.parser", "engine.language.ast", "engine.language.checks")

RULES = """\
campaign "Follow-up" {
    trigger added to sfdc campaign "Webinar" with status "Attended"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
    }
}
"""

PROBE = textwrap.dedent(
    """
    import json, sys
    from engine.cli import main
    sys.argv = ["smartcampaign", *sys.argv[1:]]
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    else:
        code = 0
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.__stdout__)
    """
)


def loaded_by(cache: Path, *args: str) -> tuple[object, set[str]]:
    """Exit code and the modules loaded by `smartcampaign ARGS` in a fresh interpreter."""
    env = {**os.environ, "SMARTCAMPAIGN_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "follow-up.campaign").write_text(RULES, encoding="utf-8")
    return folder


def test_importing_the_cli_loads_no_command_room(tmp_path: Path) -> None:
    probe = "import json, sys, engine.cli; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert present(modules, HEAVY + PARSING) == []
    assert not any(m.startswith(("engine.service", "engine.crm", "engine.store", "engine.runtime")) for m in modules)


def test_check_parses_without_the_service_or_salesforce(tmp_path: Path, rules: Path) -> None:
    code, modules = loaded_by(tmp_path / "cache", "check", str(rules))
    assert code == 0
    assert present(modules, HEAVY) == []
    assert "engine.language.parser" in modules  # it did parse: the cache was empty


def test_check_of_an_unchanged_rule_set_does_not_parse(tmp_path: Path, rules: Path) -> None:
    cache = tmp_path / "cache"
    assert loaded_by(cache, "check", str(rules))[0] == 0
    code, modules = loaded_by(cache, "check", str(rules))
    assert code == 0
    assert present(modules, HEAVY + PARSING) == []


def test_check_of_every_example_does_not_load_the_service(tmp_path: Path) -> None:
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*/rules"))
    assert examples
    code, modules = loaded_by(tmp_path / "cache", "check", *examples)
    assert code == 0
    assert present(modules, HEAVY) == []


def test_help_still_lists_every_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0
    listed = proc.stdout.split("Rules:", 1)[1].split("Options:", 1)[0].split()
    every = ("check", "db", "doctor", "emulator", "explain", "fmt", "lsp", "replay", "serve", "status", "sync")
    assert [command for command in (*every, "worker") if command not in listed] == []
