"""Typed syntax tree of rule files: what the parser produces and the checks, formatter and runtime read."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from operator import attrgetter
from typing import Literal

TimeUnit = Literal["minute", "hour", "day", "week", "month"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_TIMEZONE = "UTC"
MAX_EXECUTE_DEPTH = 3

UNIT_SECONDS: dict[str, int] = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
}


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node sits in its file: 1-based line and column of its first and last character."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


NO_SPAN = Span("<none>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CampaignRef:
    """`sfdc campaign "Name"`, `sfdc campaign id "701..."`, `sfdc campaign [not] in (...)`, `any sfdc campaign`."""

    kind: Literal["name", "id", "in", "not_in", "any"]
    values: tuple[str, ...] = ()
    span: Span = _span()

    @property
    def is_single(self) -> bool:
        return self.kind in ("name", "id")

    def describe(self) -> str:
        if self.kind == "name":
            return f'sfdc campaign "{self.values[0]}"'
        if self.kind == "id":
            return f'sfdc campaign id "{self.values[0]}"'
        if self.kind == "any":
            return "any sfdc campaign"
        listed = ", ".join(f'"{v}"' for v in self.values)
        return f"sfdc campaign {'not in' if self.kind == 'not_in' else 'in'} ({listed})"


@dataclass(frozen=True, slots=True)
class StatusMatch:
    """`"X"`, `in ("X", "Y")` or `not in ("X", "Y")`."""

    kind: Literal["is", "in", "not_in"]
    values: tuple[str, ...]
    span: Span = _span()

    def matches(self, status: str | None) -> bool:
        if status is None:
            return False
        if self.kind == "not_in":
            return status not in self.values
        return status in self.values


@dataclass(frozen=True, slots=True)
class Trigger:
    """One `trigger` line: a person who fires any trigger of a campaign is a candidate for its flow."""

    kind: Literal["added", "removed", "status_changed", "program_status_changed", "requested"]
    campaign: CampaignRef | None = None
    program: str | None = None
    status: StatusMatch | None = None
    from_status: StatusMatch | None = None
    to_status: StatusMatch | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MembershipFilter:
    """`member of <campaign ref> [with status <match>]`: one membership must match both."""

    campaign: CampaignRef
    status: StatusMatch | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ProgramMembershipFilter:
    """`member of program "P" [with status <match>]`."""

    program: str
    status: StatusMatch | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: FilterExpr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[FilterExpr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[FilterExpr, ...]
    span: Span = _span()


FilterExpr = MembershipFilter | ProgramMembershipFilter | Not | And | Or


@dataclass(frozen=True, slots=True)
class Qualification:
    """`qualify once` (default), `qualify every time`, `qualify once every N UNIT`."""

    kind: Literal["once", "every_time", "window"] = "once"
    amount: int = 0
    unit: TimeUnit = "day"
    span: Span = _span()

    @property
    def window_seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]


@dataclass(frozen=True, slots=True)
class AddToCampaign:
    campaign: CampaignRef
    status: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ChangeStatusInCampaign:
    campaign: CampaignRef
    status: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RemoveFromCampaign:
    campaign: CampaignRef
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ChangeProgramStatus:
    program: str
    status: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Wait:
    amount: int
    unit: TimeUnit
    span: Span = _span()

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """`wait until 2026-12-24T09:00`: a local date and time in the campaign's time zone; already past: go on."""

    at: str  # "YYYY-MM-DDTHH:MM" as written (seconds ":SS" kept when given)
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class WaitWindow:
    """`wait 2 days then until weekday monday..friday at 09:00` (or `wait until weekday ...`, amount 0): after
    the delay, the next moment that is `time` on a weekday from `first` to `last` (wrapping past sunday)."""

    amount: int
    unit: TimeUnit
    first: Weekday
    last: Weekday
    time: str  # "HH:MM"
    span: Span = _span()

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    @property
    def weekdays(self) -> tuple[int, ...]:
        """The window's days as Python weekday numbers (monday 0), in order from `first`."""
        start, end = WEEKDAYS.index(self.first), WEEKDAYS.index(self.last)
        return tuple((start + n) % 7 for n in range((end - start) % 7 + 1))


@dataclass(frozen=True, slots=True)
class RequestCampaign:
    """`request campaign "X"`: queues the person for X (whose trigger is `campaign is requested`)."""

    campaign: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExecuteCampaign:
    """`execute campaign "X"`: X's qualification, filters and flow run inline for this person, before the next step."""

    campaign: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RemoveFromFlow:
    """`remove from flow of campaign "X"` / `remove from flow of this campaign` (campaign None): the person's
    waiting runs of X are dropped."""

    campaign: str | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Branch:
    """One `if` / `else if` arm of a choice; `condition` is None for the final `else`."""

    condition: FilterExpr | None
    steps: tuple[FlowStep, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Choice:
    branches: tuple[Branch, ...]
    span: Span = _span()


FlowAction = AddToCampaign | ChangeStatusInCampaign | RemoveFromCampaign | ChangeProgramStatus
FlowStep = (
    AddToCampaign
    | ChangeStatusInCampaign
    | RemoveFromCampaign
    | ChangeProgramStatus
    | Wait
    | WaitUntil
    | WaitWindow
    | RequestCampaign
    | ExecuteCampaign
    | RemoveFromFlow
    | Choice
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a batch campaign runs, in its time zone:
    `schedule at 2026-12-10T09:00` (once), `schedule every day at 09:00`,
    `schedule every week on monday at 09:00`, `schedule every month on day 1 at 09:00`
    (a day past the month's end runs on its last day)."""

    kind: Literal["once", "daily", "weekly", "monthly"]
    at: str | None = None  # once: "YYYY-MM-DDTHH:MM"
    time: str | None = None  # daily, weekly, monthly: "HH:MM"
    weekday: Weekday | None = None  # weekly
    day: int | None = None  # monthly: 1..31
    span: Span = _span()

    def describe(self) -> str:
        """The schedule in the rule language's own words."""
        if self.kind == "once":
            return f"schedule at {self.at}"
        if self.kind == "daily":
            return f"schedule every day at {self.time}"
        if self.kind == "weekly":
            return f"schedule every week on {self.weekday} at {self.time}"
        return f"schedule every month on day {self.day} at {self.time}"


@dataclass(frozen=True, slots=True)
class TimeZone:
    """`timezone "Europe/Berlin"` at the top of a file: the rule set's time zone (IANA name; UTC by default)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Campaign:
    """A smart campaign: triggers, filters, qualification and a flow."""

    name: str
    triggers: tuple[Trigger, ...] = ()
    filters: tuple[FilterExpr, ...] = ()
    qualification: Qualification = Qualification()
    flow: tuple[FlowStep, ...] = ()
    description: str | None = None
    active: bool = True
    has_flow_block: bool = True
    qualification_given: bool = False
    span: Span = _span()
    name_span: Span = _span()
    repeated: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)
    schedule: Schedule | None = None  # a batch campaign: no triggers, runs over everyone who passes its filters
    timezone: str | None = None  # `timezone "..."` inside the campaign; else the rule set's
    timezone_span: Span = _span()
    limit: int | None = None  # `limit N`: at most N persons per batch run, by email
    limit_span: Span = _span()

    @property
    def is_batch(self) -> bool:
        return self.schedule is not None

    @property
    def is_requestable(self) -> bool:
        return any(t.kind == "requested" for t in self.triggers)


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    name: str
    step: int
    success: bool = False
    span: Span = _span()


NOT_IN_PROGRAM = "Not in Program"


@dataclass(frozen=True, slots=True)
class Channel:
    """A program channel: its progression statuses (the implicit "Not in Program" is step 0)."""

    name: str
    statuses: tuple[ChannelStatus, ...] = ()
    description: str | None = None
    builtin: bool = False
    span: Span = _span()
    name_span: Span = _span()
    repeated: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def status(self, name: str) -> ChannelStatus | None:
        if name == NOT_IN_PROGRAM:
            return ChannelStatus(NOT_IN_PROGRAM, 0)
        for status in self.statuses:
            if status.name == name:
                return status
        return None

    @property
    def status_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses)

    def ordered_statuses(self) -> list[ChannelStatus]:
        """Statuses by step (declaration order within a step): the first is a synced campaign's default."""
        return sorted(self.statuses, key=lambda s: s.step)


@dataclass(frozen=True, slots=True)
class ProgramCost:
    period: str
    amount: int
    note: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Program:
    """A program with a channel, optionally synced one-to-one with an SFDC campaign."""

    name: str
    channel: str | None = None
    sync_with: CampaignRef | None = None
    costs: tuple[ProgramCost, ...] = ()
    description: str | None = None
    channel_span: Span = _span()
    span: Span = _span()
    name_span: Span = _span()
    repeated: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    @property
    def total_cost(self) -> int:
        return sum(c.amount for c in self.costs)


Declaration = Campaign | Program | Channel | TimeZone


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class RuleFile:
    """One parsed `.campaign` file."""

    path: str
    declarations: tuple[Declaration, ...] = ()
    comments: tuple[Comment, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class RuleSet:
    """Every declaration of a rule set, in declaration order, plus the built-in channels not redefined."""

    files: tuple[RuleFile, ...]
    campaigns: tuple[Campaign, ...]
    programs: tuple[Program, ...]
    channels: tuple[Channel, ...]
    timezone: str = DEFAULT_TIMEZONE  # the first `timezone` declaration of the set (`check` refuses two different)

    def zone_of(self, campaign: Campaign) -> str:
        """The IANA time zone a campaign's schedule and dated waits are read in."""
        return campaign.timezone or self.timezone

    def channel(self, name: str) -> Channel | None:
        for channel in self.channels:
            if channel.name == name:
                return channel
        return None

    def program(self, name: str) -> Program | None:
        for program in self.programs:
            if program.name == name:
                return program
        return None

    def campaign(self, name: str) -> Campaign | None:
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        return None


def _pickled_by_fields(cls: type) -> None:
    """Pickle a frozen slots node as a call to its class with its fields in order.

    The slots dataclass default walks `fields()` for every node on both sides; this is several times faster
    to write and reads faster too, which is most of a cold rule set's parse-cache cost.
    """
    names = [f.name for f in fields(cls)]
    if not all(f.init for f in fields(cls)):
        return
    values = attrgetter(*names)
    if len(names) == 1:

        def __reduce__(self: object) -> tuple[type, tuple[object, ...]]:
            return cls, (values(self),)
    else:

        def __reduce__(self: object) -> tuple[type, tuple[object, ...]]:
            return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]


for _node in list(globals().values()):
    if isinstance(_node, type) and is_dataclass(_node) and "__slots__" in vars(_node) and _node.__module__ == __name__:
        _pickled_by_fields(_node)
del _node
