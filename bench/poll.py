"""Benchmark P5: one change-poller cycle over 100,000 changed CampaignMembers, against the HTTPS emulator.

Goal: at most 55 API calls and under 30 s for the cycle.

The emulator runs in its own process (as Salesforce would be another machine: its SOQL and JSON work is not
the poller's), on a SQLite data file in a temporary folder. Seeding is not timed: 100 Campaigns (statuses
Sent, Registered, Attended, Responded), 100,000 Leads and 100,000 CampaignMembers (lead i in campaign i mod 100,
status "Sent"), all through sObject Collections (200 records a call) over HTTPS.

Scenarios, each ONE `Poller.poll_once` (perf_counter around it; the API calls are the adapter's own count):

- P5 first cycle: an empty mirror store (a SQLite file): the first cycle is a full sync, so 100,000 members
  are new, 100,000 persons are created (from `Lead.Email` read in the same rows) and 100 campaigns added.
- P5 incremental (extra): then every member's status is changed in Salesforce (not timed), the emulator's
  clock moves on a minute, and one more cycle reads the 100,000 changed members since its cursor: 100,000
  status changes, plus getDeleted and the campaign refresh.

Run with `.venv/bin/python bench/poll.py` from the project root (`--members 10000` for a quick run,
`--no-incremental` to skip the second scenario). Standard library and the project only. Prints figures,
never asserts timings; exits non-zero only if a cycle did not see what it should have (then its figure would
be meaningless).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "bench-poll-token"
CAMPAIGNS = 100
STATUSES = ("Sent", "Registered", "Attended", "Responded")
CALL_GOAL = 55
SECONDS_GOAL = 30.0
BATCH = 200


def serve(folder: str, ready: Any, stop: Any) -> None:
    """The emulator process: starts, reports (port, CA file), serves until told to stop."""
    from engine.emulator.testing import RunningEmulator

    with RunningEmulator(folder, token=TOKEN, quota=10_000_000) as org:
        ready.put((org.instance_url, org.ca_file))
        stop.wait()


def post(sf: Any, records: list[dict[str, Any]], method: str = "POST") -> list[str]:
    ids: list[str] = []
    for start in range(0, len(records), BATCH):
        answer = sf.restful(
            "composite/sobjects", method=method, json={"allOrNone": True, "records": records[start : start + BATCH]}
        )
        for item in answer:
            if not item.get("success"):
                raise SystemExit(f"seeding failed: {item}")
            ids.append(item["id"])
    return ids


def seed(sf: Any, members: int) -> list[str]:
    """Campaigns with four statuses, `members` Leads, one membership each. Returns the member ids."""
    campaigns = post(sf, [{"attributes": {"type": "Campaign"}, "Name": f"Bench {n:03d}"} for n in range(CAMPAIGNS)])
    extra = [
        {
            "attributes": {"type": "CampaignMemberStatus"},
            "CampaignId": cid,
            "Label": label,
            "SortOrder": order,
            "HasResponded": label == "Attended",
        }
        for cid in campaigns
        for order, label in ((3, "Registered"), (4, "Attended"))
    ]
    post(sf, extra)
    leads = post(
        sf,
        [
            {
                "attributes": {"type": "Lead"},
                "LastName": f"L{n:06d}",
                "Company": "Bench",
                "Email": f"p{n:06d}@bench.example",
            }
            for n in range(members)
        ],
    )
    return post(
        sf,
        [
            {"attributes": {"type": "CampaignMember"}, "CampaignId": campaigns[n % CAMPAIGNS], "LeadId": lead}
            for n, lead in enumerate(leads)
        ],
    )


def one_cycle(poller: Any) -> Any:
    started = time.perf_counter()
    report = poller.poll_once()
    report.seconds = time.perf_counter() - started
    return report


def verdict(report: Any) -> str:
    calls = "ok" if report.api_calls <= CALL_GOAL else "MISSED"
    seconds = "ok" if report.seconds < SECONDS_GOAL else "MISSED"
    return (
        f"{report.api_calls} API calls (goal <= {CALL_GOAL}: {calls}), "
        f"{report.seconds:.2f} s (goal < {SECONDS_GOAL:g} s: {seconds})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON too")
    args = parser.parse_args()

    from simple_salesforce.api import Salesforce

    from engine.crm.salesforce import SalesforceAdapter
    from engine.model.settings import SalesforceSettings
    from engine.store.store import Store
    from engine.sync.poller import Poller

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Queue(), context.Event()
        process = context.Process(target=serve, args=(str(Path(tmp) / "sf"), ready, stop), daemon=True)
        process.start()
        try:
            instance_url, ca_file = ready.get(timeout=60)
            import requests

            session = requests.Session()
            session.verify, session.trust_env = ca_file, False
            sf = Salesforce(instance_url=instance_url, session_id=TOKEN, session=session, version="59.0")
            started = time.perf_counter()
            member_ids = seed(sf, args.members)
            took = time.perf_counter() - started
            print(f"seeded {CAMPAIGNS} campaigns, {args.members:,} leads and members in {took:.1f} s (not timed)")

            settings = SalesforceSettings(instance_url=instance_url, session_id=TOKEN, ca_file=ca_file)  # type: ignore[arg-type]
            adapter = SalesforceAdapter(settings)
            store = Store.open(f"sqlite:///{Path(tmp) / 'mirror.db'}")
            poller = Poller(adapter, store)

            first = one_cycle(poller)
            print(f"P5 first cycle (empty mirror, full sync of {first.members_seen:,} members): {verdict(first)}")
            print(
                f"   added {first.added:,}, persons created {first.persons_created:,}, "
                f"campaigns added {first.campaigns_added}, resync: {first.resync_reason}"
            )
            if first.added != args.members or first.persons_created != args.members:
                failures.append(f"first cycle: expected {args.members} additions, got {first.added}")
            if args.json:
                print(json.dumps(first.to_json(), indent=2))

            if not args.no_incremental:
                started = time.perf_counter()
                post(
                    sf,
                    [
                        {"attributes": {"type": "CampaignMember"}, "id": mid, "Status": "Registered"}
                        for mid in member_ids
                    ],
                    method="PATCH",
                )
                session.post(
                    f"{instance_url}/_emulator/clock",
                    json={"advance_s": 61},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                ).raise_for_status()
                print(f"changed {len(member_ids):,} statuses in {time.perf_counter() - started:.1f} s (not timed)")
                second = one_cycle(poller)
                print(f"P5 incremental cycle ({second.members_seen:,} changed members): {verdict(second)}")
                print(
                    f"   status changes {second.status_changed:,}, duplicates skipped {second.duplicates_skipped:,}, "
                    f"resync: {second.resync}"
                )
                if second.status_changed != args.members or second.resync:
                    failures.append(
                        f"incremental cycle: expected {args.members} status changes, got {second.status_changed}"
                    )
                if args.json:
                    print(json.dumps(second.to_json(), indent=2))
            store.close()
        finally:
            stop.set()
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
