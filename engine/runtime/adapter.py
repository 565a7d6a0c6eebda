"""What the interpreter asks of a CRM: batch-capable operations in, one result per operation out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

NOT_PROVIDED = "[not provided]"  # Marketo's filler for required Lead fields it does not know


@dataclass(frozen=True, slots=True)
class CreateLead:
    """Sync Person to SFDC: a person not in Salesforce becomes a Lead (LastName and Company required)."""

    email: str
    last_name: str | None = NOT_PROVIDED
    company: str | None = NOT_PROVIDED
    first_name: str | None = None


@dataclass(frozen=True, slots=True)
class AddMember:
    person_sfdc_id: str
    campaign_sfdc_id: str
    status: str


@dataclass(frozen=True, slots=True)
class UpdateMemberStatus:
    person_sfdc_id: str
    campaign_sfdc_id: str
    status: str


@dataclass(frozen=True, slots=True)
class RemoveMember:
    person_sfdc_id: str
    campaign_sfdc_id: str


@dataclass(frozen=True, slots=True)
class SetCampaignFields:
    """One-way program sync: Type = channel name, Actual Cost = sum of period costs."""

    campaign_sfdc_id: str
    type: str | None
    actual_cost: float | None


@dataclass(frozen=True, slots=True)
class SetCampaignStatuses:
    """Make a campaign's member statuses exactly these (program sync set-up on an empty campaign)."""

    campaign_sfdc_id: str
    statuses: tuple[str, ...]
    default: str
    responded: tuple[str, ...]


Operation = CreateLead | AddMember | UpdateMemberStatus | RemoveMember | SetCampaignFields | SetCampaignStatuses

# Error codes, Salesforce's names where Salesforce has one.
DUPLICATE_VALUE = "DUPLICATE_VALUE"  # already a campaign member
REQUIRED_FIELD_MISSING = "REQUIRED_FIELD_MISSING"
INVALID_STATUS = "INVALID_STATUS"
UNKNOWN_CAMPAIGN = "UNKNOWN_CAMPAIGN"
UNKNOWN_PERSON = "UNKNOWN_PERSON"
NOT_A_MEMBER = "NOT_A_MEMBER"
ENTITY_IS_DELETED = "ENTITY_IS_DELETED"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class OperationResult:
    ok: bool
    id: str | None = None
    code: str | None = None
    message: str = ""

    @classmethod
    def success(cls, record_id: str | None = None) -> OperationResult:
        return cls(True, record_id)

    @classmethod
    def failure(cls, code: str, message: str) -> OperationResult:
        return cls(False, None, code, message)


class CrmAdapter(Protocol):
    """A CRM the interpreter can act on.

    `shares_mirror` is true when the adapter's records are the store's own rows (the embedded local org):
    the interpreter then does not write the mirror a second time after a successful operation.
    """

    name: str
    shares_mirror: bool

    def execute(self, operations: Sequence[Operation]) -> list[OperationResult]:
        """Runs operations in order; one result per operation, in the same order. Never raises for a
        per-record failure (that is a result); raises only when the CRM cannot be reached at all."""
        ...
