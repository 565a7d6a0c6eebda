"""The change poller: Salesforce's campaign memberships, read as observations for the interpreter.

One cycle (`Poller.poll_once`):

0. **Server time and deletions.** `sobjects/CampaignMember/deleted` from the deletion cursor (less the overlap)
   over a 29-day window; Salesforce cuts the window at its own current minute and says so in
   `latestDateCovered`, which is this cycle's high-water mark `T` (the server's clock, not ours). When
   `earliestDateAvailable` is after the deletion cursor (the delete log was purged since the last cycle) or the
   cursor is too old to ask about, deletions were missed: the cycle is a **full resync**. So is the first cycle.
1. **Campaigns.** `Campaign` rows changed since the campaign cursor (all of them on a resync) are added to the
   mirror or update its name, type and actual cost; campaigns whose `CampaignMemberStatus` rows changed
   (queryAll, so deleted statuses count) or that are new get their status list (labels by SortOrder, the
   default, the responded ones) refreshed.
2. **Members.** ONE paged query (2,000 rows a page, every page retried on its own):
   `CampaignMember WHERE SystemModstamp >= cursor - overlap ORDER BY SystemModstamp, Id` (no WHERE on a resync),
   with `Lead.Email` and `Contact.Email` so that persons the mirror does not know yet are created from the same
   rows, without another call. A row whose (Id, SystemModstamp) was already observed is skipped (the overlap
   window reads some rows twice).
3. **Observations.** Members and deletions are merged in time order and observed: through
   `Interpreter.observe_membership` (then `drain()`, so triggers run) when an interpreter is given; handed to
   the `sink` as `Observation`s when one is given (the mirror's memberships are then left to whoever consumes
   them: the service's worker, through its inbox); else written to the mirror directly. A deletion is mapped
   back to (person, campaign) through the `member_ids` table (engine/store/cursors.py); ids never seen are
   looked up with queryAll. On a resync, every mirror membership Salesforce no longer has is observed as a
   removal.
4. **Commit, then cursors.** `before_commit()` when given (the service puts the sink's observations into its
   inbox there, in the transaction that also records which members were observed), then `store.commit()`;
   only then do the cursors move (to `max(T, newest SystemModstamp seen)`) in a second commit. A failure
   before the first commit rolls the cycle back and the next cycle reads the same window again; observations
   are diffs against the mirror, so reading twice is harmless.

The first sync (the initial load) always writes the mirror directly and fires nothing, sink or interpreter.

Persons are found by Salesforce id (ContactId first, then LeadId), then by email (a person the engine created
and that is now in Salesforce gets linked). A member whose Lead/Contact has no email, or whose email belongs to
another Salesforce person in the mirror, is skipped and reported: the mirror keys persons by email, and
inventing an address would create a person nobody can match later.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from engine.crm.salesforce import CONTACT_PREFIX, SalesforceAdapter, SalesforceUnavailable
from engine.store.cursors import TOMBSTONE, MemberIds, ensure_tables, get_cursor, set_cursor
from engine.store.store import CampaignInfo, Person, Store

if TYPE_CHECKING:
    from engine.runtime.interpreter import Interpreter

log = logging.getLogger("smartcampaign.sync")

DEFAULT_OVERLAP_SECONDS = 60
MAX_PROBLEMS = 20
IN_CHUNK = 200  # ids per `IN (...)`: keeps the query string well under Salesforce's URL limits
DELETED_SPAN = timedelta(days=29)  # getDeleted refuses windows longer than 30 days

CURSOR_DELETED = "campaign_member.deleted"
CURSOR_MEMBERS = "campaign_member.modstamp"
CURSOR_CAMPAIGNS = "campaign.modstamp"
CURSOR_STATUSES = "campaign_member_status.modstamp"

MEMBER_FIELDS = "Id, CampaignId, LeadId, ContactId, Status, SystemModstamp, Lead.Email, Contact.Email"


class SyncError(Exception):
    """Salesforce refused a request of the poller for a reason retrying will not fix (a malformed query, a field
    the user cannot see). The message names the request and Salesforce's error, never a credential."""


# ---------------------------------------------------------------------------------------------- time
def parse_stamp(text: str) -> datetime:
    """Salesforce's `2026-11-28T21:40:00.000+0000` (or any ISO 8601 form) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_stamp(value: datetime) -> str:
    """The wire form Salesforce answers with (milliseconds, +0000)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def soql_datetime(value: datetime) -> str:
    """A SOQL date-time literal (UTC, `Z`)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------- report
@dataclass
class PollReport:
    """What one cycle saw and did."""

    members_seen: int = 0  # CampaignMember rows read
    duplicates_skipped: int = 0  # rows already observed with the same SystemModstamp (overlap window)
    added: int = 0
    status_changed: int = 0
    removed: int = 0
    unchanged: int = 0
    deletions_seen: int = 0  # ids getDeleted returned (or, on a resync, mirror members Salesforce lacks)
    deletions_repeated: int = 0  # deletions already observed (read again in the overlap window)
    persons_created: int = 0
    persons_linked: int = 0  # persons the engine knew by email, now known in Salesforce too
    skipped: int = 0  # rows that could not be observed (see problems)
    campaigns_added: int = 0
    campaigns_refreshed: int = 0  # added or changed (name, type, actual cost)
    statuses_refreshed: int = 0  # campaigns whose member statuses changed
    api_calls: int = 0
    resync: bool = False
    resync_reason: str | None = None
    cursor_before: str | None = None
    cursor_after: str | None = None
    deleted_cursor_before: str | None = None
    deleted_cursor_after: str | None = None
    server_time: str | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    problems_total: int = 0

    def problem(self, message: str) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        log.info("sync: %s", message)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


# ---------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class MemberRow:
    id: str
    campaign_id: str
    lead_id: str | None
    contact_id: str | None
    status: str
    modstamp: str
    at: datetime
    email: str | None


def _member_row(record: dict[str, Any]) -> MemberRow:
    lead, contact = record.get("Lead"), record.get("Contact")
    contact_email = contact.get("Email") if isinstance(contact, dict) else None
    lead_email = lead.get("Email") if isinstance(lead, dict) else None
    stamp = str(record["SystemModstamp"])
    return MemberRow(
        id=str(record["Id"]),
        campaign_id=str(record["CampaignId"]),
        lead_id=record.get("LeadId") or None,
        contact_id=record.get("ContactId") or None,
        status=str(record.get("Status") or ""),
        modstamp=stamp,
        at=parse_stamp(stamp),
        email=(contact_email or lead_email or None),
    )


@dataclass(frozen=True, slots=True)
class Deletion:
    id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """One membership change seen in Salesforce, for a sink: "person is in campaign with status" (or, with
    `status` None, "person is no longer in campaign"). `kind` is "added" when neither the mirror nor an earlier
    observation (the `member_ids` table) has the pair as a member, else "status_changed" (a sink's consumer may be
    behind or ahead: it should diff against its own state, not trust `kind`). `id` is stable across cycles:
    `<CampaignMember id>:<SystemModstamp>`, `<CampaignMember id>:deleted:<deletedDate>` for a deletion (on a full
    resync, the server time stands for the unknown deletion date)."""

    kind: Literal["added", "status_changed", "removed"]
    email: str
    person_sfdc_id: str | None
    person_sfdc_type: str | None
    campaign: str
    campaign_sfdc_id: str
    status: str | None
    at: datetime
    id: str


# ---------------------------------------------------------------------------------------------- poller
class Poller:
    """Polls Salesforce for campaign membership changes and feeds them to the mirror (and the interpreter)."""

    def __init__(
        self,
        adapter: SalesforceAdapter,
        store: Store,
        interpreter: Interpreter | None = None,
        *,
        overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
        sink: Callable[[Observation], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        """`sink`, when given, receives every observation of a cycle after the first instead of the interpreter
        or the mirror (not both: an interpreter and a sink are exclusive). `before_commit`, when given, is called
        at the end of every successful cycle, right before the store commits the cycle's work: what it writes on
        the store is committed with it (or rolled back with it if the commit fails)."""
        if interpreter is not None and interpreter.store is not store:
            raise ValueError("the interpreter must work on the poller's store")
        if interpreter is not None and sink is not None:
            raise ValueError("the poller observes through an interpreter or a sink, not both")
        self.adapter = adapter
        self.store = store
        self.interpreter = interpreter
        self.sink = sink
        self.before_commit = before_commit
        self._initial_load = False
        self.overlap = timedelta(seconds=overlap_seconds)
        self.members = MemberIds(store)
        self._persons: dict[str, Person] = {}

    # ------------------------------------------------------------------------------------------ the cycle
    def poll_once(self, now: datetime | None = None) -> PollReport:
        """One cycle; returns what it saw. Raises `SalesforceUnavailable` (and its subclasses: `QuotaExceeded`,
        `AuthenticationError`) or `SyncError`, after rolling the store back: nothing of the cycle is stored and the
        cursors stay. The cycle commits the store (twice), and rolls it back on failure: give it a store with no
        pending work of yours. `now` (default: the local clock) only places the window that asks Salesforce for
        its time on a first sync; the cursors come from Salesforce's clock."""
        started = time.perf_counter()
        calls_before = self.adapter.calls
        now = (now or datetime.now(UTC)).astimezone(UTC)
        store = self.store
        ensure_tables(store)
        report = PollReport()
        deleted_cursor = get_cursor(store, CURSOR_DELETED)
        member_cursor = get_cursor(store, CURSOR_MEMBERS)
        campaign_cursor = get_cursor(store, CURSOR_CAMPAIGNS)
        status_cursor = get_cursor(store, CURSOR_STATUSES)
        report.cursor_before, report.deleted_cursor_before = member_cursor, deleted_cursor
        self._persons = {}
        try:
            server_time, deletions, resync_reason = self._deletions(deleted_cursor, member_cursor, now)
            self._initial_load = deleted_cursor is None or member_cursor is None
            report.server_time = format_stamp(server_time)
            report.resync = resync_reason is not None
            report.resync_reason = resync_reason
            newest_campaign, newest_status = self._refresh_campaigns(
                report, None if report.resync else campaign_cursor, None if report.resync else status_cursor
            )
            rows = self._read_members(None if report.resync else member_cursor)
            report.members_seen = len(rows)
            if report.resync:
                self._observe_all(report, rows, server_time)
            else:
                report.deletions_seen = len(deletions)
                self._observe_changes(report, rows, deletions)
                self.members.prune(_tombstone_stamp(parse_stamp(deleted_cursor or "") - 2 * self.overlap))
            newest_member = max((row.at for row in rows), default=None)
            if self.interpreter is not None:
                # After the members are mirrored: a program links against what its campaign really holds (the
                # first copy is set-up and fires nothing). Type and Actual Cost changed in Salesforce are put back.
                self.interpreter.programs.link_all()
                self.interpreter.programs.refresh_fields()
                self.interpreter.drain()
                flush = getattr(self.interpreter.crm, "flush", None)
                if callable(flush):
                    flush()  # batched flow actions reach Salesforce before the cursors move
        except BaseException:
            store.rollback()
            raise
        # the observations first: the cursors move only once they are stored
        try:
            if self.before_commit is not None:
                self.before_commit()
            store.commit()
        except BaseException:
            store.rollback()
            raise
        moved = {
            CURSOR_DELETED: server_time,
            CURSOR_MEMBERS: _latest(server_time, member_cursor, newest_member),
            CURSOR_CAMPAIGNS: _latest(server_time, campaign_cursor, newest_campaign),
            CURSOR_STATUSES: _latest(server_time, status_cursor, newest_status),
        }
        for name, value in moved.items():
            set_cursor(store, name, format_stamp(value))
        store.commit()
        report.cursor_after = format_stamp(moved[CURSOR_MEMBERS])
        report.deleted_cursor_after = format_stamp(server_time)
        report.api_calls = self.adapter.calls - calls_before
        report.seconds = time.perf_counter() - started
        return report

    def refresh_catalog(self) -> PollReport:
        """Every Salesforce campaign and its member statuses into the mirror, now (step 1 of a full resync),
        without moving any cursor. The caller commits (or rolls back)."""
        report = PollReport()
        calls_before = self.adapter.calls
        self._refresh_campaigns(report, None, None)
        report.api_calls = self.adapter.calls - calls_before
        return report

    # ------------------------------------------------------------------------------------------ API calls
    def _call(self, what: str, fn: Callable[[Salesforce], Any]) -> Any:
        try:
            return self.adapter.call(what, fn)
        except SalesforceUnavailable:
            raise
        except SalesforceError as error:
            raise SyncError(f"Salesforce refused {what}: {_describe_error(error)}") from None

    def _pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of a query, page by page (2,000 a page); each page is retried on its own."""
        what = "queryAll" if include_deleted else "query"
        page = self._call(what, lambda sf: sf.query(soql, include_deleted=include_deleted))
        while True:
            yield from page.get("records", [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._call(f"{what} (next page)", _query_more(str(next_url)))

    # ------------------------------------------------------------------------------------------ step 0
    def _deletions(
        self, deleted_cursor: str | None, member_cursor: str | None, now: datetime
    ) -> tuple[datetime, list[Deletion], str | None]:
        """(server time T, deletions since the cursor, why a full resync is needed or None)."""
        if deleted_cursor is None or member_cursor is None:
            covered, _, _ = self._get_deleted(now - timedelta(days=1), now)
            return covered, [], "first sync: no cursor yet"
        cursor = parse_stamp(deleted_cursor)
        try:
            covered, found, earliest = self._get_deleted(cursor - self.overlap, now)
        except SyncError as error:
            if "INVALID_REPLICATION_DATE" not in str(error):
                raise
            # only to learn the server's time: the latest start Salesforce may accept (our clock may be behind)
            covered, _, _ = self._get_deleted(max(now - timedelta(days=1), cursor + DELETED_SPAN), now)
            return covered, [], f"deletions since {deleted_cursor} can no longer be asked for ({error})"
        if earliest is not None and earliest > cursor:
            return (
                covered,
                [],
                f"deletions before {format_stamp(earliest)} are no longer available and the last sync was at "
                f"{deleted_cursor}: some may have been missed",
            )
        return covered, found, None

    def _get_deleted(self, start: datetime, now: datetime) -> tuple[datetime, list[Deletion], datetime | None]:
        """getDeleted from `start` over the longest window Salesforce allows: it stops at its own current minute
        and says where in `latestDateCovered`, so the server's clock, not ours, decides what is covered."""
        end = start + DELETED_SPAN
        params = {"start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds")}
        answer = self._call(
            "getDeleted CampaignMember", lambda sf: sf.restful("sobjects/CampaignMember/deleted/", params=params)
        )
        found = [
            Deletion(str(item["id"]), parse_stamp(str(item["deletedDate"])))
            for item in answer.get("deletedRecords") or []
        ]
        covered_text = answer.get("latestDateCovered")
        covered = parse_stamp(str(covered_text)) if covered_text else min(now, end)
        earliest_text = answer.get("earliestDateAvailable")
        earliest = parse_stamp(str(earliest_text)) if earliest_text else None
        return covered, found, earliest

    # ------------------------------------------------------------------------------------------ step 1
    def _refresh_campaigns(
        self, report: PollReport, campaign_cursor: str | None, status_cursor: str | None
    ) -> tuple[datetime | None, datetime | None]:
        """Campaigns and their member statuses. Returns the newest SystemModstamps seen (campaign, status)."""
        store = self.store
        soql = "SELECT Id, Name, Type, ActualCost, SystemModstamp FROM Campaign"
        if campaign_cursor is not None:
            soql += f" WHERE SystemModstamp >= {soql_datetime(parse_stamp(campaign_cursor) - self.overlap)}"
        campaigns = list(self._pages(soql + " ORDER BY SystemModstamp, Id"))
        newest_campaign = max((parse_stamp(str(c["SystemModstamp"])) for c in campaigns), default=None)

        statuses: dict[str, list[dict[str, Any]]] = {}
        newest_status: datetime | None = None
        fields = "CampaignId, Label, IsDefault, HasResponded, SortOrder, SystemModstamp"
        if status_cursor is None:
            for row in self._pages(f"SELECT {fields} FROM CampaignMemberStatus ORDER BY CampaignId, SortOrder"):
                statuses.setdefault(str(row["CampaignId"]), []).append(row)
                stamp = parse_stamp(str(row["SystemModstamp"]))
                newest_status = stamp if newest_status is None else max(newest_status, stamp)
        else:
            since = soql_datetime(parse_stamp(status_cursor) - self.overlap)
            wanted: set[str] = set()
            for row in self._pages(
                f"SELECT CampaignId, SystemModstamp FROM CampaignMemberStatus WHERE SystemModstamp >= {since}",
                include_deleted=True,
            ):
                wanted.add(str(row["CampaignId"]))
                stamp = parse_stamp(str(row["SystemModstamp"]))
                newest_status = stamp if newest_status is None else max(newest_status, stamp)
            wanted.update(str(c["Id"]) for c in campaigns if store.campaign_by_sfdc_id(str(c["Id"])) is None)
            ordered = sorted(wanted)
            for start in range(0, len(ordered), IN_CHUNK):
                chunk = ordered[start : start + IN_CHUNK]
                soql_chunk = format_soql(
                    f"SELECT {fields} FROM CampaignMemberStatus WHERE CampaignId IN {{ids}} "
                    "ORDER BY CampaignId, SortOrder",
                    ids=chunk,
                )
                for row in self._pages(soql_chunk):
                    statuses.setdefault(str(row["CampaignId"]), []).append(row)
                for campaign_id in chunk:
                    statuses.setdefault(campaign_id, [])

        for row in campaigns:
            self._apply_campaign(report, row, statuses)
        for campaign_id, rows in statuses.items():
            info = store.campaign_by_sfdc_id(campaign_id)
            if info is not None:
                self._apply_statuses(report, info, rows)
        return newest_campaign, newest_status

    def _apply_campaign(
        self, report: PollReport, row: dict[str, Any], statuses: dict[str, list[dict[str, Any]]]
    ) -> None:
        store = self.store
        sfdc_id, name = str(row["Id"]), str(row.get("Name") or "")
        ctype = row.get("Type") or None
        cost = float(row["ActualCost"]) if row.get("ActualCost") is not None else None
        info = store.campaign_by_sfdc_id(sfdc_id)
        if info is None:
            same_name = store.campaign_by_name(name)
            if same_name is not None:
                report.problem(
                    f'campaign {sfdc_id} "{name}" is not mirrored: campaign {same_name.sfdc_id} has the same name '
                    "(rules name campaigns by name: rename one in Salesforce)"
                )
                return
            labels, default, responded = _status_lists(statuses.get(sfdc_id, []))
            if not labels:
                report.problem(f'campaign {sfdc_id} "{name}" has no member statuses: not mirrored yet')
                return
            campaign_id = store.add_campaign(name, sfdc_id, labels, default)
            store.set_campaign_statuses(campaign_id, labels, default, responded)
            if ctype is not None or cost is not None:
                store.set_campaign_fields(campaign_id, ctype, cost)
            report.campaigns_added += 1
            report.campaigns_refreshed += 1
            return
        changed = False
        if info.name != name:
            same_name = store.campaign_by_name(name)
            if same_name is not None and same_name.id != info.id:
                report.problem(
                    f'campaign {sfdc_id} was renamed "{name}" in Salesforce, but campaign {same_name.sfdc_id} has '
                    f'that name: the mirror keeps "{info.name}"'
                )
            else:
                store.rename_campaign(info.id, name)
                changed = True
        if info.type != ctype or info.actual_cost != cost:
            store.set_campaign_fields(info.id, ctype, cost)
            changed = True
        if changed:
            report.campaigns_refreshed += 1

    def _apply_statuses(self, report: PollReport, info: CampaignInfo, rows: list[dict[str, Any]]) -> None:
        labels, default, responded = _status_lists(rows)
        if not labels:
            return
        if (tuple(labels), default, frozenset(responded)) == (info.statuses, info.default_status, info.responded):
            return
        self.store.set_campaign_statuses(info.id, labels, default, responded)
        report.statuses_refreshed += 1
        # the adapters validate flow statuses against their own cached labels: those are stale now
        for crm in {id(c): c for c in (self.adapter, getattr(self.interpreter, "crm", None)) if c is not None}.values():
            forget = getattr(crm, "forget_statuses", None)
            if callable(forget):
                forget(info.sfdc_id)

    # ------------------------------------------------------------------------------------------ step 2
    def _read_members(self, member_cursor: str | None) -> list[MemberRow]:
        soql = f"SELECT {MEMBER_FIELDS} FROM CampaignMember"
        if member_cursor is not None:
            soql += f" WHERE SystemModstamp >= {soql_datetime(parse_stamp(member_cursor) - self.overlap)}"
        return [_member_row(record) for record in self._pages(soql + " ORDER BY SystemModstamp, Id")]

    def _person(self, report: PollReport, row: MemberRow, *, create: bool = True) -> Person | None:
        """The mirror's person for a member row (created when new), or None (reported) when it cannot be."""
        store = self.store
        for sfdc_id in (row.contact_id, row.lead_id):
            if sfdc_id is None:
                continue
            cached = self._persons.get(sfdc_id)
            if cached is not None:
                return cached
            found = store.person_by_sfdc_id(sfdc_id)
            if found is not None:
                self._persons[sfdc_id] = found
                return found
        if not create:
            return None
        sfdc_id = row.contact_id or row.lead_id
        if sfdc_id is None:
            report.problem(f"campaign member {row.id} has neither a LeadId nor a ContactId")
            return None
        sfdc_type = "Contact" if sfdc_id.startswith(CONTACT_PREFIX) else "Lead"
        if not row.email:
            report.problem(f"{sfdc_type} {sfdc_id} has no email: its membership {row.id} is not mirrored")
            return None
        existing = store.person(row.email)
        if existing is not None:
            if existing.sfdc_id and existing.sfdc_id[:15] != sfdc_id[:15]:
                report.problem(
                    f"{sfdc_type} {sfdc_id} has the email of {existing.sfdc_id} ({row.email}): its membership "
                    f"{row.id} is not mirrored (the mirror keys persons by email; merge the duplicates)"
                )
                return None
            person = store.set_person_sfdc(existing, sfdc_id, sfdc_type, "[not provided]", "[not provided]")
            report.persons_linked += 1
        else:
            person = store.add_person(row.email, sfdc_id, sfdc_type)
            report.persons_created += 1
        self._persons[sfdc_id] = person
        return person

    # ------------------------------------------------------------------------------------------ step 3
    def _observe(
        self,
        report: PollReport,
        person: Person,
        campaign: CampaignInfo,
        status: str | None,
        at: datetime,
        key: Callable[[], str] | None = None,
    ) -> None:
        """`key` makes the observation's stable id (for a sink)."""
        current = self.store.memberships(person.id).get(campaign.id)
        if self.sink is not None and not self._initial_load:
            # The sink's consumer applies the observation later, on its own view of the mirror: nothing is
            # skipped as unchanged here (a change it has not applied yet may stand between), it diffs then.
            kind: Literal["added", "status_changed", "removed"]
            if status is None:
                kind = "removed"
                report.removed += 1
            elif current is None and not self._observed_live(person.id, campaign.id):
                kind = "added"
                report.added += 1
            else:
                kind = "status_changed"
                report.status_changed += 1
            stable = key() if key is not None else f"{person.sfdc_id or person.email}:{campaign.sfdc_id}:{at}"
            self.sink(
                Observation(
                    kind=kind,
                    email=person.email,
                    person_sfdc_id=person.sfdc_id,
                    person_sfdc_type=person.sfdc_type,
                    campaign=campaign.name,
                    campaign_sfdc_id=campaign.sfdc_id,
                    status=status,
                    at=at,
                    id=stable,
                )
            )
            return
        if current == status:
            report.unchanged += 1
            return
        if status is None:
            report.removed += 1
        elif current is None:
            report.added += 1
        else:
            report.status_changed += 1
        ts = at.timestamp()
        interp = self.interpreter
        if interp is None:
            if status is None:
                self.store.remove_membership(person.id, campaign.id)
            else:
                self.store.set_membership(person.id, campaign.id, status, ts)
            return
        ts = max(ts, interp.clock)
        interp.run_due(ts)
        interp.set_clock(ts)
        interp.observe_membership(person, campaign, status, ts)
        if self._initial_load:
            # The first sync copies what Salesforce already holds: set-up, not activity. Nothing fires (as with
            # a program's first link); from the next cycle on, every change does.
            interp.queue.clear()
            return
        interp.drain()

    def _observed_live(self, person_id: int, campaign_id: int) -> bool:
        """Whether an earlier cycle observed the pair as a member, not deleted since (what a sink has been told,
        whether or not its consumer has applied it to the mirror yet)."""
        member_id = self.members.member_of(person_id, campaign_id)
        known = self.members.lookup(member_id) if member_id is not None else None
        return known is not None and not known[2].startswith(TOMBSTONE)

    def _observe_row(self, report: PollReport, row: MemberRow) -> tuple[Person, CampaignInfo] | None:
        campaign = self.store.campaign_by_sfdc_id(row.campaign_id)
        if campaign is None:
            report.skipped += 1
            report.problem(f"campaign member {row.id}: campaign {row.campaign_id} is not in the mirror")
            return None
        person = self._person(report, row)
        if person is None:
            report.skipped += 1
            return None
        self._observe(report, person, campaign, row.status, row.at, lambda: f"{row.id}:{row.modstamp}")
        return person, campaign

    def _observe_changes(self, report: PollReport, rows: Sequence[MemberRow], deletions: Sequence[Deletion]) -> None:
        """Incremental: new and changed members and deletions, in time order (a deletion first on a tie)."""
        fresh: list[MemberRow] = []
        for row in rows:
            seen = self.members.lookup(row.id)
            if seen is not None and seen[2] == row.modstamp:
                report.duplicates_skipped += 1
            else:
                fresh.append(row)
        unknown = [d.id for d in deletions if self.members.lookup(d.id) is None]
        resolved = self._resolve_deleted(unknown) if unknown else {}
        events: list[tuple[datetime, int, MemberRow | Deletion]] = [(d.at, 0, d) for d in deletions]
        events += [(row.at, 1, row) for row in fresh]
        events.sort(key=lambda item: (item[0], item[1]))
        for _at, _kind, event in events:
            if isinstance(event, MemberRow):
                found = self._observe_row(report, event)
                if found is not None:
                    self.members.remember(event.id, found[0].id, found[1].id, event.modstamp)
            else:
                self._observe_deletion(report, event, resolved)

    def _observe_deletion(self, report: PollReport, deletion: Deletion, resolved: dict[str, tuple[int, int]]) -> None:
        known = self.members.lookup(deletion.id)
        if known is not None:
            if known[2].startswith(TOMBSTONE):
                report.deletions_repeated += 1
                return
            person_id, campaign_id = known[0], known[1]
            self.members.bury(deletion.id, _tombstone_stamp(deletion.at))
        else:
            pair = resolved.get(deletion.id)
            # a member never seen: only when no other member of the pair is known to be live
            if pair is None or self.members.member_of(*pair) is not None:
                return
            person_id, campaign_id = pair
        if self.sink is None and campaign_id not in self.store.memberships(person_id):
            return  # (a sink's consumer may not have applied the membership yet: it gets the removal anyway)
        self._observe(
            report,
            self.store.person_by_id(person_id),
            self.store.campaign(campaign_id),
            None,
            deletion.at,
            lambda: f"{deletion.id}:deleted:{format_stamp(deletion.at)}",
        )

    def _resolve_deleted(self, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(person id, campaign id) of deleted members the poller never saw, by queryAll (200 ids a call)."""
        found: dict[str, tuple[int, int]] = {}
        scratch = PollReport()
        for start in range(0, len(ids), IN_CHUNK):
            soql = format_soql(
                "SELECT Id, CampaignId, LeadId, ContactId, SystemModstamp FROM CampaignMember WHERE Id IN {ids}",
                ids=list(ids[start : start + IN_CHUNK]),
            )
            for record in self._pages(soql, include_deleted=True):
                row = _member_row(record)
                campaign = self.store.campaign_by_sfdc_id(row.campaign_id)
                person = self._person(scratch, row, create=False)
                if campaign is not None and person is not None:
                    found[row.id] = (person.id, campaign.id)
        return found

    def _observe_all(self, report: PollReport, rows: Sequence[MemberRow], server_time: datetime) -> None:
        """Full resync: every live member observed; mirror members Salesforce no longer has are removals."""
        live: set[tuple[int, int]] = set()
        mapping: list[tuple[str, int, int, str]] = []
        store = self.store
        # what the mirror held before this cycle: memberships that flows write while the rows are observed
        # are the engine's own, not members Salesforce lost
        before = [
            (person_id, campaign)
            for campaign in store.campaigns()
            for person_id, _ in store.campaign_members(campaign.id)
        ]
        for row in rows:
            found = self._observe_row(report, row)
            if found is not None:
                pair = (found[0].id, found[1].id)
                live.add(pair)
                mapping.append((row.id, pair[0], pair[1], row.modstamp))
        for person_id, campaign in before:
            if (person_id, campaign.id) in live:
                continue
            report.deletions_seen += 1
            self._observe(
                report,
                store.person_by_id(person_id),
                campaign,
                None,
                server_time,
                functools.partial(_resync_removal_id, self.members, person_id, campaign, server_time),
            )
        self.members.replace_all(mapping)


def _tombstone_stamp(value: datetime) -> str:
    """A deletion date in a tombstone: `member_ids.modstamp` holds 32 characters, `deleted:` and this one (24,
    the SOQL form: the wire form's 28 do not fit, and PostgreSQL enforces the length). Sorts as dates do."""
    return soql_datetime(value)


def _resync_removal_id(members: MemberIds, person_id: int, campaign: CampaignInfo, server_time: datetime) -> str:
    """The id of a removal found by a full resync: the member's id when it was seen, with the server time."""
    member_id = members.member_of(person_id, campaign.id) or f"{person_id}@{campaign.sfdc_id}"
    return f"{member_id}:deleted:{format_stamp(server_time)}"


def _status_lists(rows: Sequence[dict[str, Any]]) -> tuple[list[str], str, list[str]]:
    """(labels by SortOrder, the default, the responded ones) of CampaignMemberStatus rows."""
    ordered = sorted(rows, key=lambda r: (r.get("SortOrder") is None, r.get("SortOrder") or 0, str(r.get("Label"))))
    labels = [str(r["Label"]) for r in ordered]
    default = next((str(r["Label"]) for r in ordered if r.get("IsDefault")), labels[0] if labels else "")
    responded = [str(r["Label"]) for r in ordered if r.get("HasResponded")]
    return labels, default, responded


def _latest(server_time: datetime, cursor: str | None, newest: datetime | None) -> datetime:
    """A cursor's next value: never backwards, at least the server time of this cycle."""
    candidates = [server_time]
    if cursor is not None:
        candidates.append(parse_stamp(cursor))
    if newest is not None:
        candidates.append(newest)
    return max(candidates)


def _query_more(url: str) -> Callable[[Salesforce], Any]:
    def fetch(sf: Salesforce) -> Any:
        return sf.query_more(url, identifier_is_url=True)

    return fetch


def _describe_error(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}".strip()
    return f"HTTP {error.status}"
