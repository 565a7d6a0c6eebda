"""The wheel works on its own: built from the tree, installed into a fresh venv, `check` run from elsewhere.

The project is copied first (without .venv, .git, build/ and egg-info) so that a stale build/ folder in the
work tree can neither hide a missing package-data file nor be written to. The grammar and the shipped rules
live only in the top-level grammar/ and rules/ folders; the wheel must carry them as engine/grammar and
engine/rules (pyproject.toml's package-dir mapping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RULES = """channel "Seminar" {
    status "Invited" step 10
    status "Attended" step 20 success
}

program "Q4 Seminar" {
    channel "Seminar"
    sync with sfdc campaign "Q4 Seminar"
}

program "Q4 Webinar" {
    channel "Webinar"    # a built-in channel, from the installed package data
}

campaign "Follow up" {
    trigger status changed in program "Q4 Seminar" to "Attended"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""

IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", "tests", "bench", "*.sqlite", "*.db",
)  # fmt: skip


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["SMARTCAMPAIGN_CACHE_DIR"] = str(cache)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_installed_package_checks_rules_from_another_directory(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    venv = tmp_path / "venv"
    env = _env(tmp_path / "cache")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    build = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-input",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("smartcampaign-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert {"engine/grammar/campaign.lark", "engine/rules/channels/standard.campaign"} <= shipped
    assert {"engine/rules/starter/webinar.campaign", "engine/rules/starter/lifecycle.campaign"} <= shipped
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-input", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    # The package data is in the installed package as real files.
    located = subprocess.run(
        [str(python), "-c", "import engine, pathlib; print(pathlib.Path(engine.__file__).parent)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    package = Path(located.stdout.strip())
    assert venv in package.parents, f"engine imported from {package}, not from the fresh venv"
    grammar = package / "grammar" / "campaign.lark"
    assert grammar.is_file() and not grammar.is_symlink()
    assert not (package / "grammar").is_symlink()
    assert "campaign" in grammar.read_text(encoding="utf-8")
    channels = package / "rules" / "channels" / "standard.campaign"
    assert channels.is_file() and not channels.is_symlink()

    # `smartcampaign check` from another directory, on a copied rule file.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    (workdir / "rules.campaign").write_text(RULES, encoding="utf-8")
    smartcampaign = venv / "bin" / "smartcampaign"
    clean = subprocess.run(
        [str(smartcampaign), "check", "rules.campaign"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=workdir,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "1 file checked: 0 errors, 0 warnings" in clean.stderr

    (workdir / "broken.campaign").write_text('campaign "X" {\n    trigger aded to sfdc campaign "W"\n}\n')
    broken = subprocess.run(
        [str(smartcampaign), "check", "--no-cache", "broken.campaign"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=workdir,
    )
    assert broken.returncode == 1
    assert "broken.campaign:2:13: error:" in broken.stderr
    assert "Traceback" not in broken.stderr + broken.stdout
