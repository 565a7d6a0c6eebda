"""Runs one scenario folder through `smartcampaign replay` and says what did not match its expect.json.

The checks are those of the conformance suite's runner (shared/conformance/run.py), kept here so that the tests
run from a clone without shared/, plus a few keys of our own (README.md in this folder lists them all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TIMEOUT = 120
FAULT_VARIABLE = "SMARTCAMPAIGN_FAULT_EXIT_AFTER_RUNS"
INTERRUPTED_EXIT = 137


def default_command() -> list[str]:
    """The `smartcampaign` installed beside the running Python (the venv's), else the module."""
    script = Path(sys.executable).parent / "smartcampaign"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "engine.cli"]


def find_scenarios(parent: Path = HERE) -> list[Path]:
    return sorted(d for d in parent.iterdir() if (d / "expect.json").exists())


def all_steps(
    result: dict[str, Any], campaign: str | None = None, person: str | None = None
) -> Iterator[dict[str, Any]]:
    for run in result.get("runs", []):
        if campaign is not None and run.get("campaign") != campaign:
            continue
        if person is not None and str(run.get("person", "")).lower() != person.lower():
            continue
        yield from run.get("steps", [])


def members_of(world: dict[str, Any], name: str) -> dict[str, str] | None:
    for c in world.get("sfdc_campaigns", []):
        if c.get("name") == name:
            return {k.lower(): v for k, v in (c.get("members") or {}).items()}
    return None


def replay_argv(scenario: Path, expect: dict[str, Any], command: list[str]) -> list[str]:
    rules = scenario / "rules" if (scenario / "rules").is_dir() else scenario / "rules.campaign"
    argv = [*command, "replay", str(rules)]
    if (scenario / "world.json").exists():
        argv += ["--world", str(scenario / "world.json")]
    events = scenario / "events.jsonl"
    argv += ["--events", str(events) if events.exists() else os.devnull]
    return argv + list(expect.get("args", []))


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str] | str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    except FileNotFoundError:
        return f"cannot run {argv[0]!r}"
    except subprocess.TimeoutExpired:
        return f"timed out after {TIMEOUT} s"


def check(scenario: Path, command: list[str] | None = None) -> list[str]:
    """The problems found (empty: the scenario passed)."""
    expect = json.loads((scenario / "expect.json").read_text(encoding="utf-8"))
    argv = replay_argv(scenario, expect, command or default_command())
    env = {k: v for k, v in os.environ.items() if k != FAULT_VARIABLE}
    with tempfile.TemporaryDirectory(prefix="scenario-") as tmp:
        if "interrupt" in expect:
            argv += ["--store", str(Path(tmp) / "state.db")]
            after = int(expect["interrupt"]["exit_after_runs"])
            first = _run(argv, {**env, FAULT_VARIABLE: str(after)})
            if isinstance(first, str):
                return [f"interrupted run: {first}"]
            if first.returncode != INTERRUPTED_EXIT:
                return [
                    f"interrupted run ({FAULT_VARIABLE}={after}): exit {first.returncode}, expected "
                    f"{INTERRUPTED_EXIT}; stderr: {first.stderr.strip()[-400:]}"
                ]
        proc = _run(argv, env)
    if isinstance(proc, str):
        return [proc]
    return check_result(expect, proc.returncode, proc.stdout, proc.stderr)


def check_result(expect: dict[str, Any], returncode: int, stdout: str, stderr: str) -> list[str]:
    problems: list[str] = []
    want_exit = expect.get("exit", 0)
    if returncode != want_exit:
        return [f"exit {returncode}, expected {want_exit}; stderr: {stderr.strip()[-400:]}"]
    if "Traceback (most recent call last)" in stderr:
        problems.append("a Python traceback on stderr")
    for text in expect.get("stderr_contains", []):
        if text.lower() not in stderr.lower():
            problems.append(f"stderr lacks {text!r}: {stderr.strip()[-300:]}")
    for rx in expect.get("stderr_regex", []):
        if not re.search(rx, stderr, re.M):
            problems.append(f"stderr does not match /{rx}/: {stderr.strip()[-300:]}")
    if want_exit != 0:
        return problems
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError as e:
        return [*problems, f"stdout is not JSON ({e}): {stdout[:200]!r}"]
    world = result.get("world", {})
    for name, want in expect.get("members", {}).items():
        got = members_of(world, name)
        want = {k.lower(): v for k, v in want.items()}
        if got != want:
            problems.append(f"members of {name!r}: got {got}, expected {want}")
    for name, absent in expect.get("not_members", {}).items():
        got = members_of(world, name) or {}
        for email in absent:
            if email.lower() in got:
                problems.append(f"{email} should not be a member of {name!r}")
    runs = result.get("runs", [])
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.get("campaign")] = counts.get(run.get("campaign"), 0) + 1
    for name, n in expect.get("runs", {}).items():
        if counts.get(name, 0) != n:
            problems.append(f"runs of {name!r}: got {counts.get(name, 0)}, expected {n}")
    for name, want_times in expect.get("run_times", {}).items():
        got_times: list[str] = []
        for run in runs:
            if run.get("campaign") == name and run.get("at") not in got_times:
                got_times.append(run.get("at"))
        if got_times != want_times:
            problems.append(f"run times of {name!r}: got {got_times}, expected {want_times}")
    for name, want_types in expect.get("trigger_types", {}).items():
        got_types = sorted({str((run.get("trigger") or {}).get("type")) for run in runs if run.get("campaign") == name})
        if got_types != sorted(want_types):
            problems.append(f"trigger types of {name!r}'s runs: got {got_types}, expected {sorted(want_types)}")
    for name, want_persons in expect.get("run_persons", {}).items():
        got_persons = sorted(str(run.get("person", "")).lower() for run in runs if run.get("campaign") == name)
        if got_persons != sorted(p.lower() for p in want_persons):
            problems.append(f"persons of {name!r}'s runs: got {got_persons}, expected {sorted(want_persons)}")
    for want in expect.get("steps", []):
        if not any(_step_matches(step, want) for step in all_steps(result, want.get("campaign"), want.get("person"))):
            problems.append(f"no step like {want}")
    for want in expect.get("no_steps", []):
        for step in all_steps(result, want.get("campaign"), want.get("person")):
            if _step_matches(step, want):
                problems.append(f"a step like {want} should not have happened: {step}")
                break
    persons = {p.get("email", "").lower(): p for p in world.get("persons", [])}
    for email in expect.get("in_sfdc", []):
        if not persons.get(email.lower(), {}).get("sfdc_id"):
            problems.append(f"{email} should be in Salesforce (have an sfdc_id) at the end")
    errors = result.get("errors", [])
    if len(errors) < expect.get("errors_min", 0):
        problems.append(f"{len(errors)} errors, expected at least {expect['errors_min']}")
    if "errors_max" in expect and len(errors) > expect["errors_max"]:
        problems.append(f"{len(errors)} errors, expected at most {expect['errors_max']}: {errors[:3]}")
    messages = " | ".join(str(e.get("message", e)) for e in errors).lower()
    for text in expect.get("errors_contain", []):
        if text.lower() not in messages:
            problems.append(f"no error mentions {text!r}; errors: {messages[:300]}")
    if "waiting" in expect:
        got_waiting = sorted(
            (str(w.get("campaign")), str(w.get("person", "")).lower(), str(w.get("due")))
            for w in result.get("waiting", [])
        )
        want_waiting = sorted((w["campaign"], w["person"].lower(), w["due"]) for w in expect["waiting"])
        if got_waiting != want_waiting:
            problems.append(f"waiting: got {got_waiting}, expected {want_waiting}")
    return problems


def _step_matches(step: dict[str, Any], want: dict[str, Any]) -> bool:
    if step.get("action") != want["action"]:
        return False
    if "outcome" in want and step.get("outcome") != want["outcome"]:
        return False
    if "detail_contains" in want and want["detail_contains"].lower() not in str(step.get("detail", "")).lower():
        return False
    return "at" not in want or step.get("at") == want["at"]
