"""Program to SFDC campaign sync: members and statuses both ways, Type and Actual Cost one way.

A synced program and its campaign are kept equal: program member with status S if and only if campaign
member with status S. The first link checks that the statuses match (an empty campaign is made to match),
then copies members missing on either side without firing triggers. After that every change on one side
is mirrored to the other at once, with origin `program_sync`, at the same cascade depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.language import ast
from engine.language.checks import status_mismatch
from engine.runtime import adapter as p
from engine.runtime.programs import ProgramSyncFactory
from engine.runtime.triggers import Change

if TYPE_CHECKING:
    from engine.runtime.interpreter import Interpreter


@dataclass
class Link:
    program: ast.Program
    channel: ast.Channel
    campaign_id: int


class ProgramSync:
    def __init__(self, interpreter: Interpreter, *, enabled: bool, disabled: frozenset[str]) -> None:
        self.interp = interpreter
        self.enabled = enabled
        self.disabled = disabled
        self.links: dict[str, Link] = {}
        self.by_campaign: dict[int, Link] = {}
        self.errors: dict[str, str] = {}

    # ------------------------------------------------------------------------------ first link
    def link_all(self) -> list[str]:
        """Links every program that has `sync with`; returns the errors of those that cannot sync."""
        problems: list[str] = []
        if not self.enabled:
            return problems
        for program in self.interp.rules.programs:
            if program.sync_with is None or program.name in self.disabled or program.name in self.links:
                continue
            problem = self._link(program)
            if problem:
                self.errors[program.name] = problem
                problems.append(problem)
                self.interp.recorder.error(problem, self.interp.clock)
                self.interp.store.log_error(self.interp.clock, problem)
        return problems

    def _link(self, program: ast.Program) -> str | None:
        interp = self.interp
        store = interp.store
        assert program.sync_with is not None
        channel = interp.rules.channel(program.channel or "")
        if channel is None:
            return f'program "{program.name}" cannot sync: unknown channel "{program.channel}"'
        campaign = interp.resolve(program.sync_with)
        if campaign is None:
            return f'program "{program.name}" cannot sync: no {program.sync_with.describe()}'
        wanted = [s.name for s in channel.ordered_statuses()]
        if set(wanted) != set(campaign.statuses):
            if store.member_count(campaign.id) > 0:
                return status_mismatch(program.name, campaign.name, tuple(wanted), campaign.statuses)
            responded = tuple(s.name for s in channel.statuses if s.success)
            result = interp.crm.execute([p.SetCampaignStatuses(campaign.sfdc_id, tuple(wanted), wanted[0], responded)])[
                0
            ]
            if not result.ok:
                return (
                    f'program "{program.name}": cannot set the member statuses of "{campaign.name}": {result.message}'
                )
            if not interp.crm.shares_mirror:
                store.set_campaign_statuses(campaign.id, wanted, wanted[0], responded)
        link = Link(program, channel, campaign.id)
        self._write_fields(link)
        pid = store.program_id(program.name)
        program_members = dict(store.program_members(pid))
        campaign_members = dict(store.campaign_members(campaign.id))
        info = store.campaign(campaign.id)
        for person_id, status in campaign_members.items():
            if person_id not in program_members:
                store.set_program_status(person_id, pid, status, interp.clock)
                interp.log_activity(
                    store.person_by_id(person_id),
                    "Change Status in Progression",
                    target=program.name,
                    status=status,
                    origin="program_sync",
                )
        for person_id, status in program_members.items():
            if campaign_members.get(person_id) != status:
                person = store.person_by_id(person_id)
                outcome = interp.write_membership(
                    person, info, status, origin="program_sync", depth=0, chain=(), smart_campaign=None
                )
                if outcome.outcome == "error":
                    interp.recorder.error(
                        f'program "{program.name}": cannot copy {person.email} to "{info.name}": {outcome.detail}',
                        interp.clock,
                    )
        self.links[program.name] = link
        self.by_campaign[campaign.id] = link
        return None

    def _write_fields(self, link: Link) -> None:
        """Type = channel name, Actual Cost = sum of period costs; a value changed in Salesforce is put back."""
        interp = self.interp
        campaign = interp.store.campaign(link.campaign_id)
        cost = float(link.program.total_cost)
        if campaign.type == link.channel.name and campaign.actual_cost == cost:
            return
        result = interp.crm.execute([p.SetCampaignFields(campaign.sfdc_id, link.channel.name, cost)])[0]
        if result.ok and not interp.crm.shares_mirror:
            interp.store.set_campaign_fields(campaign.id, link.channel.name, cost)

    def refresh_fields(self) -> None:
        for link in self.links.values():
            self._write_fields(link)

    # ------------------------------------------------------------------------------ mirroring
    def mirror(self, change: Change) -> None:
        if not self.links:
            return
        interp = self.interp
        if change.kind == "program_status_changed":
            link = self.links.get(change.program or "")
            if link is None:
                return
            campaign = interp.store.campaign(link.campaign_id)
            outcome = interp.write_membership(
                change.person,
                campaign,
                change.status,
                origin="program_sync",
                depth=change.depth,
                chain=change.chain,
                smart_campaign=None,
            )
            activity = "Remove from SFDC Campaign" if change.status is None else "Change Status in SFDC Campaign"
            if outcome.outcome != "skipped":
                interp.log_activity(
                    change.person,
                    activity,
                    target=campaign.name,
                    status=change.status,
                    origin="program_sync",
                    outcome=outcome.outcome,
                    reason=outcome.detail,
                )
            if outcome.outcome == "error":
                interp.recorder.error(
                    f'program sync "{link.program.name}" -> "{campaign.name}" for {change.person.email}: '
                    f"{outcome.detail}",
                    change.at,
                )
            for mirrored in outcome.changes:
                interp.queue.append(mirrored)
            return
        if change.campaign is None:
            return
        link = self.by_campaign.get(change.campaign.id)
        if link is None:
            return
        pid = interp.store.program_id(link.program.name)
        current = interp.store.program_status(change.person.id, pid)
        if current == change.status:
            return
        interp.store.set_program_status(change.person.id, pid, change.status, change.at)
        interp.log_activity(
            change.person,
            "Change Status in Progression",
            target=link.program.name,
            status=change.status or ast.NOT_IN_PROGRAM,
            origin="program_sync",
        )
        interp.queue.append(
            Change(
                "program_status_changed",
                change.person,
                None,
                link.program.name,
                current,
                change.status,
                "program_sync",
                change.depth,
                change.chain,
                change.at,
            )
        )


def program_sync(*, enabled: bool = True, disabled: frozenset[str] = frozenset()) -> ProgramSyncFactory:
    """The hook an interpreter is built with (`Interpreter(..., program_sync=program_sync())`)."""

    def build(interpreter: Interpreter) -> ProgramSync:
        return ProgramSync(interpreter, enabled=enabled, disabled=disabled)

    return build
