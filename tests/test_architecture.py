"""The house: rooms import downward only, the emulator stands alone, no links under engine/, every package shipped.

The contracts themselves are in pyproject.toml ([tool.importlinter]); the README's architecture section draws them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
        env=env,
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(ROOT / "engine", project / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    return project


def test_an_upward_import_breaks_the_rooms_contract(tmp_path: Path) -> None:
    project = _copy(tmp_path)
    (project / "engine" / "runtime" / "upward.py").write_text("from engine.sync import programs\n")
    result = lint_imports(project)
    assert result.returncode == 1
    assert "engine.runtime is not allowed to import engine.sync" in result.stdout
    assert "engine.runtime.upward -> engine.sync.programs" in result.stdout


def test_the_emulator_may_not_import_the_engine_nor_the_engine_the_emulator(tmp_path: Path) -> None:
    project = _copy(tmp_path)
    (project / "engine" / "emulator" / "leak.py").write_text("import engine.store.store\n")
    (project / "engine" / "service" / "leak.py").write_text("import engine.emulator.testing\n")
    result = lint_imports(project)
    assert result.returncode == 1
    assert "engine.emulator is not allowed to import engine.store" in result.stdout
    assert "engine.service is not allowed to import engine.emulator" in result.stdout


def test_no_symlinks_under_engine() -> None:
    links = [str(path.relative_to(ROOT)) for path in (ROOT / "engine").rglob("*") if path.is_symlink()]
    assert links == []


def test_pyproject_lists_every_package_in_the_tree() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = set(config["package-dir"])
    in_tree = set(setuptools.find_packages(str(ROOT), include=["engine*"]))
    assert listed == in_tree | mapped, f"missing {sorted(in_tree - listed)}, stale {sorted(listed - in_tree - mapped)}"
    assert {config["package-dir"][name] for name in mapped} == {"grammar", "rules"}
