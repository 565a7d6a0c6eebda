"""Exactly-once CRM actions through the outbox: recorded with the event that caused them, sent afterwards.

`OutboxCrm` is the interpreter's CRM adapter in the service when the CRM is Salesforce. Like
`engine.crm.outbox.BatchingCrm` it answers every operation at once from the mirror's point of view, but it
writes each operation into the `service_outbox` table in the store's open transaction, under an idempotency
key (`<inbox row>:<sequence>`), so the operations exist if and only if the event that caused them is marked
processed. `OutboxSender` then sends unsent rows through the Salesforce adapter and marks them sent in a
transaction of its own. A process that dies after sending and before marking sends the same rows again;
Salesforce's side is idempotent for what the engine sends: adding an existing member is `DUPLICATE_VALUE`
(done), a status update to the status a member has is done, removing a non-member is `NOT_A_MEMBER` (done),
and Leads are looked up by email (Lead, then Contact) in the same flush before they are created, so a flush
repeated after a crash never makes a second Lead for one email.

The sender runs in its own loop (`engine.service.flusher`): a slow or failing Salesforce makes the outbox deeper,
never stops intake or the interpreter. A flush answered only in part (Salesforce became unavailable between two
collection requests) settles what was answered and leaves the rest queued, in order.

A Lead the engine creates gets a provisional id in the mirror, `~` and the person's row id (stable across
processes); operations on it carry `pending:<email>` and are resolved when the Lead is created.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from engine.crm.salesforce import SalesforceUnavailable
from engine.runtime import adapter as p
from engine.runtime.interpreter import ACTIVITY_ADD, ACTIVITY_CHANGE, ACTIVITY_REMOVE, ACTIVITY_SYNC_LEAD
from engine.service import queue
from engine.service.metrics import ServiceMetrics
from engine.store.store import Store

log = logging.getLogger("smartcampaign.service")

PLACEHOLDER = "~"
PENDING = "pending:"
CAMPAIGN_PARTITION = "#campaigns"


def placeholder_for(person_id: int) -> str:
    return f"{PLACEHOLDER}{person_id:017d}"


class OutboxCrm:
    """A CRM adapter that records operations in the outbox (in the store's transaction) and answers "done"."""

    name = "salesforce (outbox)"
    shares_mirror = False

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = 0.0
        self._prefix = "boot"
        self._seq = 0
        self.recorded = 0

    def begin(self, prefix: str) -> None:
        """Operations from here on get the keys `<prefix>:1`, `<prefix>:2`, ..."""
        self._prefix = prefix
        self._seq = 0

    def _key(self) -> str:
        self._seq += 1
        return f"{self._prefix}:{self._seq}"

    def execute(self, operations: Sequence[p.Operation]) -> list[p.OperationResult]:
        return [self._record(op) for op in operations]

    def _record(self, op: p.Operation) -> p.OperationResult:
        store = self.store
        if isinstance(op, p.CreateLead):
            person = store.person(op.email)
            if person is None:
                return p.OperationResult.failure(p.UNKNOWN_PERSON, f"no person {op.email} in the store")
            queue.add_outbox(store, self._key(), op.email.lower(), op, person.id, None, None, self.clock)
            self.recorded += 1
            return p.OperationResult.success(person.sfdc_id or placeholder_for(person.id))
        if isinstance(op, (p.AddMember, p.UpdateMemberStatus, p.RemoveMember)):
            member = store.person_by_sfdc_id(op.person_sfdc_id)
            campaign = store.campaign_by_sfdc_id(op.campaign_sfdc_id)
            if member is None:
                return p.OperationResult.failure(p.UNKNOWN_PERSON, f"no Lead or Contact {op.person_sfdc_id}")
            previous = store.memberships(member.id).get(campaign.id) if campaign is not None else None
            sent: p.Operation = op
            if op.person_sfdc_id.startswith(PLACEHOLDER):
                sent = _with_person(op, PENDING + member.email.lower())
            queue.add_outbox(
                store,
                self._key(),
                member.email.lower(),
                sent,
                member.id,
                campaign.id if campaign is not None else None,
                previous,
                self.clock,
            )
            self.recorded += 1
            return p.OperationResult.success()
        queue.add_outbox(store, self._key(), CAMPAIGN_PARTITION, op, None, None, None, self.clock)
        self.recorded += 1
        return p.OperationResult.success(op.campaign_sfdc_id)


def calls_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per endpoint made between two readings of `SalesforceAdapter.calls_by_endpoint()`."""
    return {key: count - before.get(key, 0) for key, count in after.items() if count > before.get(key, 0)}


def record_api_calls(
    store: Store, adapter: Any, delta: dict[str, int], metrics: ServiceMetrics | None, *, commit: bool = False
) -> None:
    """Counts API calls made through `adapter` (endpoint -> calls) in the metrics and in the store, with the
    last `Sforce-Limit-Info` reading. `commit`: in a transaction of its own (after a rollback)."""
    if not delta:
        return
    if metrics is not None:
        for endpoint, count in delta.items():
            metrics.salesforce_calls.labels(endpoint=endpoint).inc(count)
    try:
        queue.add_api_calls(store, delta, queue.now())
        usage = getattr(adapter, "usage", None)
        if usage is not None and usage.limit:
            queue.set_api_usage(store, int(usage.used), int(usage.limit), queue.now())
        if commit:
            store.commit()
    except Exception as error:  # counting must never lose the work it counts
        log.warning("cannot record Salesforce API calls: %s", error)
        if commit:
            store.rollback()


def _with_person(op: p.Operation, person_sfdc_id: str) -> p.Operation:
    if isinstance(op, p.AddMember):
        return p.AddMember(person_sfdc_id, op.campaign_sfdc_id, op.status)
    if isinstance(op, p.UpdateMemberStatus):
        return p.UpdateMemberStatus(person_sfdc_id, op.campaign_sfdc_id, op.status)
    if isinstance(op, p.RemoveMember):
        return p.RemoveMember(person_sfdc_id, op.campaign_sfdc_id)
    return op


def _harmless(op: p.Operation, result: p.OperationResult) -> bool:
    """Failures that leave Salesforce as the operation wanted it (a resent add, a member already gone)."""
    if isinstance(op, p.AddMember) and result.code == p.DUPLICATE_VALUE:
        return True
    return isinstance(op, p.RemoveMember) and result.code == p.NOT_A_MEMBER


_ACTIVITY = {
    p.AddMember: ACTIVITY_ADD,
    p.UpdateMemberStatus: ACTIVITY_CHANGE,
    p.RemoveMember: ACTIVITY_REMOVE,
    p.CreateLead: ACTIVITY_SYNC_LEAD,
}


class OutboxSender:
    """Sends unsent outbox rows through a CRM adapter, oldest first, and settles the mirror with the answers."""

    def __init__(self, store: Store, adapter: p.CrmAdapter, metrics: ServiceMetrics | None = None) -> None:
        self.store = store
        self.adapter = adapter
        self.metrics = metrics

    def send_once(self, limit: int = 1000) -> int:
        """One flush: claim, send, settle, commit. Returns the rows settled.

        Raises SalesforceUnavailable when Salesforce could not be used: the rows it answered are settled and
        committed first; the others stay queued as they were (nothing is marked, so order is kept)."""
        store = self.store
        rows = queue.claim_outbox(store, limit)
        if not rows:
            store.commit()
            return 0
        ops, synthetic = self._prepare(rows)
        before = self._calls()
        unavailable: SalesforceUnavailable | None = None
        try:
            results: Sequence[p.OperationResult | None] = self.adapter.execute([*synthetic, *ops])
        except SalesforceUnavailable as error:
            if error.results is None:
                store.rollback()
                self._record_calls(before, commit=True)
                raise
            results, unavailable = error.results, error
        except Exception:
            store.rollback()
            self._record_calls(before, commit=True)
            raise
        self._record_calls(before)
        for op, result in zip(synthetic, results[: len(synthetic)], strict=True):
            assert isinstance(op, p.CreateLead)
            if result is not None:
                self._settle_lead(op, result)
        at = queue.now()
        settled = 0
        for row, op, result in zip(rows, ops, results[len(synthetic) :], strict=True):
            if result is None:
                continue  # not sent: stays queued
            settled += 1
            if isinstance(op, p.CreateLead):
                self._settle_lead(op, result)
                outcome = "done" if result.ok else "failed"
            elif result.ok or _harmless(op, result):
                outcome = "done"
            else:
                outcome = "failed"
                self._undo(row)
            if outcome == "failed":
                self._log_failure(row, result)
                if self.metrics is not None:
                    self.metrics.outbox_refused.labels(code=result.code or "ERROR").inc()
            queue.mark_sent(
                store, row, outcome, json.dumps({"ok": result.ok, "id": result.id, "code": result.code,
                                                 "message": result.message}), at,
            )  # fmt: skip
            if self.metrics is not None:
                self.metrics.outbox_sent.labels(outcome=outcome).inc()
        store.commit()
        if unavailable is not None:
            raise unavailable
        return settled

    def _calls(self) -> dict[str, int]:
        by_endpoint = getattr(self.adapter, "calls_by_endpoint", None)
        return dict(by_endpoint()) if callable(by_endpoint) else {}

    def _record_calls(self, before: dict[str, int], *, commit: bool = False) -> None:
        """The API calls this flush made, by endpoint, into the metrics and the store (`status` reads them there)."""
        after = self._calls()
        record_api_calls(self.store, self.adapter, calls_since(before, after), self.metrics, commit=commit)

    def _prepare(self, rows: list[queue.OutboxRow]) -> tuple[list[p.Operation], list[p.Operation]]:
        """Operations to send: `pending:` persons whose Lead exists by now get its id; a `pending:` person whose
        Lead is not created in this batch gets a create (looked up by email first, so never a second Lead)."""
        creating = {row.op.email.lower() for row in rows if isinstance(row.op, p.CreateLead)}
        ops: list[p.Operation] = []
        synthetic: dict[str, p.Operation] = {}
        for row in rows:
            op = row.op
            target = getattr(op, "person_sfdc_id", None)
            if isinstance(target, str) and target.startswith(PENDING):
                email = target[len(PENDING) :]
                person = self.store.person(email)
                if person is not None and person.sfdc_id and not person.sfdc_id.startswith(PLACEHOLDER):
                    op = _with_person(op, person.sfdc_id)
                elif email not in creating and email not in synthetic and person is not None:
                    first, last, company = self.store.person_names(person.id)
                    synthetic[email] = p.CreateLead(
                        person.email, last_name=last or p.NOT_PROVIDED, company=company or p.NOT_PROVIDED,
                        first_name=first,
                    )  # fmt: skip
            ops.append(op)
        return ops, list(synthetic.values())

    def _settle_lead(self, op: p.CreateLead, result: p.OperationResult) -> None:
        store = self.store
        person = store.person(op.email)
        if person is None:
            return
        provisional = person.sfdc_id is None or person.sfdc_id.startswith(PLACEHOLDER)
        if result.ok and result.id:
            if provisional:
                sobject = "Contact" if result.id.startswith("003") else "Lead"  # found by email, not created
                store.set_person_sfdc(person, result.id, sobject, op.last_name or "", op.company or "")
        elif person.sfdc_id is not None and person.sfdc_id.startswith(PLACEHOLDER):
            store.execute("UPDATE persons SET sfdc_id = NULL, sfdc_type = NULL WHERE id = ?", (person.id,))
            store.clear_caches()

    def _undo(self, row: queue.OutboxRow) -> None:
        """Salesforce refused: the mirror goes back to what it was before the optimistic answer."""
        if row.person_id is None or row.campaign_id is None:
            return
        if row.previous is None:
            self.store.remove_membership(row.person_id, row.campaign_id)
        else:
            self.store.set_membership(row.person_id, row.campaign_id, row.previous, row.at)

    def _log_failure(self, row: queue.OutboxRow, result: p.OperationResult) -> None:
        log.warning("Salesforce refused %s (%s): %s", type(row.op).__name__, row.key, result.message or result.code)
        if row.person_id is None:
            return
        kind = _ACTIVITY.get(type(row.op), "CRM operation")
        target: Any = None
        campaign_id = row.campaign_id
        if campaign_id is not None:
            try:
                target = self.store.campaign(campaign_id).name
            except KeyError:
                target = None
        self.store.log_activity(
            row.person_id,
            queue.now(),
            kind,
            None,
            target,
            getattr(row.op, "status", None),
            "crm",
            "error",
            f"Salesforce refused it: {result.message or result.code}",
        )
