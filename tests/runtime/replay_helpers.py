"""Builders for in-process replays: a small standard world, event constructors, and a result wrapper.

The runtime tests import these by name (`from replay_helpers import ...`); `conftest.py` turns them into the
`replay` fixture that writes the rules to a temporary `.campaign` file and runs `engine.replay.run`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.language.loader import load_rule_set
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay

NOW = "2026-11-01T00:00:00Z"

ANN = "ann@example.com"
BOB = "bob@example.com"
CAT = "cat@example.com"
DAN = "dan@example.com"  # known, but not in Salesforce

WEBINAR_ID = "701000000000001AAA"
NURTURE_ID = "701000000000002AAA"

CAMPAIGNS: list[dict[str, Any]] = [
    {"name": "Webinar", "id": WEBINAR_ID, "statuses": ["Sent", "Registered", "Attended", "No Show"]},
    {"name": "Nurture", "id": NURTURE_ID, "statuses": ["Sent", "Responded"]},
    {"name": "Customers", "id": "701000000000003AAA", "statuses": ["Sent", "Responded"]},
    {"name": "VIP", "id": "701000000000004AAA", "statuses": ["Sent", "Responded"]},
    {"name": "Prospects", "id": "701000000000005AAA", "statuses": ["Sent", "Responded"]},
    {"name": "DNC", "id": "701000000000006AAA", "statuses": ["Sent"]},
]

PERSONS: list[dict[str, Any]] = [
    {"email": ANN, "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
    {"email": BOB, "sfdc_type": "Lead", "sfdc_id": "00Q000000000002AAA"},
    {"email": CAT, "sfdc_type": "Contact", "sfdc_id": "003000000000003AAA"},
    {"email": DAN},
]


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> str:
    """An event time in 2026 (November by default): at(2, 9) is 2026-11-02T09:00:00Z."""
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def world(
    members: dict[str, dict[str, str]] | None = None,
    *,
    persons: list[dict[str, Any]] | None = None,
    campaigns: list[dict[str, Any]] | None = None,
    extra_campaigns: list[dict[str, Any]] | None = None,
    programs: dict[str, dict[str, str]] | None = None,
    now: str = NOW,
) -> dict[str, Any]:
    """The standard world (ann, bob, cat in Salesforce, dan not; six campaigns), with members added."""
    chosen = copy.deepcopy(campaigns if campaigns is not None else CAMPAIGNS)
    chosen.extend(copy.deepcopy(extra_campaigns or []))
    for campaign in chosen:
        campaign.setdefault("members", {})
        campaign["members"].update((members or {}).get(campaign["name"], {}))
    unknown = set(members or {}) - {c["name"] for c in chosen}
    assert not unknown, f"members given for campaigns not in the world: {unknown}"
    out: dict[str, Any] = {
        "now": now,
        "persons": copy.deepcopy(persons if persons is not None else PERSONS),
        "sfdc_campaigns": chosen,
    }
    if programs is not None:
        out["programs"] = programs
    return out


def _event(kind: str, person: str, campaign: str | None, status: str | None, when: str | None, **extra: Any) -> dict:
    data: dict[str, Any] = {"type": kind, "person": person}
    if campaign is not None:
        data["campaign"] = campaign
    if status is not None:
        data["status"] = status
    if when is not None:
        data["at"] = when
    data.update({k: v for k, v in extra.items() if v is not None})
    return data


def added(person: str, campaign: str | None, status: str, when: str | None = None, **extra: Any) -> dict:
    """Observation: `person` is a member of `campaign` with `status` (added_to_sfdc_campaign)."""
    return _event("added_to_sfdc_campaign", person, campaign, status, when, **extra)


def changed(person: str, campaign: str | None, status: str, when: str | None = None, **extra: Any) -> dict:
    """Observation: `person` is a member of `campaign` with `status` (status_changed_in_sfdc_campaign)."""
    return _event("status_changed_in_sfdc_campaign", person, campaign, status, when, **extra)


def removed(person: str, campaign: str | None, when: str | None = None, **extra: Any) -> dict:
    """Observation: `person` is not a member of `campaign` (removed_from_sfdc_campaign)."""
    return _event("removed_from_sfdc_campaign", person, campaign, None, when, **extra)


def program_event(person: str, program: str, status: str, when: str | None = None, **extra: Any) -> dict:
    """Observation: `person` has `status` in `program` (program_status_changed)."""
    data = _event("program_status_changed", person, None, status, when, **extra)
    data["program"] = program
    return data


@dataclass
class Result:
    """The REPLAY.md result with lookups that read like what a user checks."""

    raw: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.raw["runs"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.raw["errors"]

    @property
    def error_messages(self) -> list[str]:
        return [e["message"] for e in self.errors]

    @property
    def world(self) -> dict[str, Any]:
        return self.raw["world"]

    def campaign(self, name: str) -> dict[str, Any]:
        for campaign in self.world["sfdc_campaigns"]:
            if campaign["name"] == name:
                return campaign
        raise AssertionError(f"no campaign {name!r} in the result world")

    def members(self, campaign: str) -> dict[str, str]:
        return self.campaign(campaign)["members"]

    def program(self, name: str) -> dict[str, str]:
        return self.world["programs"].get(name, {})

    def person(self, email: str) -> dict[str, Any] | None:
        for person in self.world["persons"]:
            if person["email"].lower() == email.lower():
                return person
        return None

    def runs_of(self, campaign: str | None = None, person: str | None = None) -> list[dict[str, Any]]:
        return [
            run
            for run in self.runs
            if (campaign is None or run["campaign"] == campaign) and (person is None or run["person"] == person)
        ]

    def ran(self, campaign: str) -> list[str]:
        """The persons who entered `campaign`'s flow, one entry per run, in start order."""
        return [run["person"] for run in self.runs_of(campaign)]

    def steps(self, campaign: str, person: str | None = None, run: int = 0) -> list[dict[str, Any]]:
        return self.runs_of(campaign, person)[run]["steps"]


def load_rules(folder: Path, text: str, name: str = "rules.campaign") -> Any:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    loaded = load_rule_set([path], use_cache=False)
    assert not loaded.errors, "\n".join(d.header() for d in loaded.errors)
    return loaded.rule_set


def run_replay(
    folder: Path,
    rules: str,
    events: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    world_data: dict[str, Any] | None = None,
    store_url: str | None = None,
    **options: Any,
) -> Result:
    """Writes `rules` to `folder`, replays `events` over `world_data` (the standard world by default)."""
    rule_set = load_rules(folder, rules)
    model = World.model_validate(world_data if world_data is not None else world())
    inputs = [
        ReplayInputEvent(Event.model_validate(data), line=number, file="events.jsonl")
        for number, data in enumerate(events, start=1)
    ]
    warnings: list[str] = []
    extra = {"store_url": store_url} if store_url is not None else {}
    raw = replay(rule_set, model, inputs, ReplayOptions(warn=warnings.append, **options), **extra)
    return Result(raw, warnings)
