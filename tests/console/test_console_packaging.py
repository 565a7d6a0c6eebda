"""The console's templates and static files are package data: a wheel built from the sources carries them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", "tests", "bench", "*.sqlite", "*.db", "docs", "examples",
)  # fmt: skip


def test_the_wheel_carries_templates_and_static_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED, symlinks=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "w"),
         str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "w").glob("smartcampaign-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        f"engine/service/console/templates/{p.name}" for p in (ROOT / "engine/service/console/templates").iterdir()
    }
    wanted |= {f"engine/service/console/static/{p.name}" for p in (ROOT / "engine/service/console/static").iterdir()}
    assert len(wanted) >= 9 and wanted <= names
