"""Benchmark Salesforce API calls per 1,000 flow actions through the engine (P4), against the HTTPS emulator.

A `RunningEmulator` is started in a temporary folder. Each scenario runs twice on the same workload, each time
on an emulator emptied with `reset()` and seeded again through a separate client (seeding is not counted):

- batched: `Interpreter(rule_set, store, BatchingCrm(SalesforceAdapter(settings), store))`, with `flush()` after
  every 1,000 flow actions (and once at the end), which is how the engine is meant to run;
- naive:   `Interpreter(rule_set, store, SalesforceAdapter(settings))`, so the adapter's `execute` is called
  once per flow action (and once more for each Lead to create), the one-call-per-action baseline.

Calls are `adapter.calls`, which counts every HTTP request the adapter makes. Authentication is by session
id, so there is no login request to count; the emulator's own count of data-API calls is checked against it.
Each run is then checked against the emulator's records (members, statuses, Leads). The bench exits with 1
if a workload did not do what it is meant to, since its figure would then mean nothing.

Scenarios, 1,000 flow actions each; every person is observed "added to sfdc campaign Webinar" once:

- P4   persons already in Salesforce (Leads); one smart campaign adds each to "Nurture". Goal: <= 10 calls per
       1,000 flow actions (Marketo's trigger flow steps cost at least one call per person).
- new  the same, but no person is in Salesforce yet, so a Lead is created for each one first (reference figure,
       no goal).
- mix  five smart campaigns, one per Webinar status, 200 persons each: add to "Alpha", add to "Beta", change
       status in "Gamma", remove from "Delta", change status in "Epsilon" (the last three with members seeded).

Run with `.venv/bin/python bench/sfdc_calls.py` from the project root. It takes well under two minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_soql

from engine.crm.outbox import BatchingCrm
from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.language import ast
from engine.language.loader import load_rule_set
from engine.model.settings import SalesforceSettings
from engine.runtime.adapter import CrmAdapter
from engine.runtime.interpreter import Interpreter
from engine.store.store import Person, Store
from engine.sync.programs import program_sync

ACTIONS = 1_000
FLUSH_EVERY = 1_000
GOAL = 10.0
STATUSES = ["Sent", "Responded"]  # what Salesforce gives a new campaign
FLOW_ACTIONS = ("add_to_sfdc_campaign", "change_status_in_sfdc_campaign", "remove_from_sfdc_campaign")

ADD_TO_NURTURE = """
campaign "Webinar to Nurture" {
    trigger added to sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
    }
}
"""

MIX_STATUSES = ["Registered", "Attended", "No Show", "Cancelled", "Waitlisted"]
MIX = """
campaign "Registered to Alpha" {
    trigger added to sfdc campaign "Webinar" with status "Registered"
    flow { add to sfdc campaign "Alpha" with status "Sent" }
}
campaign "Attended to Beta" {
    trigger added to sfdc campaign "Webinar" with status "Attended"
    flow { add to sfdc campaign "Beta" with status "Responded" }
}
campaign "No Show responds in Gamma" {
    trigger added to sfdc campaign "Webinar" with status "No Show"
    flow { change status in sfdc campaign "Gamma" to "Responded" }
}
campaign "Cancelled leave Delta" {
    trigger added to sfdc campaign "Webinar" with status "Cancelled"
    flow { remove from sfdc campaign "Delta" }
}
campaign "Waitlisted respond in Epsilon" {
    trigger added to sfdc campaign "Webinar" with status "Waitlisted"
    flow { change status in sfdc campaign "Epsilon" to "Responded" }
}
"""


class ActionCounter:
    """An interpreter recorder that counts flow actions (add / change status / remove) and their outcomes."""

    def __init__(self) -> None:
        self.actions = 0
        self.not_done: list[str] = []
        self.errors: list[str] = []

    def run_started(self, run_id: int, campaign: str, person: Person, trigger: dict[str, Any], at: float) -> None:
        pass

    def step(self, run_id: int, step: dict[str, Any]) -> None:
        if step.get("action") in FLOW_ACTIONS:
            self.actions += 1
            if step.get("outcome") != "done":
                self.not_done.append(f"{step.get('action')} {step.get('outcome')}: {step.get('detail')}")

    def error(self, message: str, at: float) -> None:
        self.errors.append(message)


class Org:
    """Seeding and counting on the emulator, through a client of its own (not counted)."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self.emulator = emulator
        self.sf: Salesforce = emulator.client()

    def collection(self, sobject: str, records: Sequence[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(records), 200):
            chunk = [{"attributes": {"type": sobject}, **fields} for fields in records[start : start + 200]]
            answer = self.sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": chunk})
            if not all(item["success"] for item in answer):
                raise RuntimeError(f"seeding {sobject} failed: {answer}")
            ids.extend(str(item["id"]) for item in answer)
        return ids

    def count(self, soql: str, **params: Any) -> int:
        return int(self.sf.query(format_soql(soql, **params))["totalSize"])


@dataclass
class World:
    """What a scenario seeded: the mirror, the Salesforce ids, the events, and what must hold afterwards."""

    store: Store
    campaign_ids: dict[str, str]
    events: list[tuple[str, str]]  # (email, Webinar status)
    checks: list[tuple[str, str, dict[str, Any], int]] = field(default_factory=list)  # (what, soql, params, n)


def seed_world(org: Org, campaigns: Sequence[str], persons: int, in_salesforce: bool) -> World:
    store = Store.open()
    ids: dict[str, str] = {}
    for name in ("Webinar", *campaigns):
        ids[name] = str(org.sf.Campaign.create({"Name": name})["id"])
        mirror_statuses = [*STATUSES, *MIX_STATUSES] if name == "Webinar" else STATUSES
        store.add_campaign(name, ids[name], mirror_statuses)
    emails = [f"person{i:04d}@example.com" for i in range(persons)]
    leads: list[str | None] = [None] * persons
    if in_salesforce:
        leads = list(org.collection("Lead", [{"Email": e, "LastName": "Seeded", "Company": "Acme"} for e in emails]))
    for email, lead in zip(emails, leads, strict=True):
        store.add_person(email, lead, "Lead" if lead else None)
    store.commit()
    return World(store, ids, [(email, "Sent") for email in emails])


def scenario_p4(org: Org) -> World:
    world = seed_world(org, ["Nurture"], ACTIONS, in_salesforce=True)
    world.checks += [
        (
            "Nurture members",
            "SELECT COUNT() FROM CampaignMember WHERE CampaignId = {c}",
            {"c": world.campaign_ids["Nurture"]},
            ACTIONS,
        ),
        ("Leads", "SELECT COUNT() FROM Lead", {}, ACTIONS),
    ]
    return world


def scenario_new_leads(org: Org) -> World:
    world = seed_world(org, ["Nurture"], ACTIONS, in_salesforce=False)
    world.checks += [
        (
            "Nurture members",
            "SELECT COUNT() FROM CampaignMember WHERE CampaignId = {c}",
            {"c": world.campaign_ids["Nurture"]},
            ACTIONS,
        ),
        ("Leads made", "SELECT COUNT() FROM Lead", {}, ACTIONS),
    ]
    return world


def scenario_mix(org: Org) -> World:
    targets = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]
    world = seed_world(org, targets, ACTIONS, in_salesforce=True)
    group = ACTIONS // len(MIX_STATUSES)
    world.events = [(email, MIX_STATUSES[index % len(MIX_STATUSES)]) for index, (email, _) in enumerate(world.events)]
    # Gamma, Delta and Epsilon already have as members the persons whose flows change or remove them
    for target, status in (("Gamma", "No Show"), ("Delta", "Cancelled"), ("Epsilon", "Waitlisted")):
        members = [email for email, webinar in world.events if webinar == status]
        persons = [world.store.person(email) for email in members]
        campaign = world.store.campaign_by_name(target)
        assert campaign is not None and all(persons)
        org.collection(
            "CampaignMember",
            [{"CampaignId": world.campaign_ids[target], "LeadId": p.sfdc_id, "Status": "Sent"} for p in persons if p],
        )
        for person in persons:
            assert person is not None
            world.store.set_membership(person.id, campaign.id, "Sent", 0.0)
    world.store.commit()
    members = "SELECT COUNT() FROM CampaignMember WHERE CampaignId = {c}"
    with_status = members + " AND Status = {s}"
    ids = world.campaign_ids
    world.checks += [
        ("Alpha members (added, Sent)", with_status, {"c": ids["Alpha"], "s": "Sent"}, group),
        ("Beta members (added, Responded)", with_status, {"c": ids["Beta"], "s": "Responded"}, group),
        ("Gamma members Responded", with_status, {"c": ids["Gamma"], "s": "Responded"}, group),
        ("Delta members (all removed)", members, {"c": ids["Delta"]}, 0),
        ("Epsilon members Responded", with_status, {"c": ids["Epsilon"], "s": "Responded"}, group),
    ]
    return world


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    rules: str
    build: Callable[[Org], World]
    goal: float | None


SCENARIOS = [
    Scenario("P4", "add to one campaign, persons in Salesforce", ADD_TO_NURTURE, scenario_p4, GOAL),
    Scenario("new", "each person made a Lead first (reference)", ADD_TO_NURTURE, scenario_new_leads, None),
    Scenario("mix", "add / change / remove across 5 campaigns", MIX, scenario_mix, None),
]


@dataclass
class Run:
    calls: int = 0
    emulator_calls: int = 0
    actions: int = 0
    seconds: float = 0.0
    endpoints: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def per_thousand(self) -> float:
        return self.calls * 1000 / self.actions if self.actions else float("nan")


def load_rules(folder: Path, text: str) -> ast.RuleSet:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.campaign").write_text(text, encoding="utf-8")
    loaded = load_rule_set([folder], use_cache=False)
    if not loaded.ok:
        raise SystemExit(f"rule set does not load: {loaded.errors}")
    return loaded.rule_set


def run(emulator: RunningEmulator, scenario: Scenario, rule_set: ast.RuleSet, batched: bool) -> Run:
    emulator.reset()
    org = Org(emulator)
    world = scenario.build(org)
    settings = SalesforceSettings(
        instance_url=emulator.instance_url, session_id=emulator.token, ca_file=emulator.ca_file
    )
    adapter = SalesforceAdapter(settings)
    counter = ActionCounter()
    crm: CrmAdapter = BatchingCrm(adapter, world.store) if batched else adapter
    interpreter = Interpreter(rule_set, world.store, crm, recorder=counter, program_sync=program_sync())
    webinar = world.store.campaign_by_name("Webinar")
    assert webinar is not None
    result = Run()
    before = emulator.stats()["calls"]

    started = time.perf_counter()
    flushed_at = 0
    for number, (email, status) in enumerate(world.events, start=1):
        person = world.store.person(email)
        assert person is not None
        interpreter.set_clock(float(number))
        interpreter.observe_membership(person, webinar, status, float(number))
        interpreter.drain()
        if isinstance(crm, BatchingCrm) and counter.actions - flushed_at >= FLUSH_EVERY:
            flushed_at = counter.actions
            report = crm.flush()
            if report.failed or report.deferred:
                result.problems.append(f"flush: {report.failed} failed, {report.deferred} deferred")
    if isinstance(crm, BatchingCrm):
        report = crm.flush()
        if report.failed or report.deferred:
            result.problems.append(f"flush: {report.failed} failed, {report.deferred} deferred")
    world.store.commit()
    result.seconds = time.perf_counter() - started

    after = emulator.stats()["calls"]
    result.endpoints = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    result.emulator_calls = sum(result.endpoints.values())
    result.calls = adapter.calls
    result.actions = counter.actions
    if counter.actions != ACTIONS:
        result.problems.append(f"{counter.actions} flow actions instead of {ACTIONS}")
    if counter.not_done:
        result.problems.append(f"{len(counter.not_done)} actions not done, e.g. {counter.not_done[0]}")
    if counter.errors:
        result.problems.append(f"{len(counter.errors)} errors, e.g. {counter.errors[0]}")
    if result.emulator_calls != result.calls:
        result.problems.append(f"the adapter counted {result.calls} calls, the emulator {result.emulator_calls}")
    for what, soql, params, wanted in world.checks:
        found = org.count(soql, **params)
        if found != wanted:
            result.problems.append(f"{what}: {found} in Salesforce, {wanted} expected")
    world.store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.parse_args()
    started = time.perf_counter()
    results: list[tuple[Scenario, Run, Run]] = []
    with (
        tempfile.TemporaryDirectory(prefix="sfdc-calls-") as work,
        RunningEmulator(Path(work) / "emulator") as emulator,
    ):
        print(f"python {sys.version.split()[0]}; emulator at {emulator.instance_url} (HTTPS)", end="")
        print(f", API v{emulator.api_version}")
        print(f"{ACTIONS:,} flow actions per scenario; batched runs flush every {FLUSH_EVERY:,} actions")
        print()
        for scenario in SCENARIOS:
            rule_set = load_rules(Path(work) / scenario.key, scenario.rules)
            batched = run(emulator, scenario, rule_set, batched=True)
            naive = run(emulator, scenario, rule_set, batched=False)
            results.append((scenario, batched, naive))

    header = (
        f"{'scenario':<48} {'actions':>7} {'batched':>8} {'/1,000':>7} {'naive':>7} {'/1,000':>8} "
        f"{'naive/batched':>13}   {'goal':<6} result"
    )
    print(header)
    print("-" * len(header))
    problems = 0
    for scenario, batched, naive in results:
        ratio = naive.calls / batched.calls if batched.calls else float("inf")
        goal = f"<= {scenario.goal:g}" if scenario.goal is not None else "-"
        verdict = "-" if scenario.goal is None else ("met" if batched.per_thousand <= scenario.goal else "NOT MET")
        print(
            f"{scenario.key + '  ' + scenario.label:<48} {batched.actions:>7,} {batched.calls:>8,} "
            f"{batched.per_thousand:>7.1f} {naive.calls:>7,} {naive.per_thousand:>8.1f} {ratio:>12.1f}x   "
            f"{goal:<6} {verdict}"
        )
    print()
    print("calls by endpoint (batched | naive), wall time of the engine run:")
    for scenario, batched, naive in results:
        print(
            f"  {scenario.key:<4} {_endpoints(batched.endpoints)}  ({batched.seconds:.2f} s)  |  "
            f"{_endpoints(naive.endpoints)}  ({naive.seconds:.2f} s)"
        )
        for mode, outcome in (("batched", batched), ("naive", naive)):
            for problem in outcome.problems:
                problems += 1
                print(f"    WORKLOAD CHECK ({mode}): {problem}")
    print()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if problems else 0


def _endpoints(endpoints: dict[str, int]) -> str:
    short = {"GET query": "query", "POST composite/sobjects": "POST", "PATCH composite/sobjects": "PATCH"}
    short["DELETE composite/sobjects"] = "DELETE"
    return ", ".join(f"{short.get(key, key)} {count:,}" for key, count in sorted(endpoints.items()))


if __name__ == "__main__":
    sys.exit(main())
