"""Event builders for tests: the REPLAY.md event dicts, without typing the field names.

    from engine.testing.events import added, status_changed, removed, program_status

    events = [
        added("ann@example.com", "2026 Q4 Webinar", "Registered", at="2026-11-02T09:00:00Z"),
        status_changed("ann@example.com", "2026 Q4 Webinar", "Attended"),
        removed("ann@example.com", "2026 Q4 Webinar"),
        program_status("eve@example.com", "2026 Q4 Webinar", "Registered"),
    ]

Each builder returns a plain dict, validated when the replay runs (a mistake is reported as `events[N]: field:
...`). `at` takes an ISO 8601 string or a datetime; left out, the event takes the time of the one before it.
A campaign is named by name, or by Salesforce id with `campaign_id=` (then pass None as the name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.model.world import format_time

__all__ = ["added", "program_status", "removed", "status_changed"]


def _event(
    kind: str,
    person: str,
    *,
    campaign: str | None = None,
    campaign_id: str | None = None,
    program: str | None = None,
    status: str | None = None,
    at: str | datetime | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"type": kind, "person": person}
    if campaign is not None:
        data["campaign"] = campaign
    if campaign_id is not None:
        data["campaign_id"] = campaign_id
    if program is not None:
        data["program"] = program
    if status is not None:
        data["status"] = status
    if at is not None:
        data["at"] = format_time(at) if isinstance(at, datetime) else at
    if id is not None:
        data["id"] = id
    return data


def added(
    person: str,
    campaign: str | None,
    status: str,
    at: str | datetime | None = None,
    *,
    campaign_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """`person` is a member of `campaign` with `status` (added_to_sfdc_campaign)."""
    return _event(
        "added_to_sfdc_campaign", person, campaign=campaign, campaign_id=campaign_id, status=status, at=at, id=id
    )


def status_changed(
    person: str,
    campaign: str | None,
    status: str,
    at: str | datetime | None = None,
    *,
    campaign_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """`person` is a member of `campaign` with `status` now (status_changed_in_sfdc_campaign)."""
    return _event(
        "status_changed_in_sfdc_campaign",
        person,
        campaign=campaign,
        campaign_id=campaign_id,
        status=status,
        at=at,
        id=id,
    )


def removed(
    person: str,
    campaign: str | None,
    at: str | datetime | None = None,
    *,
    campaign_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """`person` is not a member of `campaign` (removed_from_sfdc_campaign)."""
    return _event("removed_from_sfdc_campaign", person, campaign=campaign, campaign_id=campaign_id, at=at, id=id)


def program_status(
    person: str,
    program: str,
    status: str,
    at: str | datetime | None = None,
    *,
    id: str | None = None,
) -> dict[str, Any]:
    """`person` has `status` in `program`, set outside the engine ("Not in Program" to leave it)."""
    return _event("program_status_changed", person, program=program, status=status, at=at, id=id)
