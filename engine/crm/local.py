"""The embedded local org: Salesforce's rules, on the store's own rows, with deterministic ids."""

from __future__ import annotations

from collections.abc import Sequence

from engine.runtime import adapter as p
from engine.store.store import Store

LEAD_PREFIX = "00Q"
CAMPAIGN_PREFIX = "701"


class LocalOrg:
    """A CRM adapter over the store: Leads, campaigns, members and member statuses as Salesforce keeps them."""

    name = "local"
    shares_mirror = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0
        self.clock = 0.0  # event time, set by the interpreter: memberships record when they changed

    def new_lead_id(self) -> str:
        return self.store.next_sfdc_id(LEAD_PREFIX, self.store.sfdc_id_taken)

    def new_campaign_id(self) -> str:
        return self.store.next_sfdc_id(CAMPAIGN_PREFIX, self.store.sfdc_id_taken)

    def execute(self, operations: Sequence[p.Operation]) -> list[p.OperationResult]:
        self.calls += 1
        return [self._one(op) for op in operations]

    def _one(self, op: p.Operation) -> p.OperationResult:
        store = self.store
        at = self.clock
        if isinstance(op, p.CreateLead):
            if not op.last_name or not op.company:
                missing = [name for name, value in (("LastName", op.last_name), ("Company", op.company)) if not value]
                return p.OperationResult.failure(
                    p.REQUIRED_FIELD_MISSING, f"Required fields are missing: [{', '.join(missing)}]"
                )
            person = store.person(op.email) or store.add_person(op.email)
            if person.sfdc_id:
                return p.OperationResult.success(person.sfdc_id)
            lead_id = self.new_lead_id()
            store.set_person_sfdc(person, lead_id, "Lead", op.last_name, op.company)
            return p.OperationResult.success(lead_id)
        if isinstance(op, (p.SetCampaignFields, p.SetCampaignStatuses)):
            campaign = store.campaign_by_sfdc_id(op.campaign_sfdc_id)
            if campaign is None:
                return p.OperationResult.failure(p.UNKNOWN_CAMPAIGN, f"no campaign {op.campaign_sfdc_id}")
            if isinstance(op, p.SetCampaignFields):
                store.set_campaign_fields(campaign.id, op.type, op.actual_cost)
            else:
                store.set_campaign_statuses(campaign.id, op.statuses, op.default, op.responded)
            return p.OperationResult.success(campaign.sfdc_id)
        campaign = store.campaign_by_sfdc_id(op.campaign_sfdc_id)
        if campaign is None:
            return p.OperationResult.failure(p.UNKNOWN_CAMPAIGN, f"no campaign {op.campaign_sfdc_id}")
        member = store.person_by_sfdc_id(op.person_sfdc_id)
        if member is None:
            return p.OperationResult.failure(p.UNKNOWN_PERSON, f"no Lead or Contact {op.person_sfdc_id}")
        current = store.memberships(member.id).get(campaign.id)
        if isinstance(op, p.RemoveMember):
            if current is None:
                return p.OperationResult.failure(p.NOT_A_MEMBER, "not a campaign member")
            store.remove_membership(member.id, campaign.id)
            return p.OperationResult.success()
        if op.status not in campaign.statuses:
            # Salesforce would silently use the default status; the local org refuses, like the engine.
            return p.OperationResult.failure(
                p.INVALID_STATUS, f'status "{op.status}" is not a member status of "{campaign.name}"'
            )
        if isinstance(op, p.AddMember):
            if current is not None:
                return p.OperationResult.failure(p.DUPLICATE_VALUE, "Already a campaign member.")
            store.set_membership(member.id, campaign.id, op.status, at)
            return p.OperationResult.success()
        if current is None:
            return p.OperationResult.failure(p.NOT_A_MEMBER, "not a campaign member")
        store.set_membership(member.id, campaign.id, op.status, at)
        return p.OperationResult.success()
