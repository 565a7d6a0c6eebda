"""The organization: Salesforce's record rules over the store.

Every method runs inside the caller's `store.transaction()`; a rule broken raises `SfError` before anything is
written, so a failed record leaves no trace even without a savepoint.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.emulator import schema as s
from engine.emulator.ids import make_id, normalize_id
from engine.emulator.soql_eval import Executor, QueryResult
from engine.emulator.store import Record, Store
from engine.emulator.timeutil import Clock, floor_minute, format_datetime, parse_date, parse_datetime

DEFAULT_USERNAME = "admin@emulator.local"
REPLICATION_DAYS = 30
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NO_ACCESS = (
    "You do not have the level of access necessary to perform the operation you requested. Please contact the "
    "owner of the record or your administrator if access is necessary."
)


class SfError(Exception):
    """A Salesforce error answer. `fields` is None for errors that carry no field list (NOT_FOUND, ...);
    `whole_request` marks errors that fail a whole collection call (a body that can't be deserialized)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        *,
        whole_request: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.whole_request = whole_request

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]

    def collection_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields or [])}


def dml_error(code: str, message: str, fields: list[str] | None = None) -> SfError:
    return SfError(400, code, message, list(fields or []))


def not_found(message: str = "The requested resource does not exist") -> SfError:
    return SfError(404, "NOT_FOUND", message)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a session acts as: its user's id and whether that user has the Marketing User permission."""

    user_id: str
    username: str
    marketing_user: bool


class Org:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        with store.transaction():
            org_id = store.meta("org_id")
            if org_id is None:
                org_id = make_id("00D", store.next_number("00D"))
                store.set_meta("org_id", org_id)
                store.set_meta("created", format_datetime(clock.now()))
            self.org_id = org_id
            self._bootstrap()

    def _bootstrap(self) -> None:
        """The organization record and its first user (a Marketing User), when missing."""
        now = format_datetime(self.clock.now())
        user_id = self.store.meta("default_user")
        if user_id is None or self.store.get(user_id) is None:
            user_id = make_id("005", self.store.next_number("005"))
            self.store.set_meta("default_user", user_id)
            self.store.insert(
                s.USER,
                self._system(s.USER, user_id, user_id, now)
                | {
                    "Username": DEFAULT_USERNAME,
                    "FirstName": "Emulator",
                    "LastName": "Admin",
                    "Email": DEFAULT_USERNAME,
                    "Alias": "eadmin",
                    "IsActive": True,
                    "UserPermissionsMarketingUser": True,
                },
            )
        self.default_user_id = user_id
        if self.store.get(self.org_id) is None:
            self.store.insert(
                s.ORGANIZATION,
                self._system(s.ORGANIZATION, self.org_id, user_id, now)
                | {"Name": "Smartcampaign Emulator", "IsSandbox": True, "OrganizationType": "Developer Edition"}
                | {"InstanceName": "EMU8"},
            )

    def reset(self) -> None:
        """Every record gone but the organization and its first user (restored as it was made)."""
        self.store.clear_records(keep={self.org_id})
        self.store.set_meta("default_user", "")
        self._bootstrap()

    @property
    def created(self) -> datetime:
        value = parse_datetime(self.store.meta("created") or "")
        return value or self.clock.now()

    # ------------------------------------------------------------------------------------------ sessions

    def new_token(self) -> str:
        return f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"

    def issue_session(self, user_id: str) -> str:
        token = self.new_token()
        self.store.add_session(token, user_id, format_datetime(self.clock.now()))
        return token

    def actor(self, user_id: str | None = None) -> Actor:
        user = self.store.get(user_id or self.default_user_id) or self.store.get(self.default_user_id) or {}
        return Actor(
            str(user.get("Id", self.default_user_id)),
            str(user.get("Username", DEFAULT_USERNAME)),
            bool(user.get("UserPermissionsMarketingUser")),
        )

    def find_user(self, username: str) -> Record | None:
        wanted = username.strip().casefold()
        for user in self.store.all(s.USER):
            if str(user.get("Username", "")).casefold() == wanted:
                return user
        return None

    # --------------------------------------------------------------------------------------------- reads

    def materialize(self, sobject: s.SObjectDef, record: Record) -> Record:
        """The record as the API shows it: every field in schema order, computed ones filled in."""
        out = {item.name: record.get(item.name) for item in sobject.fields}
        name_field = sobject.field("Name")
        if name_field is not None and name_field.computed:
            out["Name"] = " ".join(part for part in (record.get("FirstName"), record.get("LastName")) if part)
        if sobject is s.CAMPAIGN_MEMBER:
            status = self._status(record.get("CampaignId"), record.get("Status"))
            out["HasResponded"] = bool(status and status.get("HasResponded"))
        return out

    def _status(self, campaign_id: Any, label: Any) -> Record | None:
        if not campaign_id:
            return None
        for status in self.store.children(s.CAMPAIGN_MEMBER_STATUS, str(campaign_id)):
            if not status.get("IsDeleted") and status.get("Label") == label:
                return status
        return None

    def live_statuses(self, campaign_id: str) -> list[Record]:
        statuses = [
            item for item in self.store.children(s.CAMPAIGN_MEMBER_STATUS, campaign_id) if not item.get("IsDeleted")
        ]
        return sorted(statuses, key=lambda item: (item.get("SortOrder") is None, item.get("SortOrder") or 0))

    def rows(self, sobject: s.SObjectDef, include_deleted: bool) -> Iterator[Record]:
        for record in self.store.all(sobject):
            if include_deleted or not record.get("IsDeleted"):
                yield self.materialize(sobject, record)

    def record(self, record_id: str) -> Record | None:
        found = self.store.get(normalize_id(record_id) or "")
        sobject = s.sobject_for_id(record_id)
        if found is None or sobject is None or found.get("IsDeleted"):
            return None
        return self.materialize(sobject, found)

    def query(self, text: str, *, include_deleted: bool, version: str) -> QueryResult:
        return Executor(self, version).run(text, include_deleted=include_deleted)

    def existing(self, sobject: s.SObjectDef, record_id: str, *, collection: bool = False) -> Record:
        """The live record the URL (or collection entry) names, else Salesforce's not-found answers."""
        full = normalize_id(record_id)
        if full is None or s.sobject_for_id(full) is not sobject:
            if collection:
                raise dml_error("MALFORMED_ID", f"malformed id {record_id}")
            raise not_found(f"Provided external ID field does not exist or is not accessible: {record_id}")
        found = self.store.get(full)
        if found is None:
            if collection:
                raise dml_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            raise not_found()
        if found.get("IsDeleted"):
            if collection:
                raise dml_error("ENTITY_IS_DELETED", "entity is deleted")
            raise SfError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return found

    def get(self, sobject: s.SObjectDef, record_id: str, fields: list[str] | None, version: str) -> Record:
        record = self.materialize(sobject, self.existing(sobject, record_id))
        out: Record = {
            "attributes": {
                "type": sobject.name,
                "url": f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}",
            }
        }
        if fields:
            for name in fields:
                item = sobject.field(name.strip())
                if item is None:
                    raise SfError(
                        400, "INVALID_FIELD", f"No such column '{name.strip()}' on sobject of type {sobject.name}"
                    )
                out[item.name] = record[item.name]
        else:
            out.update(record)
        return out

    # ------------------------------------------------------------------------------------------- writes

    def _system(self, sobject: s.SObjectDef, record_id: str, user_id: str, now: str) -> Record:
        record: Record = {"Id": record_id}
        if sobject.has_is_deleted:
            record["IsDeleted"] = False
        record.update(
            CreatedDate=now, CreatedById=user_id, LastModifiedDate=now, LastModifiedById=user_id, SystemModstamp=now
        )
        return record

    def _check_access(self, sobject: s.SObjectDef, actor: Actor, operation: str) -> None:
        allowed = {"create": sobject.createable, "update": sobject.updateable, "delete": sobject.deletable}[operation]
        if not allowed:
            verb = {"create": "inserted", "update": "updated", "delete": "deleted"}[operation]
            raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be {verb}: {sobject.name}", [])
        if sobject.needs_marketing_user and not actor.marketing_user:
            raise dml_error("INSUFFICIENT_ACCESS_OR_READONLY", NO_ACCESS)

    def coerce(self, sobject: s.SObjectDef, data: dict[str, Any], *, creating: bool) -> Record:
        """Field values as stored: canonical names, typed, empty text as null. Unknown fields and values of the
        wrong JSON type fail the whole request; read-only fields and bad values fail the record."""
        if not isinstance(data, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject", whole_request=True)
        values: Record = {}
        read_only: list[str] = []
        for key, raw in data.items():
            if key == "attributes":
                continue
            item = sobject.field(key)
            if item is None:
                raise SfError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {sobject.name}",
                    whole_request=True,
                )
            if not (item.createable if creating else item.updateable):
                read_only.append(item.name)
                continue
            values[item.name] = self._coerce_value(item, raw)
        if read_only:
            raise dml_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings of this "
                "field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        return values

    @staticmethod
    def _coerce_value(item: s.FieldDef, raw: Any) -> Any:
        def parser_error() -> SfError:
            kind = {"datetime": "datetime", "date": "date", "boolean": "boolean", "int": "int"}.get(item.type, "double")
            token = (
                "VALUE_STRING"
                if isinstance(raw, str)
                else "VALUE_NUMBER"
                if isinstance(raw, int | float)
                else "START_OBJECT"
            )
            return SfError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {kind} from {token} value {raw} or request may be missing a required "
                f"field at [line:1, column:1]",
                whole_request=True,
            )

        if raw is None:
            return False if item.type == "boolean" else None
        if isinstance(raw, dict | list):
            raise parser_error()
        if item.type == "boolean":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            raise parser_error()
        if item.type in s.NUMBER_TYPES:
            if isinstance(raw, bool):
                raise parser_error()
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise parser_error() from None
            return int(number) if item.type == "int" else number
        if item.type == "datetime":
            value = parse_datetime(str(raw))
            if value is None:
                raise parser_error()
            return format_datetime(value)
        if item.type == "date":
            text = str(raw)
            parsed = parse_date(text[:10])
            if parsed is None:
                raise parser_error()
            return parsed.isoformat()
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if text == "":
            return None
        if item.is_id:
            full = normalize_id(text)
            if full is None:
                raise dml_error("MALFORMED_ID", f"{item.label}: id value of incorrect type: {text}", [item.name])
            return full
        if item.length and len(text) > item.length:
            raise dml_error(
                "STRING_TOO_LONG",
                f"{item.label}: data value too large: {text[: item.length]} (max length={item.length})",
                [item.name],
            )
        if item.type == "email" and not _EMAIL_RE.match(text):
            raise dml_error("INVALID_EMAIL_ADDRESS", f"{item.label}: invalid email address: {text}", [item.name])
        return text

    def _check_references(self, sobject: s.SObjectDef, values: Record) -> None:
        for name, value in values.items():
            item = sobject.field(name)
            if item is None or item.type != "reference" or value is None:
                continue
            targets = [target for target in (s.sobject(kind) for kind in item.reference_to) if target is not None]
            if not any(str(value).startswith(target.key_prefix) for target in targets):
                raise dml_error(
                    "FIELD_INTEGRITY_EXCEPTION", f"{item.label}: id value of incorrect type: {value}", [item.name]
                )
            found = self.store.get(str(value))
            if found is None:
                raise dml_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            if found.get("IsDeleted"):
                raise dml_error("ENTITY_IS_DELETED", "entity is deleted", [])

    @staticmethod
    def _check_required(sobject: s.SObjectDef, record: Record) -> None:
        missing = [item.name for item in sobject.fields if item.required and record.get(item.name) in (None, "")]
        if missing:
            raise dml_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)

    def create(self, sobject: s.SObjectDef, data: dict[str, Any], actor: Actor) -> str:
        values = self.coerce(sobject, data, creating=True)
        return self.create_coerced(sobject, values, actor)

    def create_coerced(self, sobject: s.SObjectDef, values: Record, actor: Actor) -> str:
        self._check_access(sobject, actor, "create")
        record: Record = {}
        for item in sobject.fields:
            if item.default is not None and not item.system:
                record[item.name] = item.default
        if sobject.field("OwnerId"):
            record["OwnerId"] = actor.user_id
        record.update({key: value for key, value in values.items() if value is not None or key not in record})
        for item in sobject.fields:
            if item.type == "boolean" and record.get(item.name) is None and not item.computed and not item.system:
                record[item.name] = False
        self._check_required(sobject, record)
        self._check_references(sobject, values)
        self._before_create(sobject, record)
        now = format_datetime(self.clock.now())
        record_id = make_id(sobject.key_prefix, self.store.next_number(sobject.key_prefix))
        stored = self._system(sobject, record_id, actor.user_id, now) | record
        self.store.insert(sobject, stored)
        self._after_create(sobject, stored, actor)
        return record_id

    def _before_create(self, sobject: s.SObjectDef, record: Record) -> None:
        if sobject is s.CAMPAIGN_MEMBER:
            if not record.get("LeadId") and not record.get("ContactId"):
                raise dml_error(
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [LeadId, ContactId]",
                    ["LeadId", "ContactId"],
                )
            for member in self.store.children(s.CAMPAIGN_MEMBER, record["CampaignId"]):
                if member.get("IsDeleted"):
                    continue
                same_lead = record.get("LeadId") and member.get("LeadId") == record.get("LeadId")
                same_contact = record.get("ContactId") and member.get("ContactId") == record.get("ContactId")
                if same_lead or same_contact:
                    raise dml_error("DUPLICATE_VALUE", "Already a campaign member.", [])
            record["Status"] = self._member_status(record["CampaignId"], record.get("Status"))
        elif sobject is s.CAMPAIGN_MEMBER_STATUS:
            siblings = self.live_statuses(record["CampaignId"])
            self._check_status_unique(record, siblings)
            if record.get("SortOrder") is None:
                record["SortOrder"] = max((int(item.get("SortOrder") or 0) for item in siblings), default=0) + 1
        elif sobject is s.USER:
            self._check_username(record, None)
            if not record.get("Alias"):
                record["Alias"] = ((record.get("FirstName") or "")[:1] + str(record["LastName"]))[:8].lower()

    def _after_create(self, sobject: s.SObjectDef, record: Record, actor: Actor) -> None:
        if sobject is s.CAMPAIGN:
            for order, (label, default, responded) in enumerate((("Sent", True, False), ("Responded", False, True)), 1):
                status_id = make_id(
                    s.CAMPAIGN_MEMBER_STATUS.key_prefix, self.store.next_number(s.CAMPAIGN_MEMBER_STATUS.key_prefix)
                )
                self.store.insert(
                    s.CAMPAIGN_MEMBER_STATUS,
                    self._system(s.CAMPAIGN_MEMBER_STATUS, status_id, actor.user_id, record["CreatedDate"])
                    | {"CampaignId": record["Id"], "Label": label, "IsDefault": default, "HasResponded": responded}
                    | {"SortOrder": order},
                )
        elif sobject is s.CAMPAIGN_MEMBER_STATUS and record.get("IsDefault"):
            self._clear_other_defaults(record, actor)

    def _member_status(self, campaign_id: str, wanted: Any) -> str | None:
        """Salesforce's rule: a status the campaign doesn't have silently becomes the campaign's default."""
        statuses = self.live_statuses(campaign_id)
        if wanted is not None and any(item.get("Label") == wanted for item in statuses):
            return str(wanted)
        for item in statuses:
            if item.get("IsDefault"):
                return str(item["Label"])
        return str(statuses[0]["Label"]) if statuses else None

    @staticmethod
    def _check_status_unique(record: Record, siblings: Iterable[Record]) -> None:
        for other in siblings:
            if other.get("Id") == record.get("Id"):
                continue
            same_label = str(other.get("Label", "")).casefold() == str(record.get("Label", "")).casefold()
            same_order = record.get("SortOrder") is not None and other.get("SortOrder") == record.get("SortOrder")
            if same_label or same_order:
                raise dml_error(
                    "DUPLICATE_VALUE",
                    "duplicate value found: <unknown> duplicates value on record with id: <unknown>",
                    [],
                )

    def _check_username(self, record: Record, own_id: str | None) -> None:
        other = self.find_user(str(record.get("Username", "")))
        if other is not None and other["Id"] != own_id:
            raise dml_error(
                "DUPLICATE_USERNAME",
                "Duplicate Username.<br>The username already exists in this or another Salesforce organization. "
                "Usernames must be unique across all Salesforce organizations. To resolve, use a different username "
                "(it doesn't need to match the user's email address).",
                ["Username"],
            )

    def _touch(self, record: Record, actor: Actor) -> Record:
        now = format_datetime(self.clock.now())
        return record | {"LastModifiedDate": now, "LastModifiedById": actor.user_id, "SystemModstamp": now}

    def _clear_other_defaults(self, record: Record, actor: Actor) -> None:
        for other in self.live_statuses(record["CampaignId"]):
            if other["Id"] != record["Id"] and other.get("IsDefault"):
                self.store.save(s.CAMPAIGN_MEMBER_STATUS, self._touch(other | {"IsDefault": False}, actor))

    def update(
        self, sobject: s.SObjectDef, record_id: str, data: dict[str, Any], actor: Actor, *, collection: bool = False
    ) -> None:
        data = dict(data)
        for key in [key for key in data if key.lower() == "id"]:
            given = data.pop(key)
            if normalize_id(str(given)) != normalize_id(record_id):
                raise dml_error("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Id.", ["Id"])
        values = self.coerce(sobject, data, creating=False)
        self.update_coerced(sobject, record_id, values, actor, collection=collection)

    def update_coerced(
        self, sobject: s.SObjectDef, record_id: str, values: Record, actor: Actor, *, collection: bool = False
    ) -> None:
        current = self.existing(sobject, record_id, collection=collection)
        self._check_access(sobject, actor, "update")
        record = current | values
        for item in sobject.fields:
            if item.type == "boolean" and item.name in values and values[item.name] is None:
                record[item.name] = False
        self._check_required(sobject, record)
        self._check_references(sobject, values)
        if sobject is s.CAMPAIGN_MEMBER and "Status" in values:
            record["Status"] = self._member_status(record["CampaignId"], values["Status"])
        elif sobject is s.CAMPAIGN_MEMBER_STATUS:
            self._before_status_update(current, record)
        elif sobject is s.USER and "Username" in values:
            self._check_username(record, current["Id"])
        self.store.save(sobject, self._touch(record, actor))
        if sobject is s.CAMPAIGN_MEMBER_STATUS:
            if record.get("IsDefault") and not current.get("IsDefault"):
                self._clear_other_defaults(record, actor)
            if record.get("Label") != current.get("Label"):
                for member in self.store.children(s.CAMPAIGN_MEMBER, record["CampaignId"]):
                    if member.get("Status") == current.get("Label") and not member.get("IsDeleted"):
                        self.store.save(s.CAMPAIGN_MEMBER, self._touch(member | {"Status": record["Label"]}, actor))

    def _before_status_update(self, current: Record, record: Record) -> None:
        """A campaign keeps one default and at least one responded status: clearing the flag on the default
        or on the last responded status leaves it set (silently, the emulator's choice; make another status
        the default or responded instead)."""
        siblings = self.live_statuses(record["CampaignId"])
        self._check_status_unique(record, siblings)
        if current.get("IsDefault") and not record.get("IsDefault"):
            record["IsDefault"] = True
        others_respond = any(item.get("HasResponded") for item in siblings if item["Id"] != record["Id"])
        if current.get("HasResponded") and not record.get("HasResponded") and not others_respond:
            record["HasResponded"] = True

    def delete(self, sobject: s.SObjectDef, record_id: str, actor: Actor, *, collection: bool = False) -> None:
        current = self.existing(sobject, record_id, collection=collection)
        self._check_access(sobject, actor, "delete")
        if sobject is s.CAMPAIGN_MEMBER_STATUS:
            siblings = self.live_statuses(current["CampaignId"])
            if current.get("IsDefault"):
                raise dml_error("DELETE_FAILED", "Cannot delete the default member status of a campaign", [])
            if current.get("HasResponded") and not any(
                item.get("HasResponded") for item in siblings if item["Id"] != current["Id"]
            ):
                raise dml_error("DELETE_FAILED", "A campaign must have at least one responded member status", [])
        self._mark_deleted(sobject, current, actor)

    def _mark_deleted(self, sobject: s.SObjectDef, record: Record, actor: Actor) -> None:
        touched = self._touch(record, actor)
        self.store.save(sobject, touched | {"IsDeleted": True, "_deletedDate": touched["SystemModstamp"]})
        for child_object, child in self._cascade(sobject, record):
            if not child.get("IsDeleted"):
                self._mark_deleted(child_object, child, actor)

    def _cascade(self, sobject: s.SObjectDef, record: Record) -> Iterator[tuple[s.SObjectDef, Record]]:
        """What Salesforce deletes with a record: a campaign's members and statuses, a person's memberships,
        an account's contacts."""
        record_id = record["Id"]
        if sobject is s.CAMPAIGN:
            for member in self.store.children(s.CAMPAIGN_MEMBER, record_id):
                yield s.CAMPAIGN_MEMBER, member
            for status in self.store.children(s.CAMPAIGN_MEMBER_STATUS, record_id):
                yield s.CAMPAIGN_MEMBER_STATUS, status
        elif sobject in (s.LEAD, s.CONTACT):
            key = "LeadId" if sobject is s.LEAD else "ContactId"
            for member in self.store.all(s.CAMPAIGN_MEMBER):
                if member.get(key) == record_id:
                    yield s.CAMPAIGN_MEMBER, member
        elif sobject is s.ACCOUNT:
            for contact in self.store.all(s.CONTACT):
                if contact.get("AccountId") == record_id:
                    yield s.CONTACT, contact

    # -------------------------------------------------------------------------------------- replication

    def _window(self, start_text: str | None, end_text: str | None) -> tuple[datetime, datetime]:
        if not start_text or not end_text:
            missing = "start" if not start_text else "end"
            raise SfError(400, "MISSING_ARGUMENT", f"{missing} parameter is required")
        start = parse_datetime(start_text.replace(" ", "+"))
        end = parse_datetime(end_text.replace(" ", "+"))
        if start is None or end is None:
            bad = start_text if start is None else end_text
            raise SfError(400, "INVALID_REPLICATION_DATE", f"Unable to parse date-time: {bad}")
        now = self.clock.now()
        start, end = floor_minute(start), floor_minute(end)
        if end <= start:
            raise SfError(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate by more than one minute",
            )
        if start < floor_minute(now) - timedelta(days=REPLICATION_DAYS):
            raise SfError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {REPLICATION_DAYS} days ago")
        return start, min(end, floor_minute(now))

    def updated(self, sobject: s.SObjectDef, start_text: str | None, end_text: str | None) -> dict[str, Any]:
        """getUpdated: live records whose SystemModstamp is in [start, end), both cut to the minute and the end
        no later than the current minute; `latestDateCovered` is that end."""
        start, end = self._window(start_text, end_text)
        ids = []
        for record in self.store.all(sobject):
            stamp = parse_datetime(str(record.get("SystemModstamp", "")))
            if not record.get("IsDeleted") and stamp is not None and start <= stamp < end:
                ids.append(record["Id"])
        return {"ids": ids, "latestDateCovered": format_datetime(end)}

    def deleted(self, sobject: s.SObjectDef, start_text: str | None, end_text: str | None) -> dict[str, Any]:
        """getDeleted: records deleted in [start, end), as `updated` cuts the window."""
        start, end = self._window(start_text, end_text)
        found = []
        for record in self.store.all(sobject):
            stamp = parse_datetime(str(record.get("_deletedDate", "")))
            if record.get("IsDeleted") and stamp is not None and start <= stamp < end:
                found.append({"id": record["Id"], "deletedDate": record["_deletedDate"]})
        earliest = max(floor_minute(self.created), floor_minute(self.clock.now()) - timedelta(days=15))
        return {
            "deletedRecords": found,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(end),
        }
