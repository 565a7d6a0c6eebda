"""Program to SFDC campaign sync against the Salesforce emulator over HTTPS (LANGUAGE.md "Programs and channels").

Salesforce is arranged and inspected with a plain simple-salesforce client; the engine runs `Poller` cycles with an
interpreter on the same store, writing to Salesforce either through the `SalesforceAdapter` directly or through a
`BatchingCrm` flushed after each step. Assertions are on the emulator's records and on the store's programs.

Most cases start "warm": one cycle without rules has mirrored Salesforce already (as `smartcampaign sync` without
`--rules` would have), then the rules' first cycle links the program. The cold start, where the first cycle ever
also links (after the members are mirrored, and firing nothing), is covered by its own tests.

Conflict rule (a person removed on one side while changed on the other in the same cycle): the engine applies
changes in the order it observes them (the Salesforce changes of one poll cycle in SystemModstamp order, program
events in arrival order) and mirrors each at once, so **the later observation wins and both sides end equal**.
A program change observed before the poll that reads a deletion from Salesforce loses to it (not a member on
either side); a deletion read before a program change loses to the change (member with the new status on both
sides). A change made in Salesforce to a member that the engine then removes because of a program change is never
observed at all (the record is gone): not a member on either side.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from simple_salesforce.api import Salesforce
from sync_helpers import adapter_for, lead, member, settings_file

from engine.cli.salesforce import sync_command
from engine.crm.outbox import BatchingCrm
from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.language.loader import load_rule_set
from engine.runtime import adapter as p
from engine.runtime.adapter import CrmAdapter
from engine.runtime.interpreter import Interpreter
from engine.store.store import Store
from engine.sync.poller import Poller, PollReport
from engine.sync.programs import program_sync

PROGRAM = "Q4 Webinar"

# Declared out of step order on purpose: the campaign's default is the lowest step, not the first declared.
RULES = """
channel "Live Webinar" {
    status "Registered" step 20
    status "Invited" step 10
    status "No Show" step 30
    status "Attended" step 30 success
    status "Attended On-demand" step 40 success
}

program "Q4 Webinar" {
    channel "Live Webinar"
    sync with sfdc campaign "Q4 Webinar"
    cost 2026-10 5000 "Venue deposit"
    cost 2026-11 1200
}

program "Follow-up" { channel "Live Webinar" }

campaign "Watch" {
    trigger status changed in program "Q4 Webinar"
    trigger added to sfdc campaign "Q4 Webinar"
    trigger status changed in sfdc campaign "Q4 Webinar"
    trigger removed from sfdc campaign "Q4 Webinar"
    qualify every time
    flow { change program status in program "Follow-up" to "Invited" }
}
"""
# (label, IsDefault, HasResponded) by SortOrder: what an empty campaign is made into
CHANNEL_STATUSES = [
    ("Invited", True, False),
    ("Registered", False, False),
    ("No Show", False, False),
    ("Attended", False, True),
    ("Attended On-demand", False, True),
]
MISMATCH = (
    'program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar": statuses only in the program: '
    "Invited, Registered, No Show, Attended, Attended On-demand; only in the campaign: Sent, Responded. "
    "Rename or remove statuses so both sides match."
)


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


# ---------------------------------------------------------------------------------------------- Salesforce side
def matching_campaign(sf: Salesforce, name: str = PROGRAM) -> str:
    """A campaign whose member statuses are exactly the channel's (Salesforce's Sent and Responded removed)."""
    campaign_id = str(sf.Campaign.create({"Name": name})["id"])
    builtin = sf.query(f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}'")["records"]
    for order, (label, is_default, responded) in enumerate(CHANNEL_STATUSES, start=10):
        sf.CampaignMemberStatus.create(
            {
                "CampaignId": campaign_id,
                "Label": label,
                "SortOrder": order,
                "IsDefault": is_default,
                "HasResponded": responded,
            }
        )
    for row in builtin:
        sf.CampaignMemberStatus.delete(row["Id"])
    return campaign_id


def plain_campaign(sf: Salesforce, name: str = PROGRAM, **fields: Any) -> str:
    """A new campaign as Salesforce makes it: "Sent" (the default) and "Responded"."""
    return str(sf.Campaign.create({"Name": name, **fields})["id"])


def sf_statuses(sf: Salesforce, campaign_id: str) -> list[tuple[str, bool, bool]]:
    rows = sf.query_all(
        "SELECT Label, IsDefault, HasResponded, SortOrder FROM CampaignMemberStatus "
        f"WHERE CampaignId = '{campaign_id}' ORDER BY SortOrder"
    )["records"]
    return [(row["Label"], row["IsDefault"], row["HasResponded"]) for row in rows]


def sf_members(sf: Salesforce, campaign_id: str) -> dict[str, str]:
    """email -> status of the campaign's members in Salesforce."""
    rows = sf.query_all(
        f"SELECT Status, Lead.Email, Contact.Email FROM CampaignMember WHERE CampaignId = '{campaign_id}'"
    )["records"]
    out: dict[str, str] = {}
    for row in rows:
        person = row.get("Lead") or row.get("Contact")
        out[str(person["Email"]).lower()] = str(row["Status"])
    return out


def sf_member_id(sf: Salesforce, campaign_id: str, email: str) -> str:
    rows = sf.query_all(f"SELECT Id FROM CampaignMember WHERE CampaignId = '{campaign_id}' AND Lead.Email = '{email}'")[
        "records"
    ]
    assert len(rows) == 1, rows
    return str(rows[0]["Id"])


def sf_fields(sf: Salesforce, campaign_id: str) -> tuple[Any, Any]:
    row = sf.Campaign.get(campaign_id)
    return row["Type"], row["ActualCost"]


def sf_leads(sf: Salesforce) -> dict[str, tuple[Any, Any, Any]]:
    rows = sf.query_all("SELECT Email, FirstName, LastName, Company FROM Lead")["records"]
    return {str(row["Email"]).lower(): (row["FirstName"], row["LastName"], row["Company"]) for row in rows}


# ---------------------------------------------------------------------------------------------- engine side
def program_members(store: Store, name: str = PROGRAM) -> dict[str, str]:
    return {
        store.person_by_id(pid).email.lower(): status for pid, status in store.program_members(store.program_id(name))
    }


def set_program(store: Store, members: dict[str, str], names: dict[str, dict[str, str]] | None = None) -> None:
    """Program members the engine already has (persons created when new, with `names` by email)."""
    pid = store.program_id(PROGRAM)
    for email, status in members.items():
        person = store.person(email) or store.add_person(email, **(names or {}).get(email, {}))
        store.set_program_status(person.id, pid, status, 0.0)
    store.commit()


def watch_runs(store: Store) -> list[tuple[str, str, str | None, str | None, str]]:
    """(email, trigger type, previous, status, origin) of every run of "Watch", in order."""
    out = []
    for person_id, trigger in store.fetchall(
        "SELECT person_id, trigger FROM runs WHERE campaign = 'Watch' ORDER BY id"
    ):
        data = json.loads(trigger)
        out.append(
            (
                store.person_by_id(person_id).email.lower(),
                data["type"],
                data.get("previous_status"),
                data.get("status"),
                data["origin"],
            )
        )
    return out


def logged_errors(store: Store) -> list[str]:
    return [row[0] for row in store.fetchall("SELECT message FROM errors ORDER BY id")]


@dataclass
class Engine:
    """The engine on one store: a poller on the adapter, an interpreter writing through `crm`."""

    store: Store
    adapter: SalesforceAdapter
    crm: CrmAdapter
    interp: Interpreter

    def poll(self) -> PollReport:
        report = Poller(self.adapter, self.store, self.interp).poll_once()
        self.flush()
        return report

    def flush(self) -> None:
        if isinstance(self.crm, BatchingCrm):
            self.crm.flush()
            self.store.commit()

    def program(self, email: str, status: str | None) -> None:
        """A program status change from outside (an event), then its cascade; flushed when batching."""
        store, interp = self.store, self.interp
        person = store.person(email) or store.add_person(email)
        interp.set_clock(max(interp.clock, time.time()))
        interp.observe_program_status(person, PROGRAM, status, interp.clock)
        interp.drain()
        store.commit()
        self.flush()


@pytest.fixture
def make_engine(org: RunningEmulator, store: Store, tmp_path: Path) -> Any:
    def make(crm: str = "adapter", *, warm: bool = True, rules: str = RULES, **options: Any) -> Engine:
        path = tmp_path / "rules.campaign"
        path.write_text(rules, encoding="utf-8")
        loaded = load_rule_set([path], use_cache=False)
        assert loaded.ok, loaded.diagnostics
        adapter = adapter_for(org)
        if warm:  # the mirror knows Salesforce already: a cycle without rules
            Poller(adapter, store).poll_once()
        writer: CrmAdapter = BatchingCrm(adapter, store) if crm == "batching" else adapter
        return Engine(
            store, adapter, writer, Interpreter(loaded.rule_set, store, writer, program_sync=program_sync(**options))
        )

    return make


BOTH = pytest.mark.parametrize("crm", ["adapter", "batching"])


# ---------------------------------------------------------------------------------------------- first link
@BOTH
def test_an_empty_campaign_is_made_to_match_and_gets_the_program_members(
    sf: Salesforce, store: Store, make_engine: Any, crm: str
) -> None:
    webinar = plain_campaign(sf, Type="Conference", ActualCost=99)
    lead(sf, "ann@example.com", last_name="Archer")  # a Lead, not a member: the program's ann
    set_program(
        store,
        {"ann@example.com": "Attended", "cat@example.com": "Registered", "dan@example.com": "Invited"},
        {"cat@example.com": {"first_name": "Cat", "last_name": "Chen", "company": "Initech"}},
    )
    engine = make_engine(crm)

    engine.poll()

    assert sf_statuses(sf, webinar) == CHANNEL_STATUSES  # exactly the channel's; lowest step the default
    assert sf_members(sf, webinar) == {
        "ann@example.com": "Attended",
        "cat@example.com": "Registered",
        "dan@example.com": "Invited",
    }
    leads = sf_leads(sf)
    assert len(leads) == 3  # ann's Lead is reused, not duplicated
    assert leads["ann@example.com"] == (None, "Archer", "Acme")
    assert leads["cat@example.com"] == ("Cat", "Chen", "Initech")
    assert leads["dan@example.com"] == (None, p.NOT_PROVIDED, p.NOT_PROVIDED)
    assert sf_fields(sf, webinar) == ("Live Webinar", 6200.0)
    info = store.campaign_by_name(PROGRAM)
    assert info is not None
    assert (info.statuses, info.default_status) == (tuple(s for s, _, _ in CHANNEL_STATUSES), "Invited")
    assert info.responded == frozenset({"Attended", "Attended On-demand"})
    assert program_members(store) == sf_members(sf, webinar)
    assert watch_runs(store) == []  # set-up, not activity
    assert logged_errors(store) == []


@BOTH
def test_a_populated_matching_campaign_is_merged_both_ways_without_triggers(
    sf: Salesforce, store: Store, make_engine: Any, crm: str
) -> None:
    webinar = matching_campaign(sf)
    member(sf, webinar, lead(sf, "ann@example.com"), "Registered")  # only in Salesforce
    member(sf, webinar, lead(sf, "cat@example.com"), "Attended")  # on both sides, different statuses
    lead(sf, "bob@example.com")  # in Salesforce, only in the program
    set_program(store, {"bob@example.com": "No Show", "cat@example.com": "Registered", "dan@example.com": "Invited"})
    engine = make_engine(crm)

    engine.poll()
    engine.poll()  # the next cycle reads the sync's own writes back: nothing changes

    union = {
        "ann@example.com": "Registered",
        "bob@example.com": "No Show",
        "cat@example.com": "Registered",  # the program's status wins
        "dan@example.com": "Invited",  # created as a Lead
    }
    assert sf_members(sf, webinar) == union
    assert program_members(store) == union
    assert len(sf_leads(sf)) == 4
    assert watch_runs(store) == []  # the first copy fires no triggers
    assert program_members(store, "Follow-up") == {}
    assert logged_errors(store) == []


@BOTH
def test_a_populated_campaign_that_does_not_match_is_an_error_and_nothing_moves_until_fixed(
    sf: Salesforce, store: Store, make_engine: Any, crm: str
) -> None:
    webinar = plain_campaign(sf)
    ann_member = member(sf, webinar, lead(sf, "ann@example.com"), "Sent")
    lead(sf, "bob@example.com")
    set_program(store, {"bob@example.com": "Invited"})
    engine = make_engine(crm)

    engine.poll()

    assert logged_errors(store) == [MISMATCH]
    assert engine.interp.programs.errors == {PROGRAM: MISMATCH}
    assert sf_statuses(sf, webinar) == [("Sent", True, False), ("Responded", False, True)]  # not touched
    assert sf_members(sf, webinar) == {"ann@example.com": "Sent"}
    assert program_members(store) == {"bob@example.com": "Invited"}
    assert sf_fields(sf, webinar) == (None, None)

    # nothing moves either way while it does not match
    engine.program("bob@example.com", "Attended")
    sf.CampaignMember.update(ann_member, {"Status": "Responded"})
    engine.poll()
    assert sf_members(sf, webinar) == {"ann@example.com": "Responded"}
    assert program_members(store) == {"bob@example.com": "Attended"}
    assert logged_errors(store) == [MISMATCH, MISMATCH]  # said again every cycle
    assert all(origin == "event" for *_, origin in watch_runs(store))

    # fixed in Salesforce: the channel's statuses, ann moved to one of them, Sent and Responded removed
    builtin = {
        row["Label"]: row["Id"]
        for row in sf.query_all(f"SELECT Id, Label FROM CampaignMemberStatus WHERE CampaignId = '{webinar}'")["records"]
    }
    for order, (label, is_default, responded) in enumerate(CHANNEL_STATUSES, start=10):
        sf.CampaignMemberStatus.create(
            {
                "CampaignId": webinar,
                "Label": label,
                "SortOrder": order,
                "IsDefault": is_default,
                "HasResponded": responded,
            }
        )
    sf.CampaignMember.update(ann_member, {"Status": "Attended"})
    for status_id in builtin.values():
        sf.CampaignMemberStatus.delete(status_id)
    engine.poll()

    linked = {"ann@example.com": "Attended", "bob@example.com": "Attended"}
    assert sf_members(sf, webinar) == linked
    assert program_members(store) == linked
    assert len(logged_errors(store)) == 2
    assert engine.interp.programs.links.keys() == {PROGRAM}


# ---------------------------------------------------------------------------------------------- first cycle ever
def test_first_cycle_ever_makes_an_empty_campaign_match(sf: Salesforce, store: Store, make_engine: Any) -> None:
    webinar = plain_campaign(sf)
    set_program(store, {"dan@example.com": "Invited"})
    engine = make_engine("adapter", warm=False)

    engine.poll()

    assert sf_statuses(sf, webinar) == CHANNEL_STATUSES
    assert sf_members(sf, webinar) == {"dan@example.com": "Invited"}
    assert program_members(store) == {"dan@example.com": "Invited"}
    assert watch_runs(store) == []


def test_first_cycle_ever_with_a_batching_crm_keeps_the_program_members(
    sf: Salesforce, store: Store, make_engine: Any
) -> None:
    webinar = plain_campaign(sf)
    set_program(store, {"dan@example.com": "Invited"})
    engine = make_engine("batching", warm=False)

    engine.poll()

    assert sf_members(sf, webinar) == {"dan@example.com": "Invited"}
    assert program_members(store) == {"dan@example.com": "Invited"}
    assert watch_runs(store) == []


def test_first_cycle_ever_merges_a_populated_campaign_without_triggers(
    sf: Salesforce, store: Store, make_engine: Any
) -> None:
    webinar = matching_campaign(sf)
    member(sf, webinar, lead(sf, "ann@example.com"), "Registered")
    member(sf, webinar, lead(sf, "cat@example.com"), "Attended")
    set_program(store, {"cat@example.com": "Registered"})
    engine = make_engine("adapter", warm=False)

    engine.poll()

    union = {"ann@example.com": "Registered", "cat@example.com": "Registered"}
    assert sf_members(sf, webinar) == union
    assert program_members(store) == union
    assert watch_runs(store) == []


def test_first_cycle_ever_does_not_touch_a_populated_campaign_that_does_not_match(
    sf: Salesforce, store: Store, make_engine: Any
) -> None:
    webinar = plain_campaign(sf)
    member(sf, webinar, lead(sf, "ann@example.com"), "Sent")
    engine = make_engine("adapter", warm=False)

    engine.poll()

    assert logged_errors(store) == [MISMATCH]
    assert sf_statuses(sf, webinar) == [("Sent", True, False), ("Responded", False, True)]
    assert program_members(store) == {}


def test_a_program_change_made_by_a_flow_stays_after_the_cycle(sf: Salesforce, store: Store, make_engine: Any) -> None:
    webinar = plain_campaign(sf)
    signups = plain_campaign(sf, "Signups")
    member(sf, signups, lead(sf, "ann@example.com"), "Sent")
    rules = (
        RULES
        + """
campaign "Sign up" {
    trigger added to sfdc campaign "Signups"
    flow { change program status in program "Q4 Webinar" to "Registered" }
}
"""
    )
    engine = make_engine("adapter", warm=False, rules=rules)
    engine.poll()  # the first sync: set-up, nothing runs
    assert program_members(store) == {}

    member(sf, signups, lead(sf, "bob@example.com"), "Sent")
    engine.poll()

    # bob's flow moved him in the program, the sync put him in the campaign, and the cycle kept both
    assert sf_members(sf, webinar) == {"bob@example.com": "Registered"}
    assert program_members(store) == {"bob@example.com": "Registered"}


# ---------------------------------------------------------------------------------------------- both directions
def linked(sf: Salesforce, store: Store, make_engine: Any, crm: str, members: dict[str, str]) -> tuple[Engine, str]:
    """A matching campaign and program with the same `members`, linked by a first cycle."""
    webinar = matching_campaign(sf)
    for email, status in members.items():
        member(sf, webinar, lead(sf, email), status)
    set_program(store, members)
    engine = make_engine(crm)
    engine.poll()
    assert sf_members(sf, webinar) == members and program_members(store) == members
    assert watch_runs(store) == []
    return engine, webinar


@BOTH
def test_salesforce_to_program(org: RunningEmulator, sf: Salesforce, store: Store, make_engine: Any, crm: str) -> None:
    engine, webinar = linked(
        sf, store, make_engine, crm, {"ann@example.com": "Registered", "bob@example.com": "Invited"}
    )

    sf.CampaignMember.update(sf_member_id(sf, webinar, "ann@example.com"), {"Status": "Attended"})
    member(sf, webinar, lead(sf, "cat@example.com"), "No Show")
    report = engine.poll()

    assert (report.status_changed, report.added) == (1, 1)
    assert program_members(store) == {
        "ann@example.com": "Attended",
        "bob@example.com": "Invited",
        "cat@example.com": "No Show",
    }
    assert [run for run in watch_runs(store) if run[1] == "program_status_changed"] == [
        ("ann@example.com", "program_status_changed", "Registered", "Attended", "program_sync"),
        ("cat@example.com", "program_status_changed", None, "No Show", "program_sync"),
    ]

    sf.CampaignMember.delete(sf_member_id(sf, webinar, "bob@example.com"))
    org.advance_clock(61)  # getDeleted covers whole minutes up to the server's current one
    assert engine.poll().removed == 1

    assert program_members(store) == {"ann@example.com": "Attended", "cat@example.com": "No Show"}
    assert watch_runs(store)[-1] == ("bob@example.com", "program_status_changed", "Invited", None, "program_sync")
    assert sf_members(sf, webinar) == program_members(store)


@BOTH
def test_program_to_salesforce(sf: Salesforce, store: Store, make_engine: Any, crm: str) -> None:
    engine, webinar = linked(
        sf, store, make_engine, crm, {"ann@example.com": "Registered", "bob@example.com": "Invited"}
    )
    store.add_person("cat@example.com", first_name="Cat", last_name="Chen", company="Initech")
    lead(sf, "eve@example.com", last_name="Evans")  # in Salesforce, unknown to the mirror
    store.commit()

    engine.program("ann@example.com", "Attended")  # updated
    engine.program("bob@example.com", None)  # removed
    engine.program("cat@example.com", "Registered")  # a new Lead with the known names
    engine.program("dan@example.com", "Invited")  # a new Lead with "[not provided]"
    engine.program("eve@example.com", "Invited")  # the existing Lead

    expected = {
        "ann@example.com": "Attended",
        "cat@example.com": "Registered",
        "dan@example.com": "Invited",
        "eve@example.com": "Invited",
    }
    assert sf_members(sf, webinar) == expected
    assert program_members(store) == expected
    leads = sf_leads(sf)
    assert len(leads) == 5  # ann, bob, eve, and the two created
    assert leads["cat@example.com"] == ("Cat", "Chen", "Initech")
    assert leads["dan@example.com"] == (None, p.NOT_PROVIDED, p.NOT_PROVIDED)
    assert leads["eve@example.com"] == (None, "Evans", "Acme")
    for email in ("cat@example.com", "dan@example.com", "eve@example.com"):
        person = store.person(email)
        assert person is not None and person.sfdc_type == "Lead"
        assert person.sfdc_id is not None and person.sfdc_id.startswith("00Q")
    mirrored = [run for run in watch_runs(store) if run[4] == "program_sync"]
    assert [(email, kind) for email, kind, *_ in mirrored] == [
        ("ann@example.com", "status_changed_in_sfdc_campaign"),
        ("bob@example.com", "removed_from_sfdc_campaign"),
        ("cat@example.com", "added_to_sfdc_campaign"),
        ("dan@example.com", "added_to_sfdc_campaign"),
        ("eve@example.com", "added_to_sfdc_campaign"),
    ]

    runs_before = len(watch_runs(store))
    echo = engine.poll()  # the engine's own writes, read back: no change, no trigger
    assert (echo.added, echo.status_changed, echo.removed) == (0, 0, 0)
    assert len(watch_runs(store)) == runs_before
    assert program_members(store) == expected


# ---------------------------------------------------------------------------------------------- Type and Actual Cost
@BOTH
def test_type_and_actual_cost_are_set_and_put_back(sf: Salesforce, store: Store, make_engine: Any, crm: str) -> None:
    webinar = matching_campaign(sf)
    sf.Campaign.update(webinar, {"Type": "Conference", "ActualCost": 10})
    engine = make_engine(crm)

    engine.poll()
    assert sf_fields(sf, webinar) == ("Live Webinar", 6200.0)

    sf.Campaign.update(webinar, {"Type": "Email", "ActualCost": 1})  # someone edits the campaign
    engine.poll()
    assert sf_fields(sf, webinar) == ("Live Webinar", 6200.0)
    info = store.campaign_by_name(PROGRAM)
    assert info is not None and (info.type, info.actual_cost) == ("Live Webinar", 6200.0)

    sf.Campaign.update(webinar, {"Type": None, "ActualCost": None})  # cleared
    engine.poll()
    assert sf_fields(sf, webinar) == ("Live Webinar", 6200.0)


# ---------------------------------------------------------------------------------------------- sync off
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"enabled": False}, id="globally"),
        pytest.param({"disabled": frozenset({PROGRAM})}, id="program"),
    ],
)
def test_sync_turned_off_moves_nothing(sf: Salesforce, store: Store, make_engine: Any, options: dict[str, Any]) -> None:
    empty = plain_campaign(sf)  # would be made to match
    webinar = matching_campaign(sf, "Other Webinar")
    ann_member = member(sf, webinar, lead(sf, "ann@example.com"), "Registered")
    rules = RULES + 'program "Other" { channel "Live Webinar" sync with sfdc campaign "Other Webinar" }\n'
    options = {k: (v | {"Other"} if k == "disabled" else v) for k, v in options.items()}
    set_program(store, {"bob@example.com": "Invited"})
    engine = make_engine(rules=rules, **options)

    engine.poll()
    engine.program("bob@example.com", "Attended")
    engine.program("cat@example.com", "Invited")
    sf.CampaignMember.update(ann_member, {"Status": "Attended"})
    member(sf, empty, lead(sf, "dan@example.com"), "Sent")
    engine.poll()

    assert sf_statuses(sf, empty) == [("Sent", True, False), ("Responded", False, True)]
    assert sf_fields(sf, empty) == (None, None) and sf_fields(sf, webinar) == (None, None)
    assert sf_members(sf, empty) == {"dan@example.com": "Sent"}
    assert sf_members(sf, webinar) == {"ann@example.com": "Attended"}
    assert program_members(store) == {"bob@example.com": "Attended", "cat@example.com": "Invited"}
    assert program_members(store, "Other") == {}
    assert set(sf_leads(sf)) == {"ann@example.com", "dan@example.com"}  # no Lead created
    assert all(origin == "event" for *_, origin in watch_runs(store))
    assert logged_errors(store) == []


def test_sync_settings_turn_a_program_off_for_smartcampaign_sync(
    org: RunningEmulator, sf: Salesforce, tmp_path: Path, db_url: str
) -> None:
    webinar = plain_campaign(sf)
    rules = tmp_path / "rules.campaign"
    rules.write_text(RULES, encoding="utf-8")
    runner = CliRunner()

    def sync(env: str) -> Any:
        return runner.invoke(sync_command, ["--once", "--db", db_url, "--rules", str(rules), "--settings", env])

    off = settings_file(org, tmp_path / "off.env", SMARTCAMPAIGN_SYNC_DISABLED_PROGRAMS=f'["{PROGRAM}"]')
    result = sync(off)
    assert result.exit_code == 0, result.output
    assert sf_statuses(sf, webinar) == [("Sent", True, False), ("Responded", False, True)]
    assert sf_fields(sf, webinar) == (None, None)

    nothing = sync(settings_file(org, tmp_path / "none.env", SMARTCAMPAIGN_CAMPAIGN_SYNC="false"))
    assert nothing.exit_code == 1
    assert "campaign sync is turned off" in nothing.stderr
    assert sf_statuses(sf, webinar) == [("Sent", True, False), ("Responded", False, True)]

    on = sync(settings_file(org, tmp_path / "on.env"))
    assert on.exit_code == 0, on.output
    assert sf_statuses(sf, webinar) == CHANNEL_STATUSES
    assert sf_fields(sf, webinar) == ("Live Webinar", 6200.0)


# ---------------------------------------------------------------------------------------------- conflicts
@BOTH
@pytest.mark.parametrize("first", ["program", "salesforce"])
def test_deleted_in_salesforce_while_changed_in_the_program(
    org: RunningEmulator, sf: Salesforce, store: Store, make_engine: Any, crm: str, first: str
) -> None:
    """The later observation wins (module docstring): the program change then the poll that reads the deletion ->
    not a member on either side; the poll then the program change -> a member with the new status on both."""
    engine, webinar = linked(sf, store, make_engine, crm, {"ann@example.com": "Registered"})
    sf.CampaignMember.delete(sf_member_id(sf, webinar, "ann@example.com"))
    org.advance_clock(61)

    if first == "program":
        engine.program("ann@example.com", "Attended")  # Salesforce refuses: the member is gone
        engine.poll()  # ...and the deletion comes in
        final = {}
    else:
        engine.poll()
        engine.program("ann@example.com", "Attended")
        final = {"ann@example.com": "Attended"}

    assert sf_members(sf, webinar) == final
    assert program_members(store) == final
    info = store.campaign_by_name(PROGRAM)
    assert info is not None
    assert {store.person_by_id(pid).email: status for pid, status in store.campaign_members(info.id)} == final


@pytest.mark.parametrize("first", ["program", "salesforce"])
def test_removed_from_the_program_while_changed_in_salesforce(
    sf: Salesforce, store: Store, make_engine: Any, first: str
) -> None:
    """Salesforce's change read first, then the removal: the removal wins. The removal first: it deletes the
    CampaignMember, so Salesforce's change is never observed. Not a member on either side, both ways."""
    engine, webinar = linked(sf, store, make_engine, "adapter", {"ann@example.com": "Registered"})
    sf.CampaignMember.update(sf_member_id(sf, webinar, "ann@example.com"), {"Status": "Attended"})

    if first == "program":
        engine.program("ann@example.com", None)
        engine.poll()
    else:
        engine.poll()
        assert program_members(store) == {"ann@example.com": "Attended"}
        engine.program("ann@example.com", None)

    assert sf_members(sf, webinar) == {}
    assert program_members(store) == {}


def test_batching_refusal_after_the_deletion_was_observed_keeps_both_sides_equal(
    org: RunningEmulator, sf: Salesforce, store: Store, make_engine: Any
) -> None:
    engine, webinar = linked(sf, store, make_engine, "batching", {"ann@example.com": "Registered"})
    sf.CampaignMember.delete(sf_member_id(sf, webinar, "ann@example.com"))
    org.advance_clock(61)
    assert isinstance(engine.crm, BatchingCrm)

    person = store.person("ann@example.com")
    assert person is not None
    engine.interp.set_clock(time.time())
    engine.interp.observe_program_status(person, PROGRAM, "Attended", engine.interp.clock)
    engine.interp.drain()
    store.commit()
    Poller(engine.adapter, store, engine.interp).poll_once()  # the deletion is observed before the flush
    engine.crm.flush()  # the queued status change is refused: ann is not a member

    assert sf_members(sf, webinar) == {}
    assert program_members(store) == {}
    info = store.campaign_by_name(PROGRAM)
    assert info is not None and store.campaign_members(info.id) == []


def test_a_program_status_not_mirrored_is_an_activity_error_not_a_crash(
    org: RunningEmulator, sf: Salesforce, store: Store, make_engine: Any
) -> None:
    """The program change of the 'program first' conflict: Salesforce refuses the update, the person's activity
    says so (origin program_sync), and the deletion read next settles both sides."""
    engine, webinar = linked(sf, store, make_engine, "adapter", {"ann@example.com": "Registered"})
    sf.CampaignMember.delete(sf_member_id(sf, webinar, "ann@example.com"))
    org.advance_clock(61)

    engine.program("ann@example.com", "Attended")

    person = store.person("ann@example.com")
    assert person is not None
    refused = [a for a in store.activity_of(person.id) if a["outcome"] == "error"]
    assert [(a["kind"], a["origin"], a["status"]) for a in refused] == [
        ("Change Status in SFDC Campaign", "program_sync", "Attended")
    ]
    assert "not a campaign member" in (refused[0]["reason"] or "")
    # unequal until the poll reads the deletion (test_deleted_in_salesforce_while_changed_in_the_program)
    assert program_members(store) == {"ann@example.com": "Attended"}
    assert sf_members(sf, webinar) == {}
    engine.poll()
    assert program_members(store) == {} and sf_members(sf, webinar) == {}
