"""Batch campaigns in the service: the scheduler that queues their runs, and the listing of their next runs.

When a batch campaign's schedule comes (by the wall clock, in the campaign's time zone), the scheduler selects its
members (`engine.runtime.batch.select_batch`) and puts one inbox item per person (`queue.BatchMember`) into the
inbox, in ONE transaction with the advance of the campaign's schedule cursor (`service_cursors`,
`schedule:<campaign>` = the last slot handled). A crash before the commit selects again; a crash after it has
queued everyone once; the inbox's exactly-once processing does the rest (the worker runs each item with
`Interpreter.run_batch_member`, under the person's lock, in order with their other events). Each item's id is
`batch:<campaign>:<slot>:<email>`, so even two schedulers that raced would queue nobody twice; on PostgreSQL an
advisory lock lets one scheduler at a time decide (`serve` and any number of `worker`s run one each).

A campaign seen for the first time starts its cursor at now (no past slots run). Slots that came while no
scheduler ran are run ONCE, for the latest of them, and the log says how many were missed. A rules reload that
changes a schedule keeps the cursor (it is the campaign's, by name).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.crm.local import LocalOrg
from engine.language import ast
from engine.runtime import calendar
from engine.runtime.interpreter import Interpreter
from engine.service import queue
from engine.service.metrics import ServiceMetrics
from engine.service.rules import RuleBook
from engine.store.store import Store

log = logging.getLogger("smartcampaign.service")

SCHEDULE_LOCK = 0x5C_0003  # advisory lock: one scheduler at a time queues batch runs
CURSOR_PREFIX = "schedule:"
TICK = 1.0  # seconds: the longest the scheduler sleeps between looks at the schedules
LATE = 60.0  # seconds: a slot handled later than this after it came is reported as missed
CURSOR_RELOAD = 60.0  # seconds: how long cursors read from the store are trusted before they are read again


def cursor_name(campaign: str) -> str:
    """The campaign's schedule cursor in `service_cursors` (a name too long for the column is hashed)."""
    name = CURSOR_PREFIX + campaign
    if len(name) <= 64:
        return name
    return f"{CURSOR_PREFIX}{campaign[:30]}#{hashlib.sha256(campaign.encode()).hexdigest()[:24]}"


def iso_utc(ts: float) -> str:
    """`2026-12-07T09:00:00Z` (with a fraction when there is one): how cursors are written."""
    moment = datetime.fromtimestamp(ts, UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def iso_minute(ts: float) -> str:
    """`2026-12-07T09:00Z`: a slot as the log and the item ids name it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def batch_campaigns(rule_set: ast.RuleSet) -> list[ast.Campaign]:
    return [campaign for campaign in rule_set.campaigns if campaign.schedule is not None]


def batch_item_id(campaign: str, slot: float, email: str) -> str:
    return queue.item_id(f"batch:{campaign}:{iso_minute(slot)}:{queue.partition_of(email)}")


# ---------------------------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class Upcoming:
    """A batch campaign's next runs, as `smartcampaign schedule` and GET /campaigns show them."""

    campaign: str
    schedule: str  # in the rule language's words
    timezone: str
    runs: tuple[float, ...]  # UTC seconds, in order (fewer than asked for: a one-time schedule)
    limit: int | None
    active: bool

    def local(self, ts: float) -> str:
        """A run in the campaign's zone with its offset: `2026-12-14T09:00+01:00`."""
        return datetime.fromtimestamp(ts, calendar.zone(self.timezone)).isoformat(timespec="minutes")

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "limit": self.limit,
            "active": self.active,
            "next_runs": [{"local": self.local(ts), "utc": iso_minute(ts)} for ts in self.runs],
        }


def parse_moment(text: str) -> float:
    """`--from`: `2026-12-07T09:00`, `2026-12-07 09:00:30`, `2026-12-07` (midnight), with `Z` or an offset;
    without one, UTC. ValueError when it is no such moment."""
    value = text.strip()
    moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def upcoming(rule_set: ast.RuleSet, after: float, count: int = 3) -> list[Upcoming]:
    """The next `count` runs of every batch campaign strictly after `after`, in declaration order."""
    out: list[Upcoming] = []
    for campaign in batch_campaigns(rule_set):
        schedule = campaign.schedule
        assert schedule is not None
        tz = rule_set.zone_of(campaign)
        runs: list[float] = []
        cursor = after
        while len(runs) < count:
            slot = calendar.next_slot(schedule, tz, cursor)
            if slot is None:
                break
            runs.append(slot)
            cursor = slot
        out.append(Upcoming(campaign.name, schedule.describe(), tz, tuple(runs), campaign.limit, campaign.active))
    return out


# ---------------------------------------------------------------------------------------------- scheduler
@dataclass(frozen=True)
class ScheduledRun:
    """One scheduled run queued (or found already queued by another scheduler: `queued` 0)."""

    campaign: str
    slot: float
    missed: int  # slots that came since the cursor (1 when on time)
    queued: int  # persons put into the inbox
    late: bool  # handled more than LATE seconds after the slot


class Scheduler:
    """Queues the runs of batch campaigns when their schedules come. `tick()` does one look (tests call it with a
    fake clock, `now`); `run(stop)` loops, sleeping until the earliest next slot or TICK seconds."""

    def __init__(
        self,
        url: str,
        rules: RuleBook,
        metrics: ServiceMetrics | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.rules = rules
        self.metrics = metrics
        self.now = now
        self.store = Store.open(url)
        self._interp: Interpreter | None = None
        self._version = -1
        self._cursors: dict[str, float] = {}  # campaign -> last slot handled, as last read or written
        self._cursors_read_at = float("-inf")
        self._next_due = 0.0  # wall-clock time of the earliest next slot (0: look now)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------------------ loop
    def run(self, stop: threading.Event) -> None:
        log.info("scheduler started")
        errors = 0
        while not stop.is_set():
            try:
                self.tick()
                errors = 0
                pause = self.sleep_for()
            except Exception as error:
                errors += 1
                log.error("scheduler: %s: %s", type(error).__name__, error)
                try:
                    self.store.rollback()
                except Exception as reopen:
                    log.error("scheduler: the store is not reachable: %s", reopen)
                    self._reopen()
                pause = min(0.5 * 2**errors, 30.0)
            stop.wait(pause)
        self.close()

    def _reopen(self) -> None:
        try:
            self.store.close()
        except Exception as error:
            log.debug("scheduler: closing a broken store: %s", error)
        self.store = Store.open(self.url)
        self._interp = None
        self._cursors_read_at = float("-inf")

    def sleep_for(self) -> float:
        """Seconds until the next look: the earliest next slot, or TICK."""
        return min(max(self._next_due - self.now(), 0.0), TICK)

    # ------------------------------------------------------------------------------ one look
    def tick(self) -> list[ScheduledRun]:
        """Queues every batch run that is due now; returns them. Cheap when none is due (no query, once the
        cursors are known)."""
        rule_set, version = self.rules.current()
        campaigns = batch_campaigns(rule_set)
        self._next_due = float("inf")
        if not campaigns:
            return []
        t = self.now()
        if version != self._version or time.monotonic() - self._cursors_read_at > CURSOR_RELOAD:
            self._read_cursors()
            self._version = version
        missing = [c.name for c in campaigns if c.name not in self._cursors]
        if missing:
            self._start_cursors(missing, t)
        done: list[ScheduledRun] = []
        for campaign in campaigns:
            schedule = campaign.schedule
            assert schedule is not None
            tz = rule_set.zone_of(campaign)
            cursor = self._cursors[campaign.name]
            upcoming_slot = calendar.next_slot(schedule, tz, cursor)
            if upcoming_slot is not None and upcoming_slot <= t:
                run = self._queue_run(rule_set, campaign, t)
                if run is not None:
                    done.append(run)
                upcoming_slot = calendar.next_slot(schedule, tz, self._cursors[campaign.name])
            if upcoming_slot is not None:
                self._next_due = min(self._next_due, upcoming_slot)
        return done

    def _read_cursors(self) -> None:
        rows = self.store.fetchall("SELECT name, value FROM service_cursors WHERE name LIKE ?", (CURSOR_PREFIX + "%",))
        self.store.commit()
        by_name = {str(name): str(value) for name, value in rows}
        rule_set, _ = self.rules.current()
        self._cursors = {}
        for campaign in batch_campaigns(rule_set):
            value = by_name.get(cursor_name(campaign.name))
            if value is not None:
                self._cursors[campaign.name] = parse_utc(value)
        self._cursors_read_at = time.monotonic()

    def _start_cursors(self, names: list[str], t: float) -> None:
        """Campaigns seen for the first time start at now: no past slot runs. Another scheduler may have started
        one first; its value stands."""
        store = self.store
        try:
            for name in names:
                store.execute(
                    "INSERT INTO service_cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    (cursor_name(name), iso_utc(t)),
                )
            rows = store.fetchall("SELECT name, value FROM service_cursors WHERE name LIKE ?", (CURSOR_PREFIX + "%",))
            store.commit()
        except Exception:
            store.rollback()
            raise
        by_name = {str(name): str(value) for name, value in rows}
        for name in names:
            self._cursors[name] = parse_utc(by_name[cursor_name(name)])
            log.info('batch campaign "%s": schedule starts at %s (no earlier runs)', name, iso_utc(self._cursors[name]))

    def _interpreter(self, rule_set: ast.RuleSet) -> Interpreter:
        if self._interp is None or self._interp.rules is not rule_set:
            self._interp = Interpreter(rule_set, self.store, LocalOrg(self.store))
        return self._interp

    def _queue_run(self, rule_set: ast.RuleSet, campaign: ast.Campaign, t: float) -> ScheduledRun | None:
        """Under the scheduling lock: the cursor read again, the members selected and queued, the cursor moved to
        the slot, all in one transaction."""
        from engine.runtime.batch import select_batch

        store = self.store
        schedule = campaign.schedule
        assert schedule is not None
        tz = rule_set.zone_of(campaign)
        name = cursor_name(campaign.name)
        try:
            if store.dialect == "postgresql":
                store.fetchone("SELECT pg_advisory_xact_lock(?)", (SCHEDULE_LOCK,))
            current = queue.get_cursor(store, name)
            cursor = parse_utc(current) if current is not None else t
            slot, count = calendar.last_slot(schedule, tz, cursor, t)
            if slot is None:  # another scheduler handled it
                store.commit()
                self._cursors[campaign.name] = cursor
                return None
            late = t - slot > LATE
            store.clear_caches()  # the workers change the mirror: nothing cached is trusted
            queued = 0
            if campaign.active:
                interp = self._interpreter(rule_set)
                interp.set_clock(slot)
                members = select_batch(interp, campaign, slot)
                items = [
                    queue.BatchMember(
                        person=person.email,
                        campaign=campaign.name,
                        slot=datetime.fromtimestamp(slot, UTC),
                        id=batch_item_id(campaign.name, slot, person.email),
                    )
                    for person in members
                ]
                queued = queue.put_events(store.conn, items, source="schedule").accepted
            queue.set_cursor(store, name, iso_utc(slot))
            store.commit()
        except Exception:
            store.rollback()
            raise
        self._cursors[campaign.name] = slot
        run = ScheduledRun(campaign.name, slot, count, queued, late)
        self._report(campaign, run)
        return run

    def _report(self, campaign: ast.Campaign, run: ScheduledRun) -> None:
        when = iso_minute(run.slot)
        if not campaign.active:
            log.info('batch campaign "%s" is not active: its run for %s is skipped', campaign.name, when)
            return
        if run.missed > 1 or run.late:
            runs = "1 scheduled run was" if run.missed == 1 else f"{run.missed} scheduled runs were"
            log.warning(
                'batch campaign "%s": %s missed while the service was down; running once for %s (%d persons queued)',
                campaign.name, runs, when, run.queued,
            )  # fmt: skip
        else:
            log.info('batch campaign "%s": run for %s, %d persons queued', campaign.name, when, run.queued)
        if self.metrics is not None:
            self.metrics.scheduled_runs.labels(campaign=campaign.name).inc()
            if run.queued:
                self.metrics.batch_members_queued.labels(campaign=campaign.name).inc(run.queued)
