"""Replay (REPLAY.md): a rule set over a world and a stream of events, on the embedded local org, deterministic.

Batch campaigns run on the replay's clock: before each event, every continuation and every schedule slot due at
or before its time runs, in time order (a continuation before a slot at the same instant); the schedules start
at the world's `now`. A durable replay (`ReplayOptions.store_path`, `replay --store FILE`) keeps its whole state in
a SQLite file, committed after every event, waiting run and batch chunk: run again on the same file, it goes on
where it stopped (the world is not seeded again, the events processed are skipped, an interrupted batch run
resumes first) and its result is the one an uninterrupted replay gives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.crm.local import LocalOrg
from engine.language import ast
from engine.model.events import Event
from engine.model.loading import InputError
from engine.model.world import World, as_utc
from engine.runtime import calendar
from engine.runtime.interpreter import DEFAULT_MAX_DEPTH, Interpreter, Tracer, iso
from engine.store.store import MEMORY_URL, Person, Store
from engine.sync.programs import program_sync


@dataclass
class ReplayInputEvent:
    event: Event
    line: int = 0
    file: str = "<events>"


class ResultRecorder:
    """Collects runs (in start order), their steps, and errors: the REPLAY.md result.

    With a store (a durable replay), steps and errors are written to it too, and `load` rebuilds what an earlier
    process recorded (runs are in the store already)."""

    def __init__(self, store: Store | None = None) -> None:
        self.runs: list[dict[str, Any]] = []
        self._by_id: dict[int, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self._store = store

    def load(self, store: Store) -> None:
        """The runs, steps and errors recorded in the store before (a resumed durable replay)."""
        emails: dict[int, str] = {}
        for run_id, campaign, person_id, started_at, trigger, steps in store.recorded_runs():
            if person_id not in emails:
                emails[person_id] = store.person_by_id(person_id).email
            run: dict[str, Any] = {
                "campaign": campaign,
                "person": emails[person_id],
                "trigger": trigger,
                "at": iso(started_at),
                "steps": steps,
            }
            self.runs.append(run)
            self._by_id[run_id] = run
        self.errors = [{"message": message, "at": iso(at)} for at, message in store.replay_errors()]

    def run_started(self, run_id: int, campaign: str, person: Person, trigger: dict[str, Any], at: float) -> None:
        run = {"campaign": campaign, "person": person.email, "trigger": trigger, "at": iso(at), "steps": []}
        self.runs.append(run)
        self._by_id[run_id] = run

    def step(self, run_id: int, step: dict[str, Any]) -> None:
        run = self._by_id.get(run_id)
        if run is not None:
            ordered = {"action": step.pop("action")}
            ordered.update(step)
            if self._store is not None:
                self._store.add_step(run_id, len(run["steps"]), ordered)
            run["steps"].append(ordered)

    def error(self, message: str, at: float) -> None:
        self.errors.append({"message": message, "at": iso(at)})
        if self._store is not None:
            self._store.add_replay_error(at, message)

    def run_number(self, run_id: int) -> int | None:
        """1-based position of a run in `runs`."""
        run = self._by_id.get(run_id)
        for number, candidate in enumerate(self.runs, start=1):
            if candidate is run:
                return number
        return None


def _ts(value: datetime) -> float:
    return as_utc(value).timestamp()


@dataclass
class ReplayOptions:
    until: datetime | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    program_sync: bool = True
    sync_disabled: frozenset[str] = frozenset()
    warn: Callable[[str], None] = field(default=lambda message: None)
    progress: Callable[[int], None] | None = None
    tracer: Tracer | None = None
    world_source: str = "world"  # the world file's name, for messages
    store_path: str | None = None  # a durable replay's SQLite file (`--store FILE`): continued when it holds one


def store_url_for(path: str) -> str:
    """The store URL of a durable replay's SQLite file."""
    return f"sqlite:///{path}"


def seed_world(store: Store, org: LocalOrg, world: World, rule_set: ast.RuleSet, source: str = "world") -> None:
    """Loads a world into an empty store: persons, campaigns with statuses and members, program members."""
    now = _ts(world.now)
    for entry in world.persons:
        if store.person(entry.email) is not None:
            raise InputError(f"{source}: persons: {entry.email} is listed twice (emails compare case-insensitively)")
        store.add_person(
            entry.email,
            entry.sfdc_id,
            (entry.sfdc_type or "Lead") if entry.sfdc_id else None,
            entry.first_name,
            entry.last_name,
            entry.company,
        )
    given_ids = {c.id for c in world.sfdc_campaigns if c.id}
    for number, campaign in enumerate(world.sfdc_campaigns):
        if store.campaign_by_name(campaign.name) is not None:
            raise InputError(f'{source}: sfdc_campaigns[{number}].name: campaign "{campaign.name}" is listed twice')
        sfdc_id = campaign.id or org.store.next_sfdc_id(
            "701", lambda candidate: candidate in given_ids or store.sfdc_id_taken(candidate)
        )
        cid = store.add_campaign(campaign.name, sfdc_id, campaign.statuses)
        if campaign.type is not None or campaign.actual_cost is not None:
            store.set_campaign_fields(cid, campaign.type, campaign.actual_cost)
    for number, campaign in enumerate(world.sfdc_campaigns):
        info = store.campaign_by_name(campaign.name)
        assert info is not None
        for email, status in campaign.members.items():
            if status not in info.statuses:
                raise InputError(
                    f'{source}: sfdc_campaigns[{number}].members.{email}: "{status}" is not a member status of '
                    f'"{campaign.name}" ({", ".join(info.statuses)})'
                )
            person = store.person(email) or store.add_person(email)
            if not person.sfdc_id:
                person = store.set_person_sfdc(person, org.new_lead_id(), "Lead", "[not provided]", "[not provided]")
            store.set_membership(person.id, info.id, status, now)
    for program_name, members in world.programs.items():
        program = rule_set.program(program_name)
        if program is None:
            known = ", ".join(p.name for p in rule_set.programs) or "none"
            raise InputError(
                f"{source}: programs.{program_name}: the rules declare no such program (declared: {known})"
            )
        channel = rule_set.channel(program.channel or "")
        pid = store.program_id(program_name)
        for email, status in members.items():
            if channel is not None and channel.status(status) is None:
                raise InputError(
                    f'{source}: programs.{program_name}.{email}: "{status}" is not a status of channel '
                    f'"{channel.name}" ({", ".join(channel.status_names)})'
                )
            person = store.person(email) or store.add_person(email)
            store.set_program_status(person.id, pid, None if status == ast.NOT_IN_PROGRAM else status, now)


def validate_events(events: Sequence[ReplayInputEvent], store: Store, rule_set: ast.RuleSet) -> None:
    """The world is the catalog: unknown campaigns, statuses and programs are unusable input."""
    names = [c.name for c in store.campaigns()]
    named: set[str] = set()  # persons the events before create when unknown
    for item in events:
        event = item.event
        where = f"{item.file}:{item.line}"
        if event.type == "campaign_requested":
            requestable = ", ".join(f'"{c.name}"' for c in rule_set.campaigns if c.is_requestable) or "none"
            smart = rule_set.campaign(event.campaign or "")
            if smart is None:
                raise InputError(
                    f'{where}: campaign: the rules have no campaign "{event.campaign}" (requestable: {requestable})'
                )
            if not smart.is_requestable:
                raise InputError(
                    f'{where}: campaign: "{smart.name}" cannot be requested: it has no trigger '
                    f"`campaign is requested` (requestable: {requestable})"
                )
            if event.person.lower() not in named and store.person(event.person) is None:
                raise InputError(f"{where}: person: no person {event.person} in the world")
            continue
        named.add(event.person.lower())
        if event.type == "program_status_changed":
            declared = rule_set.program(event.program or "")
            if declared is None:
                known = ", ".join(p.name for p in rule_set.programs) or "none"
                raise InputError(
                    f'{where}: program: the rules declare no program "{event.program}" (declared: {known})'
                )
            channel = rule_set.channel(declared.channel or "")
            if channel is not None and channel.status(event.status or "") is None:
                raise InputError(
                    f'{where}: status: "{event.status}" is not a status of channel "{channel.name}" '
                    f"(expected one of: {ast.NOT_IN_PROGRAM}, {', '.join(channel.status_names)})"
                )
            continue
        if event.campaign is not None:
            info = store.campaign_by_name(event.campaign)
            if info is None:
                raise InputError(
                    f'{where}: campaign: no SFDC campaign "{event.campaign}" in the world '
                    f"(known: {', '.join(names) or 'none'})"
                )
            if event.campaign_id is not None and info.sfdc_id[:15] != event.campaign_id[:15]:
                raise InputError(
                    f'{where}: campaign_id: "{event.campaign_id}" is not the id of "{event.campaign}" ({info.sfdc_id})'
                )
        else:
            info = store.campaign_by_sfdc_id(event.campaign_id or "")
            if info is None:
                raise InputError(f'{where}: campaign_id: no SFDC campaign with id "{event.campaign_id}" in the world')
        if event.type != "removed_from_sfdc_campaign" and event.status not in info.statuses:
            raise InputError(
                f'{where}: status: "{event.status}" is not a member status of "{info.name}" '
                f"(expected one of: {', '.join(info.statuses)})"
            )


def export_world(store: Store, rule_set: ast.RuleSet, now: float) -> dict[str, Any]:
    """The final world in the input's shape: persons and campaigns sorted by name."""
    emails: dict[int, str] = {}
    persons: list[dict[str, Any]] = []
    for person_id, email, sfdc_id, sfdc_type, first_name, last_name, company in store.persons():
        emails[person_id] = email
        entry: dict[str, Any] = {"email": email}
        if sfdc_id:
            entry["sfdc_type"] = sfdc_type or "Lead"
            entry["sfdc_id"] = sfdc_id
        for key, value in (("first_name", first_name), ("last_name", last_name), ("company", company)):
            if value and value != "[not provided]":
                entry[key] = value
        persons.append(entry)
    campaigns: list[dict[str, Any]] = []
    for info in store.campaigns():
        members = {emails[pid]: status for pid, status in store.campaign_members(info.id)}
        entry = {
            "name": info.name,
            "id": info.sfdc_id,
            "statuses": list(info.statuses),
            "members": dict(sorted(members.items(), key=lambda kv: kv[0].lower())),
        }
        if info.type is not None:
            entry["type"] = info.type
        if info.actual_cost is not None:
            entry["actual_cost"] = int(info.actual_cost) if info.actual_cost.is_integer() else info.actual_cost
        campaigns.append(entry)
    programs: dict[str, dict[str, str]] = {}
    for pid, name in store.program_names():
        members = {emails[person_id]: status for person_id, status in store.program_members(pid)}
        if members or rule_set.program(name) is not None:
            programs[name] = dict(sorted(members.items(), key=lambda kv: kv[0].lower()))
    return {"now": iso(now), "persons": persons, "sfdc_campaigns": campaigns, "programs": programs}


class Schedules:
    """The batch campaigns' schedules on the replay clock: the next slot of each, after its cursor."""

    def __init__(self, interp: Interpreter, start: float, cursors: dict[str, float]) -> None:
        self.interp = interp
        self.campaigns = [c for c in interp.rules.campaigns if c.is_batch and c.active]
        self.cursor = {c.name: cursors.get(c.name, start) for c in self.campaigns}
        self._next: dict[str, float | None] = {}
        for campaign in self.campaigns:
            try:
                calendar.zone(interp.rules.zone_of(campaign))
            except calendar.UnknownTimeZone as error:
                raise InputError(f'campaign "{campaign.name}": {error}') from None
            self._advance(campaign, self.cursor[campaign.name])

    def _advance(self, campaign: ast.Campaign, cursor: float) -> None:
        assert campaign.schedule is not None
        self.cursor[campaign.name] = cursor
        self._next[campaign.name] = calendar.next_slot(campaign.schedule, self.interp.rules.zone_of(campaign), cursor)

    def next(self, upto: float) -> tuple[float, ast.Campaign] | None:
        """The earliest slot at or before `upto` (campaigns in declaration order at the same instant)."""
        best: tuple[float, ast.Campaign] | None = None
        for campaign in self.campaigns:
            slot = self._next[campaign.name]
            if slot is not None and slot <= upto and (best is None or slot < best[0]):
                best = (slot, campaign)
        return best

    def taken(self, campaign: ast.Campaign, slot: float) -> None:
        self._advance(campaign, slot)


class ReplayDriver:
    """Runs continuations and schedule slots in time order, and keeps a durable replay's state."""

    def __init__(self, interp: Interpreter, schedules: Schedules, durable: bool) -> None:
        self.interp = interp
        self.store = interp.store
        self.schedules = schedules
        self.durable = durable

    def save(self, **values: str) -> None:
        """A durable replay's state, with the clock, then a commit."""
        if self.durable:
            self.store.set_replay_state({"clock": repr(self.interp.clock), **values})
            self.store.commit()

    def run_until(self, upto: float | None, slots_upto: float) -> None:
        """Every continuation due by `upto` (all: None) and every slot by `slots_upto`, in time order."""
        while True:
            due = self.store.next_due(upto)
            slot = self.schedules.next(slots_upto)
            if due is None and slot is None:
                return
            if slot is None or (due is not None and due.due_at <= slot[0]):
                assert due is not None
                self.interp.run_continuation(due)
                self.save()
                continue
            at, campaign = slot
            self.schedules.taken(campaign, at)
            if at > self.interp.clock:
                self.interp.set_clock(at)
            if self.durable:  # committed with the batch run's selection
                self.store.set_replay_state({"clock": repr(self.interp.clock), "schedule:" + campaign.name: repr(at)})
            self.interp.run_batch(campaign, at)

    def resume_batches(self) -> None:
        """Batch runs an earlier process began and did not finish go on first."""
        for _batch_id, name, slot in self.store.unfinished_batch_runs():
            campaign = self.interp.campaigns.get(name)
            if campaign is not None and campaign.is_batch:
                self.interp.run_batch(campaign, slot)


def replay(
    rule_set: ast.RuleSet,
    world: World,
    events: Iterable[ReplayInputEvent],
    options: ReplayOptions | None = None,
    *,
    store_url: str = MEMORY_URL,
) -> dict[str, Any]:
    """Runs the replay and returns the REPLAY.md result (`runs`, `world`, `errors`).

    With `options.store_path` the replay is durable (see the module doc) and `store_url` is not used."""
    options = options or ReplayOptions()
    events = list(events)
    durable = options.store_path is not None
    store = Store.open(store_url_for(options.store_path) if options.store_path is not None else store_url)
    try:
        state = store.replay_state() if durable else {}
        resuming = state.get("seeded") == "1"
        inputs = _inputs_digest(rule_set, world) if durable else ""
        if resuming:
            _same_inputs(state, inputs, events, options.store_path or "")
        org = LocalOrg(store)
        if not resuming:
            seed_world(store, org, world, rule_set, options.world_source)
        recorder = ResultRecorder(store if durable else None)
        if resuming:
            recorder.load(store)
        interp = Interpreter(
            rule_set,
            store,
            org,
            recorder=recorder,
            max_depth=options.max_depth,
            program_sync=program_sync(enabled=options.program_sync, disabled=options.sync_disabled),
            tracer=options.tracer,
        )
        start = float(state["start"]) if resuming else _ts(world.now)
        interp.set_clock(float(state["clock"]) if resuming else start)
        interp.programs.link_all()
        # after the first link: a campaign the sync made to match has the channel's statuses now
        validate_events(events, store, rule_set)
        cursors = {key.removeprefix("schedule:"): float(v) for key, v in state.items() if key.startswith("schedule:")}
        driver = ReplayDriver(interp, Schedules(interp, start, cursors), durable)
        if not resuming:
            driver.save(
                seeded="1", events="0", start=repr(start), inputs=inputs, events_digest=_events_digest(()).hexdigest()
            )
        driver.resume_batches()
        done = int(state.get("events", "0"))
        processed = _events_digest(events[:done])  # the events a stopped replay processed, then each one after
        for number, item in enumerate(events, start=1):
            if number <= done:  # processed by the process that stopped
                continue
            process_event(interp, item, options.warn, advance=lambda at: driver.run_until(at, at))
            if durable:
                _add_event(processed, item)
                driver.save(events=str(number), events_digest=processed.hexdigest())
            if options.progress is not None and number % 1000 == 0:
                options.progress(number)
        until = _ts(options.until) if options.until is not None else None
        driver.run_until(until, until if until is not None else interp.clock)
        if until is not None and until > interp.clock:
            interp.set_clock(until)
        driver.save()
        store.commit()
        waiting = [
            {
                "campaign": c.campaign,
                "person": store.person_by_id(c.person_id).email,
                "due": iso(c.due_at),
                "run": recorder.run_number(c.run_id),
            }
            for c in store.waiting()
        ]
        return {
            "runs": recorder.runs,
            "world": export_world(store, rule_set, interp.clock),
            "errors": recorder.errors,
            "waiting": waiting,
        }
    finally:
        store.close()


def process_event(
    interp: Interpreter,
    item: ReplayInputEvent,
    warn: Callable[[str], None],
    *,
    advance: Callable[[float], object] | None = None,
) -> None:
    """One event: due continuations first (`advance(at)`, which may run schedule slots too; by default the
    continuations only), then the observation, then the cascade it causes."""
    event = item.event
    store = interp.store
    if event.id is not None:
        if store.seen_event(event.id):
            return
        store.mark_event(event.id)
    at = _ts(event.at) if event.at is not None else interp.clock
    if at < interp.clock:
        warn(
            f"{item.file}:{item.line}: warning: at {iso(at)} is earlier than the clock ({iso(interp.clock)}): "
            "processed at the clock's time"
        )
        at = interp.clock
    (advance or interp.run_due)(at)
    interp.set_clock(at)
    person = store.person(event.person)
    if event.type == "campaign_requested":
        if person is None:
            raise InputError(f"{item.file}:{item.line}: person: no person {event.person} in the world")
        interp.request(person, event.campaign or "", at)
    elif event.type == "program_status_changed":
        if person is None:
            person = store.add_person(event.person)
        status = None if event.status == ast.NOT_IN_PROGRAM else event.status
        interp.observe_program_status(person, event.program or "", status, at)
    else:
        removal = event.type == "removed_from_sfdc_campaign"
        if person is None:
            person = store.add_person(event.person, LocalOrg(store).new_lead_id(), "Lead")
        elif not person.sfdc_id and not removal:
            # it came from Salesforce, so it is there now
            person = store.set_person_sfdc(
                person, LocalOrg(store).new_lead_id(), "Lead", "[not provided]", "[not provided]"
            )
        campaign = (
            store.campaign_by_name(event.campaign)
            if event.campaign is not None
            else store.campaign_by_sfdc_id(event.campaign_id or "")
        )
        assert campaign is not None  # validated up front
        status = None if removal else event.status
        interp.observe_membership(person, campaign, status, at)
    interp.drain()


def _inputs_digest(rule_set: ast.RuleSet, world: World) -> str:
    """What a durable replay must be continued with: the rules (as parsed) and the starting world."""
    digest = hashlib.sha256()
    digest.update(repr((rule_set.campaigns, rule_set.programs, rule_set.channels, rule_set.timezone)).encode())
    digest.update(world.model_dump_json().encode())
    return digest.hexdigest()


def _events_digest(events: Sequence[ReplayInputEvent]) -> hashlib._Hash:
    """A running digest of events processed, in order (`_add_event` takes it one event further)."""
    digest = hashlib.sha256()
    for item in events:
        _add_event(digest, item)
    return digest


def _add_event(digest: hashlib._Hash, item: ReplayInputEvent) -> None:
    digest.update(item.event.model_dump_json().encode() + b"\n")


def _same_inputs(state: dict[str, str], inputs: str, events: Sequence[ReplayInputEvent], path: str) -> None:
    """A stopped replay goes on only with its own rules, world and the events it already processed (more
    events after them are fine): anything else would mix two replays in one state."""
    if state.get("inputs", inputs) != inputs:
        raise InputError(
            f"--store {path}: it holds a replay of other rules or another world; continue it with the same "
            "rules and world, or give a new file"
        )
    done = int(state.get("events", "0"))
    if len(events) < done:
        raise InputError(
            f"--store {path}: it has processed {done} events, and only {len(events)} were given; continue it "
            "with the same events (more may follow them)"
        )
    given = _events_digest(events[:done]).hexdigest()
    if state.get("events_digest", given) != given:
        raise InputError(
            f"--store {path}: the first {done} events differ from the ones it processed; continue it with the "
            "same events (more may follow them)"
        )
