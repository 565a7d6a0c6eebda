"""Changes, and the trigger index that finds the smart campaigns a change fires in declaration order.

The index is keyed by (change kind, campaign name or id, or program), so the cost of one change does not
grow with the number of campaigns; only `any sfdc campaign` and `not in (...)` triggers are checked on
every change of their kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.language import ast
from engine.store.store import CampaignInfo, Person

KIND_NAMES = {
    "added": "added_to_sfdc_campaign",
    "removed": "removed_from_sfdc_campaign",
    "status_changed": "status_changed_in_sfdc_campaign",
    "program_status_changed": "program_status_changed",
    "requested": "campaign_requested",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One membership change, after diffing: what triggers listen to."""

    kind: str  # added | removed | status_changed | program_status_changed | requested
    person: Person
    campaign: CampaignInfo | None
    program: str | None
    previous_status: str | None
    status: str | None
    origin: str  # event | flow | program_sync
    depth: int
    chain: tuple[str, ...]  # the smart campaigns whose flows led to this change
    at: float
    requested: str | None = None  # requested: the smart campaign the person is requested for (it alone runs)
    by: str | None = None  # requested by a flow: the requesting smart campaign

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"type": KIND_NAMES[self.kind]}
        if self.kind == "requested":
            out["campaign"] = self.requested
            out["origin"] = self.origin
            if self.by is not None:
                out["by"] = self.by
            return out
        if self.campaign is not None:
            out["campaign"] = self.campaign.name
        if self.program is not None:
            out["program"] = self.program
        out["previous_status"] = self.previous_status
        out["status"] = self.status
        out["origin"] = self.origin
        return out


def _id_key(sfdc_id: str) -> str:
    return "id:" + sfdc_id[:15]


@dataclass(frozen=True, slots=True)
class Candidate:
    order: int
    campaign: ast.Campaign
    trigger: ast.Trigger


def trigger_matches(trigger: ast.Trigger, change: Change) -> bool:
    """The status constraints of a trigger against a change (its campaign or program already matched)."""
    if trigger.kind == "requested":
        return change.kind == "requested"
    if trigger.kind == "added":
        return trigger.status is None or trigger.status.matches(change.status)
    if trigger.kind == "removed":
        return trigger.status is None or trigger.status.matches(change.previous_status)
    previous = change.previous_status
    current = change.status
    if trigger.kind == "program_status_changed":
        previous = previous or ast.NOT_IN_PROGRAM
        current = current or ast.NOT_IN_PROGRAM
    if trigger.from_status is not None and not trigger.from_status.matches(previous):
        return False
    return trigger.to_status is None or trigger.to_status.matches(current)


def ref_matches(ref: ast.CampaignRef, campaign: CampaignInfo) -> bool:
    if ref.kind == "any":
        return True
    if ref.kind == "name":
        return campaign.name == ref.values[0]
    if ref.kind == "id":
        return campaign.sfdc_id[:15] == ref.values[0][:15]
    if ref.kind == "in":
        return campaign.name in ref.values
    return campaign.name not in ref.values


def _unconstrained(trigger: ast.Trigger) -> bool:
    """A trigger that fires on every change of its kind to its campaign or program (no status given)."""
    return trigger.status is None and trigger.from_status is None and trigger.to_status is None


@dataclass(frozen=True, slots=True)
class _Pool:
    """The candidates of one index key, in declaration order (a campaign's triggers next to each other)."""

    candidates: tuple[Candidate, ...]
    always: bool  # each fires on every change of the key: no status constraint, no campaign listed twice


def _pool(candidates: list[Candidate]) -> _Pool:
    orders = {c.order for c in candidates}
    always = len(orders) == len(candidates) and all(_unconstrained(c.trigger) for c in candidates)
    return _Pool(tuple(candidates), always)


def _first_matching(pool: tuple[Candidate, ...], change: Change) -> list[Candidate]:
    """The campaigns of one pool that this change fires, each by its first matching trigger."""
    found: list[Candidate] = []
    last = -1
    for candidate in pool:
        if candidate.order != last and trigger_matches(candidate.trigger, change):
            found.append(candidate)
            last = candidate.order
    return found


class TriggerIndex:
    def __init__(self, campaigns: tuple[ast.Campaign, ...]) -> None:
        keyed: dict[tuple[str, str], list[Candidate]] = {}
        self._wild: dict[str, list[Candidate]] = {}
        for order, campaign in enumerate(campaigns):
            for trigger in campaign.triggers:
                candidate = Candidate(order, campaign, trigger)
                if trigger.kind == "requested":  # only a request for this very campaign fires it
                    keyed.setdefault((trigger.kind, "campaign:" + campaign.name), []).append(candidate)
                    continue
                if trigger.kind == "program_status_changed":
                    keyed.setdefault((trigger.kind, "program:" + (trigger.program or "")), []).append(candidate)
                    continue
                ref = trigger.campaign
                if ref is None:
                    continue
                if ref.kind == "name":
                    keyed.setdefault((trigger.kind, ref.values[0]), []).append(candidate)
                elif ref.kind == "id":
                    keyed.setdefault((trigger.kind, _id_key(ref.values[0])), []).append(candidate)
                elif ref.kind == "in":
                    for name in ref.values:
                        keyed.setdefault((trigger.kind, name), []).append(candidate)
                else:
                    self._wild.setdefault(trigger.kind, []).append(candidate)
        self._keyed = {key: _pool(candidates) for key, candidates in keyed.items()}
        self._by_id = any(key.startswith("id:") for _, key in self._keyed)  # else no lookup by id per change

    def candidates(self, change: Change) -> Sequence[Candidate]:
        """The campaigns whose triggers this change fires: one entry per campaign, in declaration order."""
        pools: list[tuple[Candidate, ...]] = []
        if change.kind == "requested":
            pool = self._keyed.get((change.kind, "campaign:" + (change.requested or "")))
            return pool.candidates[:1] if pool is not None else ()
        if change.kind == "program_status_changed":
            pool = self._keyed.get((change.kind, "program:" + (change.program or "")))
            if pool is None:
                return ()
            return pool.candidates if pool.always else _first_matching(pool.candidates, change)
        if change.campaign is None:
            return ()
        pool = self._keyed.get((change.kind, change.campaign.name))
        by_id = self._keyed.get((change.kind, _id_key(change.campaign.sfdc_id))) if self._by_id else None
        wild = self._wild.get(change.kind)
        if by_id is None and not wild:  # the usual case: campaigns named in triggers, one pool
            if pool is None:
                return ()
            return pool.candidates if pool.always else _first_matching(pool.candidates, change)
        for keyed in (pool, by_id):
            if keyed is not None:
                pools.append(keyed.candidates)
        if wild:
            pools.append(tuple(c for c in wild if ref_matches(c.trigger.campaign, change.campaign)))  # type: ignore[arg-type]
        found: dict[int, Candidate] = {}
        for candidates in pools:
            for candidate in candidates:
                if candidate.order in found:
                    continue
                if trigger_matches(candidate.trigger, change):
                    found[candidate.order] = candidate
        return [found[k] for k in sorted(found)]
