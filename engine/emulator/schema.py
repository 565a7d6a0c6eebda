"""The objects the emulator knows, with the fields, types and permissions Salesforce gives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "picklist", "url"})
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"double", "currency", "int", "percent"})
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
}


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str
    label: str
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False  # must have a value on create, and can't be set to null
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    computed: bool = False  # derived when read (Name, CampaignMember.HasResponded)
    system: bool = False  # set by the emulator (Id, audit fields, IsDeleted)

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def is_id(self) -> bool:
        return self.type in ID_TYPES

    def describe(self) -> dict[str, Any]:
        """The part of a field's describe that permission and shape checks read."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length if self.is_text or self.is_id else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.default is not None or self.system,
            "calculated": self.computed,
            "filterable": True,
            "sortable": self.type != "textarea",
            "groupable": self.type not in ("textarea", "double", "currency", "datetime"),
            "unique": self.name == "Username",
            "idLookup": self.name in ("Id", "Email", "Username", "Name"),
            "nameField": self.name == "Name",
            "custom": False,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "picklistValues": [],
        }


@dataclass(frozen=True)
class SObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    needs_marketing_user: bool = False  # Campaign and its member statuses: the Marketing User permission
    parent_field: str | None = None  # the master record this one is filed under (CampaignId)
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)
    _by_relationship: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for item in self.fields:
            self._by_lower[item.name.lower()] = item
            if item.relationship_name:
                self._by_relationship[item.relationship_name.lower()] = item

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive, as SOQL and the REST API are."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        return self._by_relationship.get(name.lower())

    @property
    def has_is_deleted(self) -> bool:
        return "isdeleted" in self._by_lower

    def describe(self, *, marketing_user: bool, version: str) -> dict[str, Any]:
        allowed = marketing_user or not self.needs_marketing_user
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": self.createable and allowed,
            "updateable": self.updateable and allowed,
            "deletable": self.deletable and allowed,
            "undeletable": self.deletable and allowed,
            "queryable": self.queryable,
            "retrieveable": True,
            "replicateable": True,
            "searchable": True,
            "triggerable": True,
            "layoutable": True,
            "mergeable": False,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
            "fields": [self._field_describe(item, allowed) for item in self.fields],
        }

    def _field_describe(self, item: FieldDef, allowed: bool) -> dict[str, Any]:
        described = item.describe()
        described["createable"] = described["createable"] and self.createable and allowed
        described["updateable"] = described["updateable"] and self.updateable and allowed
        return described

    def describe_global(self, *, marketing_user: bool, version: str) -> dict[str, Any]:
        full = self.describe(marketing_user=marketing_user, version=version)
        del full["fields"]
        return full


def _system_fields(*, is_deleted: bool = True) -> list[FieldDef]:
    ro: dict[str, Any] = {"createable": False, "updateable": False, "system": True}
    items = [FieldDef("Id", "id", "Record ID", 18, nillable=False, **ro)]
    if is_deleted:
        items.append(FieldDef("IsDeleted", "boolean", "Deleted", nillable=False, **ro))
    items += [
        FieldDef("CreatedDate", "datetime", "Created Date", nillable=False, **ro),
        FieldDef(
            "CreatedById", "reference", "Created By ID", 18, reference_to=("User",), relationship_name="CreatedBy", **ro
        ),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, **ro),
        FieldDef(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            **ro,
        ),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", nillable=False, **ro),
    ]
    return items


def _owner() -> FieldDef:
    return FieldDef("OwnerId", "reference", "Owner ID", 18, reference_to=("User",), relationship_name="Owner")


def _name(length: int) -> FieldDef:
    return FieldDef("Name", "string", "Full Name", length, createable=False, updateable=False, computed=True)


LEAD = SObjectDef(
    "Lead",
    "Lead",
    "Leads",
    "00Q",
    (
        *_system_fields(),
        FieldDef("FirstName", "string", "First Name", 40),
        FieldDef("LastName", "string", "Last Name", 80, nillable=False, required=True),
        _name(121),
        FieldDef("Company", "string", "Company", 255, nillable=False, required=True),
        FieldDef("Email", "email", "Email", 80),
        FieldDef("Phone", "phone", "Phone", 40),
        FieldDef("Title", "string", "Title", 128),
        FieldDef("Status", "picklist", "Lead Status", 255, nillable=False, default="Open - Not Contacted"),
        FieldDef("LeadSource", "picklist", "Lead Source", 255),
        FieldDef("IsConverted", "boolean", "Converted", nillable=False, updateable=False, default=False),
        _owner(),
    ),
)

CONTACT = SObjectDef(
    "Contact",
    "Contact",
    "Contacts",
    "003",
    (
        *_system_fields(),
        FieldDef("FirstName", "string", "First Name", 40),
        FieldDef("LastName", "string", "Last Name", 80, nillable=False, required=True),
        _name(121),
        FieldDef("Email", "email", "Email", 80),
        FieldDef("Phone", "phone", "Business Phone", 40),
        FieldDef("Title", "string", "Title", 128),
        FieldDef("AccountId", "reference", "Account ID", 18, reference_to=("Account",), relationship_name="Account"),
        FieldDef("LeadSource", "picklist", "Lead Source", 255),
        _owner(),
    ),
)

ACCOUNT = SObjectDef(
    "Account",
    "Account",
    "Accounts",
    "001",
    (
        *_system_fields(),
        FieldDef("Name", "string", "Account Name", 255, nillable=False, required=True),
        FieldDef("Type", "picklist", "Account Type", 255),
        FieldDef("Industry", "picklist", "Industry", 255),
        _owner(),
    ),
)

CAMPAIGN = SObjectDef(
    "Campaign",
    "Campaign",
    "Campaigns",
    "701",
    (
        *_system_fields(),
        FieldDef("Name", "string", "Name", 80, nillable=False, required=True),
        FieldDef("Type", "picklist", "Type", 255),
        FieldDef("Status", "picklist", "Status", 255, default="Planned"),
        FieldDef("IsActive", "boolean", "Active", nillable=False, default=False),
        FieldDef("StartDate", "date", "Start Date"),
        FieldDef("EndDate", "date", "End Date"),
        FieldDef("ActualCost", "currency", "Actual Cost in Campaign"),
        FieldDef("BudgetedCost", "currency", "Budgeted Cost in Campaign"),
        FieldDef("ExpectedRevenue", "currency", "Expected Revenue in Campaign"),
        FieldDef("Description", "textarea", "Description", 32000),
        FieldDef(
            "ParentId", "reference", "Parent Campaign ID", 18, reference_to=("Campaign",), relationship_name="Parent"
        ),
        _owner(),
    ),
    needs_marketing_user=True,
)

CAMPAIGN_MEMBER = SObjectDef(
    "CampaignMember",
    "Campaign Member",
    "Campaign Members",
    "00v",
    (
        *_system_fields(),
        FieldDef(
            "CampaignId",
            "reference",
            "Campaign ID",
            18,
            updateable=False,
            nillable=False,
            required=True,
            reference_to=("Campaign",),
            relationship_name="Campaign",
        ),
        FieldDef(
            "LeadId", "reference", "Lead ID", 18, updateable=False, reference_to=("Lead",), relationship_name="Lead"
        ),
        FieldDef(
            "ContactId",
            "reference",
            "Contact ID",
            18,
            updateable=False,
            reference_to=("Contact",),
            relationship_name="Contact",
        ),
        FieldDef("Status", "picklist", "Status", 40),
        FieldDef(
            "HasResponded", "boolean", "Responded", createable=False, updateable=False, nillable=False, computed=True
        ),
    ),
    parent_field="CampaignId",
)

CAMPAIGN_MEMBER_STATUS = SObjectDef(
    "CampaignMemberStatus",
    "Campaign Member Status",
    "Campaign Member Statuses",
    "01Y",
    (
        *_system_fields(),
        FieldDef(
            "CampaignId",
            "reference",
            "Campaign ID",
            18,
            updateable=False,
            nillable=False,
            required=True,
            reference_to=("Campaign",),
        ),
        FieldDef("Label", "string", "Member Status", 765, nillable=False, required=True),
        FieldDef("IsDefault", "boolean", "Default", nillable=False, default=False),
        FieldDef("HasResponded", "boolean", "Responded", nillable=False, default=False),
        FieldDef("SortOrder", "int", "Sort Order"),
    ),
    needs_marketing_user=True,
    parent_field="CampaignId",
)

USER = SObjectDef(
    "User",
    "User",
    "Users",
    "005",
    (
        *_system_fields(is_deleted=False),
        FieldDef("Username", "string", "Username", 80, nillable=False, required=True),
        FieldDef("FirstName", "string", "First Name", 40),
        FieldDef("LastName", "string", "Last Name", 80, nillable=False, required=True),
        _name(121),
        FieldDef("Email", "email", "Email", 128, nillable=False, required=True),
        FieldDef("Alias", "string", "Alias", 8, nillable=False),
        FieldDef("IsActive", "boolean", "Active", nillable=False, default=True),
        FieldDef("UserPermissionsMarketingUser", "boolean", "Marketing User", nillable=False, default=False),
    ),
    deletable=False,
)

ORGANIZATION = SObjectDef(
    "Organization",
    "Organization",
    "Organizations",
    "00D",
    (
        *_system_fields(is_deleted=False),
        FieldDef("Name", "string", "Name", 80),
        FieldDef("IsSandbox", "boolean", "Is Sandbox", nillable=False, default=False),
        FieldDef("OrganizationType", "picklist", "Edition", 255),
        FieldDef("InstanceName", "string", "Instance Name", 5),
    ),
    createable=False,
    updateable=False,
    deletable=False,
)

OBJECTS: tuple[SObjectDef, ...] = (
    ACCOUNT,
    CAMPAIGN,
    CAMPAIGN_MEMBER,
    CAMPAIGN_MEMBER_STATUS,
    CONTACT,
    LEAD,
    ORGANIZATION,
    USER,
)
_BY_LOWER = {item.name.lower(): item for item in OBJECTS}
_BY_PREFIX = {item.key_prefix: item for item in OBJECTS}


def sobject(name: str) -> SObjectDef | None:
    """Case-insensitive, as the REST API's URLs and SOQL's FROM are."""
    return _BY_LOWER.get(name.lower())


def sobject_for_id(record_id: str) -> SObjectDef | None:
    return _BY_PREFIX.get(record_id[:3])
