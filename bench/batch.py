"""Benchmark batch campaigns: who a schedule's run selects, and the run itself, on a SQLite file store.

A store of 100,000 persons (all Leads in Salesforce) is seeded once (not timed) into a SQLite file with a
realistic mirror: 20 SFDC campaigns "Segment 00".."Segment 19", each person a member of 1 to 4 of them, the
campaigns drawn with Zipf weights, 1/rank (a few big lists, many small ones), and each membership with one of 4
statuses, from a fixed random seed; plus "Nurture", where the flow adds people (empty at the start). The rule
set is one batch campaign, `schedule at 2026-11-02T09:00`, with 3 filter lines:

    filter member of sfdc campaign "Segment 00" with status in ("Registered", "Attended")
    filter not member of sfdc campaign "Segment 19"
    filter member of sfdc campaign "Segment 02" or member of sfdc campaign "Segment 03"

and a flow of 3 steps (an add to Nurture, a choice on a membership, a status change in one branch).

Each repetition runs in a fresh Python process on a fresh copy of the seeded file and times
(perf_counter, wall):

- B1 selection: `engine.runtime.batch.select_batch(interp, campaign, slot)` (filters, qualification, email
  order), the campaign's run at its slot; goal < 5 s;
- B2 the whole batch run: `engine.runtime.batch.run_batch(interp, campaign, slot)` over the same store, its
  own selection included, every selected person through the flow on the local org with the store's commits;
  figure: persons run per second.

Figures are medians of 3 repetitions. Run with `.venv/bin/python bench/batch.py` from the project root
(`--quick`: 10,000 persons, a smoke run well under a minute). Standard library and the project only. Prints
figures beside their goals, never asserts timings; it exits non-zero only if a workload did not do what it is
meant to (the selection differs from the one counted in plain Python over the seeded mirror, a person ran
twice, or the flow's effect is missing), since then its figure would be meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHILD_FLAG = "--child"

PERSONS = 100_000
QUICK_PERSONS = 10_000
SEGMENTS = 20
STATUSES = ("Sent", "Registered", "Attended", "Responded")
PICKED_STATUSES = ("Registered", "Attended")
RUNS = 3
SEED = 12
START = "2026-11-01T00:00:00+00:00"
SLOT = "2026-11-02T09:00"

SELECT_GOAL_S = 5.0  # B1, under

RULES = f"""campaign "Weekly sweep" {{
    description "Segment 00 attendees not in Segment 19, in Segment 02 or 03"
    schedule at {SLOT}
    filter member of sfdc campaign "Segment 00" with status in ({", ".join(f'"{s}"' for s in PICKED_STATUSES)})
    filter not member of sfdc campaign "Segment 19"
    filter member of sfdc campaign "Segment 02" or member of sfdc campaign "Segment 03"
    flow {{
        add to sfdc campaign "Nurture" with status "Sent"
        if member of sfdc campaign "Segment 04" {{
            change status in sfdc campaign "Nurture" to "Responded"
        }}
    }}
}}
"""


def segment(n: int) -> str:
    return f"Segment {n:02d}"


def mirror(persons: int) -> Iterator[tuple[int, int, str]]:
    """(person id 1.., segment number, status): 1 to 4 distinct segments a person, Zipf weights."""
    rng = random.Random(SEED)
    weights = [1.0 / (n + 1) for n in range(SEGMENTS)]
    for person_id in range(1, persons + 1):
        chosen: set[int] = set()
        want = rng.randint(1, 4)
        while len(chosen) < want:
            chosen.add(rng.choices(range(SEGMENTS), weights)[0])
        for n in sorted(chosen):
            yield person_id, n, rng.choice(STATUSES)


def expected_selection(persons: int) -> tuple[int, int]:
    """How many persons pass the 3 filter lines, counted in plain Python; and how many of them are in Segment 04."""
    by_person: dict[int, dict[int, str]] = {}
    for person_id, n, status in mirror(persons):
        by_person.setdefault(person_id, {})[n] = status
    passing = [m for m in by_person.values() if m.get(0) in PICKED_STATUSES and 19 not in m and (2 in m or 3 in m)]
    return len(passing), sum(1 for m in passing if 4 in m)


def seed(db: str, persons: int) -> int:
    """The catalog, the persons and their memberships, straight into a new SQLite store in one transaction."""
    from engine.store.store import Store

    store = Store.open("sqlite:///" + db)
    try:
        names = [segment(n) for n in range(SEGMENTS)] + ["Nurture"]
        ids = [store.add_campaign(name, f"701{n + 1:012d}AAA", STATUSES) for n, name in enumerate(names)]
        cursor = store._cursor
        cursor.executemany(
            "INSERT INTO persons (id, email, display_email, sfdc_id, sfdc_type) VALUES (?, ?, ?, ?, ?)",
            (
                (n, f"p{n:06d}@example.com", f"p{n:06d}@example.com", f"00Q{n:012d}AAA", "Lead")
                for n in range(1, persons + 1)
            ),
        )
        start = 1_700_000_000.0
        rows = [(pid, ids[n], status, start, start) for pid, n, status in mirror(persons)]
        cursor.executemany(
            "INSERT INTO memberships (person_id, campaign_id, status, added_at, changed_at) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        store.commit()
        return len(rows)
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ one repetition (child)


def child_main(spec_json: str) -> None:
    from datetime import datetime

    from engine.crm.local import LocalOrg
    from engine.language.loader import load_rule_set
    from engine.runtime import calendar
    from engine.runtime.batch import run_batch, select_batch
    from engine.runtime.interpreter import Interpreter, keep_out_of_gc
    from engine.store.store import Store
    from engine.sync.programs import program_sync

    spec = json.loads(spec_json)
    loaded = load_rule_set([spec["rules"]])
    if not loaded.ok:
        raise SystemExit("\n".join(f"{d.file}:{d.line}:{d.column}: {d.message}" for d in loaded.errors[:10]))
    rule_set = loaded.rule_set
    campaign = rule_set.campaign("Weekly sweep")
    assert campaign is not None and campaign.schedule is not None
    store = Store.open("sqlite:///" + spec["db"])
    keep_out_of_gc()
    interp = Interpreter(rule_set, store, LocalOrg(store), program_sync=program_sync())
    begin = datetime.fromisoformat(START).timestamp()
    interp.set_clock(begin)
    interp.programs.link_all()
    slot = calendar.next_slot(campaign.schedule, rule_set.zone_of(campaign), begin)
    assert slot is not None

    t0 = time.perf_counter()
    selected = select_batch(interp, campaign, slot)
    select_s = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    outcome = run_batch(interp, campaign, slot)
    store.commit()
    run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0

    nurture = store.campaign_by_name("Nurture")
    assert nurture is not None
    statuses = [status for _, status in store.campaign_members(nurture.id)]
    runs = store.fetchone("SELECT COUNT(*) FROM runs")[0]
    distinct = store.fetchone("SELECT COUNT(DISTINCT person_id) FROM runs")[0]
    errors = store.fetchone("SELECT COUNT(*) FROM errors")[0]
    store.close()
    print(
        json.dumps(
            {
                "select_s": select_s,
                "selected": len(selected),
                "run_s": run_s,
                "run_cpu_s": run_cpu,
                "ran": outcome.ran,
                "skipped": outcome.skipped,
                "runs": runs,
                "distinct_persons": distinct,
                "nurture": len(statuses),
                "responded": statuses.count("Responded"),
                "errors": errors,
            }
        )
    )


# ------------------------------------------------------------------------------------------ orchestration


def spawn(work: Path, template: str, rules: str, number: int) -> dict[str, Any]:
    """One repetition in a fresh process on a fresh copy of the seeded store."""
    db = str(work / f"run{number}.db")
    shutil.copyfile(template, db)
    # a cache folder of its own: a parse cache written by an older engine (the AST changed since) is never read
    cache = tempfile.mkdtemp(prefix="cache-", dir=work)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, json.dumps({"db": db, "rules": rules})],
        env={**os.environ, "SMARTCAMPAIGN_CACHE_DIR": cache},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"repetition {number} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    rate = result["ran"] / result["run_s"] if result["run_s"] > 0 else float("inf")
    print(
        f"  run {number}: selection {result['select_s']:6.3f} s ({result['selected']:,} persons); "
        f"batch run {result['run_s']:6.2f} s wall, {result['run_cpu_s']:6.2f} s cpu = {rate:,.0f} persons/s",
        flush=True,
    )
    return result


def problems_of(result: dict[str, Any], want: int, want_responded: int) -> list[str]:
    out = []
    if result["selected"] != want:
        out.append(f"selected {result['selected']:,}, the mirror has {want:,} passing the filters")
    if result["ran"] != want or result["runs"] != want or result["distinct_persons"] != want:
        out.append(
            f"{result['ran']:,} ran, {result['runs']:,} runs of {result['distinct_persons']:,} persons; "
            f"expected {want:,} each"
        )
    if result["nurture"] != want or result["responded"] != want_responded:
        out.append(
            f"Nurture has {result['nurture']:,} members ({result['responded']:,} Responded); "
            f"expected {want:,} ({want_responded:,})"
        )
    if result["errors"]:
        out.append(f"{result['errors']} errors recorded")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PERSONS:,} persons (smoke run)")
    parser.add_argument("--persons", type=int, help=f"persons in the store (default {PERSONS:,})")
    args = parser.parse_args()
    persons = args.persons or (QUICK_PERSONS if args.quick else PERSONS)
    if persons < 1:
        parser.error("--persons must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="smartcampaign-batch-"))
    wall = time.perf_counter()
    try:
        rules = work / "rules"
        rules.mkdir()
        (rules / "batch.campaign").write_text(RULES, encoding="utf-8")
        template = str(work / "template.db")
        started = time.perf_counter()
        memberships = seed(template, persons)
        seed_s = time.perf_counter() - started
        want, want_responded = expected_selection(persons)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, stores in {work}")
        print(
            f"{persons:,} persons, {memberships:,} memberships in {SEGMENTS} SFDC campaigns "
            f"(seeded in {seed_s:.1f} s, not timed); {want:,} persons pass the 3 filter lines"
        )
        print()
        results = [spawn(work, template, str(rules), n) for n in range(1, RUNS + 1)]
        select_s = statistics.median(r["select_s"] for r in results)
        run_s = statistics.median(r["run_s"] for r in results)
        rate = statistics.median(r["ran"] / r["run_s"] if r["run_s"] > 0 else float("inf") for r in results)
        cpu_rate = statistics.median(r["ran"] / r["run_cpu_s"] if r["run_cpu_s"] > 0 else float("inf") for r in results)
        problems = [p for r in results for p in problems_of(r, want, want_responded)]

        print()
        print(f"{'figure (median of ' + str(RUNS) + ')':<58} {'measured':>16}   {'goal':<10} result")
        print("-" * 98)
        verdict = "INVALID" if problems else ("PASS" if select_s < SELECT_GOAL_S else "MISS")
        print(f"{f'B1 selection over {persons:,} persons (select_batch)':<58} {select_s:>14.3f} s   "
              f"{f'< {SELECT_GOAL_S:.0f} s':<10} {verdict}")  # fmt: skip
        print(f"{f'B2 batch run, {want:,} persons (run_batch, wall)':<58} {rate:>8,.0f} persons/s   "
              f"{'-':<10} {'INVALID' if problems else ''}")  # fmt: skip
        print(f"{'   the same by CPU time':<58} {cpu_rate:>8,.0f} persons/s")
        print(f"{'   the whole run (selection included)':<58} {run_s:>14.2f} s")
        print()
        for problem in problems:
            print(f"WORKLOAD CHECK: {problem}")
        if sum(r["run_cpu_s"] for r in results) < 0.85 * sum(r["run_s"] for r in results):
            print("note: CPU time < 85% of wall time in the batch runs: the machine was busy or waiting on disk")
        print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"total wall time {time.perf_counter() - wall:.0f} s")
        return 1 if problems else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child_main(sys.argv[2])
    else:
        sys.exit(main())
