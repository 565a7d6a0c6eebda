"""The REPLAY.md world: the starting state of the embedded org (persons, SFDC campaigns, programs)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_STATUSES = ("Sent", "Responded")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_time(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


class WorldPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3)
    sfdc_type: str | None = None
    sfdc_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("an email address (name@domain)")
        return value

    @field_validator("sfdc_type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in ("Lead", "Contact"):
            raise ValueError('"Lead" or "Contact"')
        return value


class WorldCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    id: str | None = None
    statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_STATUSES))
    members: dict[str, str] = Field(default_factory=dict)
    type: str | None = None
    actual_cost: float | None = None

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one member status")
        if len(set(value)) != len(value):
            raise ValueError("member statuses without duplicates")
        return value


class World(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: datetime = EPOCH
    persons: list[WorldPerson] = Field(default_factory=list)
    sfdc_campaigns: list[WorldCampaign] = Field(default_factory=list)
    programs: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("now")
    @classmethod
    def _now(cls, value: datetime) -> datetime:
        return as_utc(value)
