"""Batching in front of a CRM: flow actions are answered at once and sent together, a few API calls per thousand.

The interpreter decides each action from the mirror (already a member, unknown status, ... are settled
there, without an API call), so what reaches the outbox is what should happen. `BatchingCrm` records each
operation with the mirror state it replaces, answers "done", and `flush()` sends everything through the
wrapped adapter in one `execute` (sObject Collections of 200 for Salesforce). Each per-record result is
mapped back: a refused operation is logged on the person's activity with its reason and the mirror is put
back the way it was; a Lead created in the batch gets its real id in the mirror. When the CRM is not
available (quota spent, unreachable) nothing is lost: the queue stays and is sent at the next flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.runtime import adapter as p
from engine.runtime.adapter import CrmAdapter
from engine.store.store import Store

log = logging.getLogger("smartcampaign.outbox")

PLACEHOLDER = "~"  # provisional Salesforce ids start with this: "~" + 17 digits
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})


@dataclass
class Queued:
    op: p.Operation
    person_id: int | None
    campaign_id: int | None
    previous: str | None  # the member status before (None: not a member)
    at: float


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    calls: int = 0
    failures: list[tuple[p.Operation, p.OperationResult]] = field(default_factory=list)


class BatchingCrm:
    name = "batched"
    shares_mirror = False

    def __init__(
        self,
        adapter: CrmAdapter,
        store: Store,
        *,
        batch_size: int = 1000,
        on_failure: Callable[[Queued, p.OperationResult], None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.store = store
        self.batch_size = batch_size
        self.on_failure = on_failure
        self.queue: list[Queued] = []
        self._placeholders: dict[str, str] = {}  # placeholder id -> email
        self._by_email: dict[str, str] = {}  # email -> placeholder id
        self._next = 1
        self.clock = 0.0

    def _placeholder(self, email: str) -> str:
        known = self._by_email.get(email.lower())
        if known is not None:
            return known
        # the person's row id: unique in the store, so placeholders never collide across processes
        person = self.store.person(email)
        number = person.id if person is not None else -self._next
        self._next += 1
        placeholder = f"{PLACEHOLDER}{number:017d}"
        self._placeholders[placeholder] = email.lower()
        self._by_email[email.lower()] = placeholder
        return placeholder

    def _to_adapter(self, person_sfdc_id: str) -> str:
        email = self._placeholders.get(person_sfdc_id)
        return f"pending:{email}" if email is not None else person_sfdc_id

    def execute(self, operations: Sequence[p.Operation]) -> list[p.OperationResult]:
        results: list[p.OperationResult] = []
        for op in operations:
            person_id: int | None = None
            campaign_id: int | None = None
            previous: str | None = None
            if isinstance(op, p.CreateLead):
                placeholder = self._placeholder(op.email)
                known = self.store.person(op.email)
                self.queue.append(Queued(op, known.id if known else None, None, None, self.clock))
                results.append(p.OperationResult.success(placeholder))
                continue
            if isinstance(op, (p.AddMember, p.UpdateMemberStatus, p.RemoveMember)):
                member = self._person(op.person_sfdc_id)
                campaign = self.store.campaign_by_sfdc_id(op.campaign_sfdc_id)
                if member is not None and campaign is not None:
                    person_id, campaign_id = member, campaign.id
                    previous = self.store.memberships(member).get(campaign.id)
                op = _with_person(op, self._to_adapter(op.person_sfdc_id))
            self.queue.append(Queued(op, person_id, campaign_id, previous, self.clock))
            results.append(p.OperationResult.success())
        if len(self.queue) >= self.batch_size:
            self.flush()
        return results

    def _person(self, sfdc_id: str) -> int | None:
        if sfdc_id in self._placeholders:
            found = self.store.person(self._placeholders[sfdc_id])
        else:
            found = self.store.person_by_sfdc_id(sfdc_id)
        return found.id if found else None

    @property
    def pending(self) -> int:
        return len(self.queue)

    def flush(self) -> FlushReport:
        """Sends what is queued; refused operations are put right in the mirror and reported."""
        report = FlushReport()
        if not self.queue:
            return report
        queued = self.queue
        calls_before = getattr(self.adapter, "calls", 0)
        try:
            results = self.adapter.execute([q.op for q in queued])
        except Exception as error:
            from engine.crm.salesforce import SalesforceUnavailable

            if isinstance(error, SalesforceUnavailable):
                report.deferred = len(queued)
                log.warning("CRM unavailable, %d actions stay queued: %s", len(queued), error)
                return report
            raise
        self.queue = []
        report.calls = getattr(self.adapter, "calls", 0) - calls_before
        # A record that stayed locked is not refused: it goes back in the queue (with what needs its Lead).
        again: set[int] = set()
        waiting_leads: set[str] = set()
        for number, (item, result) in enumerate(zip(queued, results, strict=True)):
            if result.code in TRANSIENT_CODES or (
                isinstance(item.op, (p.AddMember, p.UpdateMemberStatus, p.RemoveMember))
                and item.op.person_sfdc_id.startswith("pending:")
                and item.op.person_sfdc_id[len("pending:") :] in waiting_leads
            ):
                again.add(number)
                if isinstance(item.op, p.CreateLead):
                    waiting_leads.add(item.op.email.lower())
        refused: list[tuple[Queued, p.OperationResult]] = []
        for number, (item, result) in enumerate(zip(queued, results, strict=True)):
            if number in again:
                self.queue.append(item)
                report.deferred += 1
                continue
            report.sent += 1
            if isinstance(item.op, p.CreateLead):
                self._settle_lead(item, result)
                if not result.ok:
                    report.failed += 1
                    report.failures.append((item.op, result))
                continue
            if result.ok or _harmless(item.op, result):
                continue
            report.failed += 1
            report.failures.append((item.op, result))
            refused.append((item, result))
        # undo newest first, so the mirror ends as it was before the first refused action
        for item, _result in reversed(refused):
            self._undo(item)
        for item, result in refused:
            self._log_refusal(item, result)
            if self.on_failure is not None:
                self.on_failure(item, result)
        return report

    def _log_refusal(self, item: Queued, result: p.OperationResult) -> None:
        """The person's activity log says what Salesforce refused, and why."""
        if item.person_id is None:
            return
        kind = {
            p.AddMember: "Add to SFDC Campaign",
            p.UpdateMemberStatus: "Change Status in SFDC Campaign",
            p.RemoveMember: "Remove from SFDC Campaign",
        }.get(type(item.op), "Sync Lead to SFDC")
        campaign = self.store.campaign(item.campaign_id).name if item.campaign_id is not None else None
        status = getattr(item.op, "status", None)
        reason = f"Salesforce refused it: {result.message or result.code}"
        self.store.log_activity(item.person_id, item.at, kind, None, campaign, status, "flow", "error", reason)

    def _settle_lead(self, item: Queued, result: p.OperationResult) -> None:
        op = item.op
        assert isinstance(op, p.CreateLead)
        person = self.store.person(op.email)
        if person is None:
            return
        placeholder = self._by_email.pop(op.email.lower(), None)
        if result.ok and result.id:
            self.store.set_person_sfdc(person, result.id, "Lead", op.last_name or "", op.company or "")
        elif placeholder is not None and person.sfdc_id == placeholder:
            self.store.execute("UPDATE persons SET sfdc_id = NULL, sfdc_type = NULL WHERE id = ?", (person.id,))
            self.store.clear_caches()
        if placeholder is not None:
            del self._placeholders[placeholder]

    def _undo(self, item: Queued) -> None:
        """The CRM refused: the mirror goes back to what it was before the optimistic answer, unless something
        observed since has changed it (then the mirror already says what is true)."""
        if item.person_id is None or item.campaign_id is None:
            return
        intended = None if isinstance(item.op, p.RemoveMember) else getattr(item.op, "status", None)
        if self.store.memberships(item.person_id).get(item.campaign_id) != intended:
            return
        if item.previous is None:
            self.store.remove_membership(item.person_id, item.campaign_id)
        else:
            self.store.set_membership(item.person_id, item.campaign_id, item.previous, item.at)


def _harmless(op: p.Operation, result: p.OperationResult) -> bool:
    """Failures that leave Salesforce as the action wanted it (a retried add, a member already gone)."""
    if isinstance(op, p.AddMember) and result.code == p.DUPLICATE_VALUE:
        return True
    return isinstance(op, p.RemoveMember) and result.code == p.NOT_A_MEMBER


def _with_person(op: p.Operation, person_sfdc_id: str) -> p.Operation:
    if isinstance(op, p.AddMember):
        return p.AddMember(person_sfdc_id, op.campaign_sfdc_id, op.status)
    if isinstance(op, p.UpdateMemberStatus):
        return p.UpdateMemberStatus(person_sfdc_id, op.campaign_sfdc_id, op.status)
    if isinstance(op, p.RemoveMember):
        return p.RemoveMember(person_sfdc_id, op.campaign_sfdc_id)
    return op
