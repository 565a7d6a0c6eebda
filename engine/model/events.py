"""Sync events (REPLAY.md): observations of Salesforce and of program statuses, and requests for a campaign."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.model.world import as_utc

EventType = Literal[
    "added_to_sfdc_campaign",
    "status_changed_in_sfdc_campaign",
    "removed_from_sfdc_campaign",
    "program_status_changed",
    "campaign_requested",
]


class Event(BaseModel):
    """One observation: "ann is a member of C with status S", "ann is not a member of C", or a program status."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    person: str = Field(min_length=3)
    campaign: str | None = None
    campaign_id: str | None = None
    program: str | None = None
    status: str | None = None
    at: datetime | None = None
    id: str | None = None

    @field_validator("person")
    @classmethod
    def _person(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("an email address (name@domain)")
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    @model_validator(mode="after")
    def _shape(self) -> Event:
        if self.type == "campaign_requested":
            if not self.campaign:
                raise ValueError("campaign: the requested smart campaign's name is required for campaign_requested")
            if self.campaign_id:
                raise ValueError("campaign_id: campaign_requested names a smart campaign by its name (`campaign`)")
            if self.program:
                raise ValueError("program: only program_status_changed names a program")
            if self.status is not None:
                raise ValueError("status: campaign_requested has no status")
            return self
        if self.type == "program_status_changed":
            if not self.program:
                raise ValueError("program: the program's name is required for program_status_changed")
            if self.status is None:
                raise ValueError('status: a channel status (or "Not in Program") is required')
            if self.campaign or self.campaign_id:
                raise ValueError("campaign: program_status_changed names a program, not a campaign")
            return self
        if not self.campaign and not self.campaign_id:
            raise ValueError("campaign: `campaign` (name) or `campaign_id` is required")
        if self.program:
            raise ValueError("program: only program_status_changed names a program")
        if self.type != "removed_from_sfdc_campaign" and self.status is None:
            raise ValueError("status: the member status is required")
        return self
