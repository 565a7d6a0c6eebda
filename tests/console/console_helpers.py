"""Helpers for the console tests: a real `smartcampaign serve` process and a real headless Chromium."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_helpers import Proc, free_port, pg_available, pg_schema, wait_until  # the service tests' helpers

__all__ = ["Proc", "Serve", "browser", "chromium_or_skip", "pg_available", "pg_schema", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "webinar-follow-up"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Serve:
    """`smartcampaign serve` as a process (the service tests' `Proc`) on a free port, ready when constructed."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(["serve", *args, "--port", str(self.port)], log, env)

        token = args[args.index("--token") + 1] if "--token" in args else ""
        auth = {"Authorization": f"Bearer {token}"}

        def up() -> bool:
            assert self.proc.alive(), self.proc.output()
            try:
                return requests.get(f"{self.base}/readyz", headers=auth, timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, 30, 0.1, "the service to be ready")

    def output(self) -> str:
        return self.proc.output()

    def close(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL only when it does not stop in time."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.terminate(20)
        self.proc.close()


def chromium_or_skip() -> None:
    """Chromium and Playwright must be there; on CI (.ci/run installs Chromium) their absence is a failure."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
