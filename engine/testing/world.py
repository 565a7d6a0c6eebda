"""World builders for tests: the REPLAY.md world as a dict, a few lines at a time.

    from engine.testing.world import world, person, campaign

    start = world(
        now="2026-11-01T00:00:00Z",
        persons=[person("ann@example.com", sfdc_id="00Q000000000001AAA"), person("eve@example.com")],
        campaigns=[
            campaign("Q4 Webinar", statuses=["Registered", "Attended"], members={"ann@example.com": "Registered"}),
            campaign("Nurture 2026"),
        ],
    )

The result is a plain dict, validated when the replay runs (a mistake is reported as `world: field: ...`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.model.world import format_time

__all__ = ["campaign", "person", "world"]


def person(
    email: str,
    *,
    sfdc_id: str | None = None,
    sfdc_type: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """A person; with `sfdc_id` it is in Salesforce (a Lead unless `sfdc_type="Contact"`)."""
    data: dict[str, Any] = {"email": email}
    for key, value in (
        ("sfdc_type", sfdc_type or ("Lead" if sfdc_id else None)),
        ("sfdc_id", sfdc_id),
        ("first_name", first_name),
        ("last_name", last_name),
        ("company", company),
    ):
        if value is not None:
            data[key] = value
    return data


def campaign(
    name: str,
    *,
    statuses: Iterable[str] | None = None,
    members: Mapping[str, str] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """An SFDC campaign; `statuses` left out: ["Sent", "Responded"]. `members` maps emails to statuses."""
    data: dict[str, Any] = {"name": name}
    if id is not None:
        data["id"] = id
    if statuses is not None:
        data["statuses"] = list(statuses)
    if members:
        data["members"] = dict(members)
    return data


def world(
    *,
    now: str | datetime | None = None,
    persons: Iterable[Mapping[str, Any] | str] = (),
    campaigns: Iterable[Mapping[str, Any] | str] = (),
    programs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """A world; a person or a campaign may be given by email or name alone."""
    data: dict[str, Any] = {}
    if now is not None:
        data["now"] = format_time(now) if isinstance(now, datetime) else now
    data["persons"] = [person(p) if isinstance(p, str) else dict(p) for p in persons]
    data["sfdc_campaigns"] = [campaign(c) if isinstance(c, str) else dict(c) for c in campaigns]
    if programs:
        data["programs"] = {name: dict(members) for name, members in programs.items()}
    return data
