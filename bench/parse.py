"""Benchmark the rule-set parser and checker on a large, realistic rule set.

Generates 1,000 campaigns across 50 `.campaign` files in a temporary folder (each campaign: 2 triggers, 3 filter
lines, one of them combining and/or/not, a qualify line, and a flow of 4 steps, one of them an
if / else if / else choice with a step in every branch, plus a wait), then times:

- library, cold: `load_rule_set([folder])` in a fresh Python process with an empty cache folder
  (SMARTCAMPAIGN_CACHE_DIR), so that neither the compiled grammar nor the parse cache exists yet;
- library, cached: the same call in this process with the same, now filled, cache folder (best of 5);
- the whole command, cold and cached: wall time of `smartcampaign check FOLDER` as a new process (startup and
  imports included), first with an empty cache folder, then again with the cache that run filled; the median of
  CLI_RUNS such pairs, each with a new cache folder. The same for `smartcampaign check examples/*/rules`;
- bounded input: `smartcampaign check` (a new process, a new cache folder) on one file of 40,000 nested `if`
  blocks, refused with `nested-too-deep`; the median of CLI_RUNS runs.

Run with `.venv/bin/python bench/parse.py` from the project root. Standard library and the project only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COLD_GOAL_S = 1.0
CACHED_GOAL_S = 0.2
CLI_COLD_GOAL_S = 1.0  # the whole `smartcampaign check` command, a new process, nothing cached
CLI_CACHED_GOAL_S = 0.25  # the same command again over the unchanged rule set
CLI_RUNS = 3
DEEP_LEVELS = 40_000
DEEP_GOAL_S = 0.5  # the whole command refuses the 40,000-deep file
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WARM_RUNS = 5
WARM_BUDGET_S = 30.0  # keeps the whole benchmark near a minute even when loading is slow
CHILD_FLAG = "--child"

TRIGGER_STATUSES = ("Registered", "Attended", "Responded")
QUALIFY_LINES = ("qualify once", "qualify every time", "qualify once every 7 days", "qualify once every 2 weeks")
WAITS = ("wait 2 days", "wait 1 week", "wait 4 hours", "wait 30 minutes")


# ------------------------------------------------------------------------------------------ rule set


def campaign_text(i: int) -> str:
    """One campaign of realistic size. Triggers watch "Source" campaigns and flows act on "Target" campaigns
    only, so the rule set is free of trigger cycles (and of their warnings) by construction."""
    source_a = f"Source {i % 97:02d}"
    source_b = f"Source {(i * 7 + 3) % 97:02d}"
    segment = f"Segment {i % 13:02d}"
    target = f"Target {i % 89:02d}"
    nurture = f"Nurture {i % 41:02d}"
    status = TRIGGER_STATUSES[i % len(TRIGGER_STATUSES)]
    first_trigger = (
        f'trigger added to sfdc campaign "{source_a}" with status "{status}"',
        f'trigger removed from sfdc campaign "{source_a}"',
        f'trigger status changed in sfdc campaign "{source_a}" from "Registered" to in ("Attended", "Responded")',
    )[i % 3]
    return f'''# Benchmark campaign {i}: generated, every campaign has the same shape.
campaign "Bench {i:04d} - follow-up for {source_a}" {{
    description "Generated campaign {i} for the parser benchmark"
    {first_trigger}
    trigger status changed in sfdc campaign in ("{source_b}", "{source_a}") to "{status}"
    filter not member of sfdc campaign "Do Not Contact"
    filter member of sfdc campaign "{segment}" with status in ("Sent", "Responded")
    filter (member of sfdc campaign "Customers" and not member of sfdc campaign "Churned")
           or member of sfdc campaign id "701{i:012d}AAA"
    {QUALIFY_LINES[i % len(QUALIFY_LINES)]}
    flow {{
        add to sfdc campaign "{target}" with status "Sent"
        if member of sfdc campaign "VIP" with status "Responded" {{
            add to sfdc campaign "VIP {nurture}" with status "Sent"
        }} else if not member of sfdc campaign "Customers" {{
            add to sfdc campaign "Prospect {nurture}" with status "Sent"
        }} else {{
            change status in sfdc campaign "Customer {nurture}" to "Responded"
        }}
        {WAITS[i % len(WAITS)]}
        change status in sfdc campaign "{target}" to "Responded"
        remove from sfdc campaign "Prospect {nurture}"
    }}
}}
'''


def write_rule_set(folder: Path, campaigns: int, files: int) -> int:
    """Writes `campaigns` campaigns spread evenly over `files` files; returns the total size in bytes."""
    per_file, extra = divmod(campaigns, files)
    size = 0
    number = 0
    for f in range(files):
        count = per_file + (1 if f < extra else 0)
        text = "".join(campaign_text(number + k) for k in range(count))
        number += count
        path = folder / f"team-{f:02d}" / f"campaigns-{f:02d}.campaign"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        size += len(text.encode("utf-8"))
    return size


# ------------------------------------------------------------------------------------------ timing


def timed_load(folder: str) -> dict[str, Any]:
    """Imports the loader, then times one `load_rule_set` call; what it found, as plain data.

    The semantic checks inside that call are timed too, by wrapping `check_rule_set` for the call (the loader
    imports it when it runs), so the figure splits into parsing and checking without a second run.
    """
    started = time.perf_counter()
    import engine.language.checks as checks
    from engine.language.loader import load_rule_set

    imported = time.perf_counter()
    original = checks.check_rule_set
    spent: list[float] = []

    def timed_check_rule_set(*args: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - begun)

    checks.check_rule_set = timed_check_rule_set
    try:
        result = load_rule_set([folder])
    finally:
        checks.check_rule_set = original
    loaded = time.perf_counter()
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "checks_s": sum(spent) if spent else None,
        "files": result.files,
        "campaigns": len(result.rule_set.campaigns),
        "errors": [f"{d.file}:{d.line}:{d.column}: {d.message}" for d in result.errors],
        "warnings": [f"{d.file}:{d.line}:{d.column}: {d.message}" for d in result.diagnostics if not d.is_error],
    }


def child_main(folder: str) -> None:
    """The cold run: a fresh interpreter, so nothing is in memory and the cache folder is empty."""
    print(json.dumps(timed_load(folder)))


def cold_library_run(folder: Path, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "SMARTCAMPAIGN_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"the cold run failed (exit {proc.returncode}):\n{proc.stderr}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def warm_library_runs(folder: Path, cache: Path, runs: int) -> list[dict[str, Any]]:
    """Up to `runs` loads in this process, stopping early once they have taken WARM_BUDGET_S in all."""
    os.environ["SMARTCAMPAIGN_CACHE_DIR"] = str(cache)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    while len(results) < runs and (not results or time.perf_counter() - started < WARM_BUDGET_S):
        results.append(timed_load(str(folder)))
    return results


def warm_check_runs(folder: Path, cache: Path, runs: int) -> list[float]:
    """`check_paths` (what `smartcampaign check` runs) with a warm cache, in this process."""
    os.environ["SMARTCAMPAIGN_CACHE_DIR"] = str(cache)
    from engine.language.loader import check_paths

    check_paths([folder])  # fills the check cache if the library runs did not
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        diagnostics, _files, _sources = check_paths([folder])
        times.append(time.perf_counter() - start)
        assert not any(d.is_error for d in diagnostics)
    return times


def smartcampaign_command() -> list[str]:
    beside = Path(sys.executable).with_name("smartcampaign")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("smartcampaign")
    if found:
        return [found]
    return [sys.executable, "-c", "from engine.cli import main; main()"]


def cli_run(paths: list[Path], cache: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "SMARTCAMPAIGN_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    proc = subprocess.run(
        [*smartcampaign_command(), "check", *map(str, paths)], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, proc


def cli_runs(paths: list[Path], caches: Path, runs: int) -> tuple[list[float], list[float], str]:
    """`runs` pairs of whole-command runs, each pair with a new, empty cache folder under `caches`: the cold run,
    then the cached one; their wall times and the summary line of the last run. Exits if a run does not pass."""
    cold: list[float] = []
    cached: list[float] = []
    summary = ""
    for run in range(runs):
        cache = caches / f"run-{run}"
        for times in (cold, cached):
            seconds, proc = cli_run(paths, cache)
            if proc.returncode != 0:
                sys.exit(f"`smartcampaign check` exited {proc.returncode}:\n{proc.stderr}")
            times.append(seconds)
            summary = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "(none)"
    return cold, cached, summary


def deep_file(folder: Path, levels: int) -> Path:
    """One campaign whose flow nests `levels` `if` blocks, on one line."""
    body = 'if member of sfdc campaign "B" { ' * levels + 'add to sfdc campaign "C" with status "Sent" ' + "} " * levels
    path = folder / "deep.campaign"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'campaign "Deep" {{ trigger added to sfdc campaign "A" flow {{ {body}}} }}\n', encoding="utf-8")
    return path


def deep_runs(path: Path, caches: Path, runs: int) -> list[float]:
    """Whole-command runs on the deep file, each with a new cache folder; exits unless each is refused."""
    times = []
    for run in range(runs):
        seconds, proc = cli_run([path], caches / f"deep-{run}")
        if proc.returncode != 1 or "nested-too-deep" not in proc.stderr:
            sys.exit(f"the {DEEP_LEVELS:,}-deep file was not refused (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        times.append(seconds)
    return times


# ------------------------------------------------------------------------------------------ report


WIDTH = 50


def seconds_list(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times) + " s"


def row(scenario: str, seconds: float, campaigns: int | None, goal: float | None) -> str:
    rate = f"{campaigns / seconds if seconds > 0 else float('inf'):>13,.0f}" if campaigns else " " * 13
    if goal is None:
        goal_text, verdict = "(reference)", ""
    else:
        goal_text, verdict = f"< {goal:g} s", "PASS" if seconds < goal else "MISS"
    return f"{scenario:<{WIDTH}} {seconds:>9.3f} {rate}   {goal_text:<12} {verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--campaigns", type=int, default=1000, help="campaigns to generate (default 1000)")
    parser.add_argument("--files", type=int, default=50, help="files to spread them over (default 50)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder and print where it is")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smartcampaign-bench-"))
    try:
        rules = work / "rules"
        size = write_rule_set(rules, args.campaigns, args.files)
        lines = sum(p.read_text(encoding="utf-8").count("\n") for p in rules.rglob("*.campaign"))
        print(f"rule set: {args.campaigns} campaigns in {args.files} files, {lines:,} lines, {size / 1024:,.0f} KiB")
        print(f"folder:   {rules}")
        bytecode = " (PYTHONDONTWRITEBYTECODE: modules without a .pyc are compiled by every process)"
        if not sys.flags.dont_write_bytecode:
            bytecode = ""
        print(f"python:   {sys.version.split()[0]}{bytecode}")
        if hasattr(os, "getloadavg"):
            print(f"machine:  {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (figures are wall time)")
        print()

        lib_cache = work / "cache-library"
        cold = cold_library_run(rules, lib_cache)
        if cold["errors"]:
            print(f"check found {len(cold['errors'])} error(s):")
            for message in cold["errors"][:20]:
                print(f"  {message}")
            return 1
        if cold["campaigns"] != args.campaigns:
            print(f"expected {args.campaigns} campaigns, the loader found {cold['campaigns']}")
            return 1
        warm_all = warm_library_runs(rules, lib_cache, WARM_RUNS)
        warm = min(warm_all, key=lambda run: float(run["load_s"]))
        check_warm = warm_check_runs(rules, lib_cache, WARM_RUNS)

        cli_cold, cli_cached, cli_summary = cli_runs([rules], work / "cache-cli", CLI_RUNS)
        examples = sorted(EXAMPLES.glob("*/rules"))
        example_cold, example_cached, _ = (
            cli_runs(examples, work / "cache-examples", CLI_RUNS) if examples else ([], [], "")
        )

        deep = deep_runs(deep_file(work / "deep", DEEP_LEVELS), work / "cache-deep", CLI_RUNS)

        campaigns = args.campaigns
        whole = f"smartcampaign check, %s (wall, median of {CLI_RUNS})"
        print(f"{'scenario':<{WIDTH}} {'seconds':>9} {'campaigns/s':>13}   {'goal':<12} result")
        print("-" * (WIDTH + 44))
        print(row("load_rule_set, cold (new process, no cache)", cold["load_s"], campaigns, COLD_GOAL_S))
        print(row(f"check, cache warm (best of {len(check_warm)})", min(check_warm), campaigns, CACHED_GOAL_S))
        print(row(f"load_rule_set, AST cache warm (best of {len(warm_all)})", warm["load_s"], campaigns, None))
        print(row(whole % "cold", statistics.median(cli_cold), campaigns, CLI_COLD_GOAL_S))
        print(row(whole % "cached", statistics.median(cli_cached), campaigns, CLI_CACHED_GOAL_S))
        if examples:
            print(f"examples/*/rules ({len(examples)} rule sets, the same command):")
            print(row(whole % "cold", statistics.median(example_cold), None, CLI_COLD_GOAL_S))
            print(row(whole % "cached", statistics.median(example_cached), None, CLI_CACHED_GOAL_S))
        print("bounded input (the same command):")
        print(
            row(
                f"{DEEP_LEVELS:,}-deep nesting refused (median of {CLI_RUNS})",
                statistics.median(deep),
                None,
                DEEP_GOAL_S,
            )
        )
        print()
        print(f"cold process: importing engine.language.loader took {cold['import_s']:.3f} s (not in the cold figure)")
        cached_times = ", ".join(f"{run['load_s']:.3f}" for run in warm_all)
        print(f"cached runs:  {cached_times} s")
        for label, run in (("cold:", cold), ("cached:", warm)):
            if run["checks_s"] is None:
                print(f"{label:<13} (could not time the semantic checks apart)")
                continue
            print(
                f"{label:<13} {run['load_s'] - run['checks_s']:.3f} s reading and parsing (or cache loading), "
                f"{run['checks_s']:.3f} s semantic checks"
            )
        print(f"diagnostics:  {len(cold['errors'])} errors, {len(cold['warnings'])} warnings")
        for message in cold["warnings"][:5]:
            print(f"  {message}")
        print(f"whole runs:   cold {seconds_list(cli_cold)}; cached {seconds_list(cli_cached)}")
        if examples:
            print(f"examples:     cold {seconds_list(example_cold)}; cached {seconds_list(example_cached)}")
        print(f"deep nesting: {seconds_list(deep)}")
        print(f"cli summary:  {cli_summary}")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child_main(sys.argv[2])
    else:
        sys.exit(main())
