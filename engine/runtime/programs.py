"""Programs as the runtime sees them: the flow step that changes a program status, and the hook program sync fills.

The runtime does not know how a program is kept equal to its SFDC campaign; `engine.sync.programs` does, and an
interpreter built with `program_sync=` gets its `ProgramSyncHook`. Without one, program statuses still change
through flows and events, and nothing is mirrored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from engine.language import ast
from engine.runtime.triggers import Change

if TYPE_CHECKING:
    from engine.runtime.interpreter import Interpreter, RunContext, StepOutcome


class ProgramSyncHook(Protocol):
    """What the interpreter asks of program sync: link the programs, refresh their fields, mirror a change."""

    def link_all(self) -> list[str]: ...

    def refresh_fields(self) -> None: ...

    def mirror(self, change: Change) -> None: ...


class NoProgramSync:
    """Program sync switched off (or not wired in): nothing is linked and nothing is mirrored."""

    def link_all(self) -> list[str]:
        return []

    def refresh_fields(self) -> None:
        return None

    def mirror(self, change: Change) -> None:
        return None


ProgramSyncFactory = Callable[["Interpreter"], ProgramSyncHook]


def change_program_status(interp: Interpreter, ctx: RunContext, step: ast.ChangeProgramStatus) -> StepOutcome:
    """The flow step `change program status`: forward only along the channel's steps, then a change to cascade."""
    from engine.runtime.interpreter import StepOutcome

    program = interp.rules.program(step.program)
    channel = interp.rules.channel(program.channel or "") if program else None
    if program is None or channel is None:
        return StepOutcome("error", f'unknown program "{step.program}"')
    target = channel.status(step.status)
    if target is None:
        return StepOutcome(
            "error",
            f'"{step.status}" is not a status of channel "{channel.name}" ({", ".join(channel.status_names)})',
        )
    pid = interp.store.program_id(program.name)
    current = interp.store.program_status(ctx.person.id, pid)
    current_name = current or ast.NOT_IN_PROGRAM
    if current_name == step.status:
        return StepOutcome("skipped", f'already has status "{step.status}"')
    current_step = channel.status(current_name)
    if current_step is not None and target.step < current_step.step:
        return StepOutcome(
            "skipped",
            f'cannot move backward from "{current_name}" (step {current_step.step}) '
            f'to "{step.status}" (step {target.step})',
        )
    new_status = None if step.status == ast.NOT_IN_PROGRAM else step.status
    interp.store.set_program_status(ctx.person.id, pid, new_status, interp.clock)
    interp.log_activity(
        ctx.person,
        "Change Status in Progression",
        smart_campaign=ctx.campaign.name,
        target=program.name,
        status=step.status,
        origin="flow",
    )
    change = Change(
        "program_status_changed",
        ctx.person,
        None,
        program.name,
        current,
        new_status,
        "flow",
        ctx.depth + 1,
        (*ctx.chain, ctx.campaign.name),
        interp.clock,
    )
    return StepOutcome("done", f'"{current_name}" -> "{step.status}"', [change])
