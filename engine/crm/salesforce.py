"""Salesforce through simple-salesforce: batched through sObject Collections, validated, retried.

- Operations go out in waves: an operation waits only for earlier operations on the same member (or for
  the Lead it needs); within a wave, operations of one kind share `composite/sobjects` calls of up to 200
  records (`allOrNone: false`), and every per-record result is mapped back to its operation.
- Member statuses are checked against the campaign's CampaignMemberStatus labels before anything is
  written (Salesforce itself silently replaces an unknown status with the campaign's default).
- `DUPLICATE_VALUE` is "already a member"; Leads are looked up by email before they are created, so a
  retried create does not make a second Lead.
- Transient failures (5xx, 429, timeouts, `UNABLE_TO_LOCK_ROW`) are retried with exponential backoff;
  `INVALID_SESSION_ID` logs in again once; `REQUEST_LIMIT_EXCEEDED` raises `QuotaExceeded` so callers keep
  the work queued until the quota window allows.
- API usage is read from `Sforce-Limit-Info` on every response. Secrets never appear in messages.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)
from simple_salesforce.format import format_soql
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from engine.model.settings import SalesforceSettings
from engine.runtime import adapter as p

log = logging.getLogger("smartcampaign.salesforce")

T = TypeVar("T")

LEAD_PREFIX = "00Q"
CONTACT_PREFIX = "003"
LOCK_CODE = "UNABLE_TO_LOCK_ROW"
MALFORMED_ID = "MALFORMED_ID"
ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
LIMIT_RE = re.compile(r"api-usage=(\d+)/(\d+)")


class SalesforceUnavailable(Exception):
    """Salesforce cannot be used right now (unreachable, failing, not authenticated). Work stays queued.

    Raised by `execute` part way through a batch, `results` holds the answers of the operations that were sent
    (None for those that were not: they stay queued and go out later, in order)."""

    results: list[p.OperationResult | None] | None = None


class QuotaExceeded(SalesforceUnavailable):
    """The daily API quota is spent (REQUEST_LIMIT_EXCEEDED): actions wait for the quota window."""


class AuthenticationError(SalesforceUnavailable):
    """The credentials were refused."""


@dataclass
class ApiUsage:
    used: int = 0
    limit: int = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def endpoint_of(method: str, url: str) -> str:
    """A call's endpoint as operators read it: `POST composite/sobjects`, `GET query`, `GET sobjects/Lead/updated`."""
    parts = [part for part in urlsplit(url).path.split("/") if part]
    if "data" in parts:
        rest = parts[parts.index("data") + 2 :]  # after /services/data/vNN.N
        if rest[:1] == ["sobjects"] and len(rest) > 1:
            key = "/".join(rest[:2] + [part for part in rest[2:3] if part in ("updated", "deleted", "describe")])
        elif rest[:1] == ["composite"]:
            key = "/".join(rest[:2])
        else:
            key = rest[0] if rest else "versions"
    elif "oauth2" in parts:
        key = "oauth2/" + parts[-1]
    elif "Soap" in parts:
        key = "soap login"
    else:
        key = "/".join(parts[-2:]) or "/"
    return f"{method.upper()} {key}"


class _CountingSession(requests.Session):
    """A requests session that counts every API call (by endpoint) and reads `Sforce-Limit-Info`. Thread-safe:
    collection requests of one batch go out side by side."""

    def __init__(self, settings: SalesforceSettings) -> None:
        super().__init__()
        self.by_endpoint: Counter[str] = Counter()
        self.usage = ApiUsage()
        self.timeout = settings.timeout
        self._lock = threading.Lock()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(settings.concurrency * 2, 10))
        self.mount("https://", adapter)
        if settings.ca_file:
            self.verify = settings.ca_file
            # a set REQUESTS_CA_BUNDLE would otherwise win over `verify`
            self.trust_env = False

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(self.by_endpoint.values())

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        endpoint = endpoint_of(method.decode() if isinstance(method, bytes) else method,
                               url.decode() if isinstance(url, bytes) else url)  # fmt: skip
        with self._lock:
            self.by_endpoint[endpoint] += 1
        response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]
        match = LIMIT_RE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.usage = ApiUsage(int(match.group(1)), int(match.group(2)))
        return response


def _error_codes(error: SalesforceError) -> list[str]:
    content = error.content
    if isinstance(content, list):
        return [str(item.get("errorCode", "")) for item in content if isinstance(item, dict)]
    if isinstance(content, dict):
        return [str(content.get("errorCode", content.get("error", "")))]
    return []


def _error_message(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}".strip()
    return f"HTTP {error.status} from {error.resource_name or 'Salesforce'}"


def _transient(error: BaseException) -> bool:
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(error, SalesforceError):
        if error.status >= 500 or error.status == 429:  # 429: too many requests at once, slow down
            return True
        return LOCK_CODE in _error_codes(error)
    return False


def _record_error(result: dict[str, Any]) -> tuple[str, str]:
    errors = result.get("errors") or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("statusCode") or first.get("errorCode") or "ERROR"), str(first.get("message", ""))
    return "ERROR", "the record was not saved"


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SalesforceAdapter:
    """The CRM adapter for a real Salesforce org (or the local emulator)."""

    name = "salesforce"
    shares_mirror = False

    def __init__(self, settings: SalesforceSettings, *, sleep: Callable[[float], None] | None = None) -> None:
        self.settings = settings
        self._session = _CountingSession(settings)
        self._sf: Salesforce | None = None
        self._statuses: dict[str, tuple[tuple[str, ...], float]] = {}  # campaign id (15) -> (labels, read at)
        self._execute_started = 0.0
        self._sleep = sleep

    # ------------------------------------------------------------------------------ connection
    @property
    def calls(self) -> int:
        return self._session.calls

    @property
    def usage(self) -> ApiUsage:
        return self._session.usage

    def calls_by_endpoint(self) -> dict[str, int]:
        with self._session._lock:
            return dict(self._session.by_endpoint)

    def connect(self) -> Salesforce:
        if self._sf is None:
            self._sf = self._login()
        return self._sf

    def _login(self) -> Salesforce:
        s = self.settings
        method = s.auth_method
        version = s.api_version
        try:
            if method == "session":
                assert s.session_id is not None and s.instance_url is not None
                return Salesforce(
                    instance_url=s.instance_url,
                    session_id=s.session_id.get_secret_value(),
                    session=self._session,
                    version=version,
                )
            if method == "client_credentials":
                assert s.client_secret is not None
                base = s.login_url or s.instance_url
                if not base:
                    raise AuthenticationError("client credentials need login_url (your My Domain URL)")
                data = {
                    "grant_type": "client_credentials",
                    "client_id": s.client_id or "",
                    "client_secret": s.client_secret.get_secret_value(),
                }
                response = self._session.post(f"{base}/services/oauth2/token", data=data)
                if response.status_code != 200:
                    raise AuthenticationError(
                        f"OAuth client credentials refused by {base} (HTTP {response.status_code})"
                    )
                body = response.json()
                return Salesforce(
                    instance_url=body["instance_url"],
                    session_id=body["access_token"],
                    session=self._session,
                    version=version,
                )
            if method == "password":
                assert s.password is not None
                return Salesforce(
                    username=s.username,
                    password=s.password.get_secret_value(),
                    security_token=s.security_token.get_secret_value() if s.security_token else "",
                    domain=s.domain,
                    session=self._session,
                    version=version,
                )
        except SalesforceAuthenticationFailed:
            raise AuthenticationError(f"Salesforce refused the login for {s.describe()}") from None
        except requests.RequestException as error:
            raise SalesforceUnavailable(f"cannot reach Salesforce ({s.describe()}): {type(error).__name__}") from None
        raise AuthenticationError(
            "no Salesforce credentials: set SMARTCAMPAIGN_SFDC_USERNAME and _PASSWORD (and _SECURITY_TOKEN), "
            "or _INSTANCE_URL and _SESSION_ID, or _CLIENT_ID, _CLIENT_SECRET and _LOGIN_URL"
        )

    def _can_login_again(self) -> bool:
        return self.settings.auth_method in ("password", "client_credentials")

    def call(self, what: str, fn: Callable[[Salesforce], T], *, retry: bool = True) -> T:
        """One API call with retries: backoff on transient failures, one new login on an expired session.

        `retry=False` is for calls that are not idempotent (creating Leads): the caller looks again first.
        """
        relogged = False
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.settings.max_retries if retry else 1),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            sleep=self._sleep or time.sleep,
            reraise=True,
        )
        while True:
            try:
                return retrying(fn, self.connect())
            except SalesforceAuthenticationFailed:
                self._sf = None
                raise AuthenticationError(
                    f"Salesforce refused the login ({what}) for {self.settings.describe()}"
                ) from None
            except SalesforceExpiredSession:
                if relogged or not self._can_login_again():
                    raise AuthenticationError(
                        f"the Salesforce session expired or is invalid ({what}); log in again"
                    ) from None
                log.info("Salesforce session expired: logging in again")
                self._sf = None
                relogged = True
            except SalesforceRefusedRequest as error:
                if "REQUEST_LIMIT_EXCEEDED" in _error_codes(error):
                    raise QuotaExceeded(
                        f"the daily API quota is spent ({self.usage.used}/{self.usage.limit}): actions wait"
                    ) from None
                raise SalesforceUnavailable(f"Salesforce refused {what}: {_error_message(error)}") from None
            except SalesforceError as error:
                if _transient(error):
                    raise SalesforceUnavailable(f"Salesforce keeps failing ({what}): {_error_message(error)}") from None
                raise
            except (requests.ConnectionError, requests.Timeout, RetryError) as error:
                raise SalesforceUnavailable(f"cannot reach Salesforce ({what}): {type(error).__name__}") from None

    # ------------------------------------------------------------------------------ queries
    def query_all(self, soql: str) -> list[dict[str, Any]]:
        result = self.call("query", lambda sf: sf.query_all(soql))
        return list(result.get("records", []))

    def find_people(self, emails: Iterable[str]) -> dict[str, tuple[str, str]]:
        """lower(email) -> (id, "Lead" | "Contact") for those in Salesforce: one query per 200 emails for Leads,
        then one per 200 of those not found for Contacts (a Lead wins, as a single lookup would)."""
        wanted = list(dict.fromkeys(email.strip().lower() for email in emails if email))
        found: dict[str, tuple[str, str]] = {}
        for sobject in ("Lead", "Contact"):
            missing = [email for email in wanted if email not in found]
            for chunk in _chunks(missing, 200):
                soql = format_soql(f"SELECT Id, Email FROM {sobject} WHERE Email IN {{e}}", e=list(chunk))
                for row in self.query_all(soql):
                    found.setdefault(str(row.get("Email") or "").lower(), (str(row["Id"]), sobject))
        return found

    def campaign_statuses(self, campaign_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Member status labels per campaign id, read at most every `status_ttl` seconds (and whenever the poller
        saw them change: `forget_statuses`). A status deleted in Salesforce must not be written, or Salesforce
        would put the default in its place: with `status_ttl` 0 they are read for every `execute`."""
        campaign_ids = list(campaign_ids)
        wanted = [cid for cid in dict.fromkeys(campaign_ids) if _valid_id(cid) and cid[:15] not in self._statuses]
        for chunk in _chunks(wanted, 200):
            rows = self.query_all(
                format_soql(
                    "SELECT CampaignId, Label, SortOrder FROM CampaignMemberStatus WHERE CampaignId IN {ids} "
                    "ORDER BY CampaignId, SortOrder",
                    ids=list(chunk),
                )
            )
            found: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                found[str(row["CampaignId"])[:15]].append(str(row["Label"]))
            read_at = time.monotonic()
            for cid in chunk:
                self._statuses[cid[:15]] = (tuple(found.get(cid[:15], ())), read_at)
        return {cid: self._statuses.get(cid[:15], ((), 0.0))[0] for cid in campaign_ids}

    def forget_statuses(self, campaign_id: str | None = None) -> None:
        if campaign_id is None:
            self._statuses.clear()
        else:
            self._statuses.pop(campaign_id[:15], None)

    def _expire_statuses(self) -> None:
        """At the start of an `execute`: statuses read more than `status_ttl` seconds ago are read again."""
        now = time.monotonic()
        self._execute_started = now
        ttl = self.settings.status_ttl
        for cid in [cid for cid, (_, read_at) in self._statuses.items() if ttl <= 0 or now - read_at >= ttl]:
            del self._statuses[cid]

    def _members(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
        """(person id, campaign id) -> (CampaignMember id, status) for those that exist."""
        found: dict[tuple[str, str], tuple[str, str]] = {}
        by_campaign: dict[str, list[str]] = defaultdict(list)
        for person, campaign in pairs:
            if _valid_id(person) and _valid_id(campaign):
                by_campaign[campaign].append(person)
        for campaign, persons in by_campaign.items():
            for chunk in _chunks(list(dict.fromkeys(persons)), 200):
                rows = self.query_all(
                    format_soql(
                        "SELECT Id, CampaignId, LeadId, ContactId, Status FROM CampaignMember "
                        "WHERE CampaignId = {campaign} AND (LeadId IN {ids} OR ContactId IN {ids})",
                        campaign=campaign,
                        ids=list(chunk),
                    )
                )
                for row in rows:
                    member_of = str(row.get("LeadId") or row.get("ContactId"))
                    found[(member_of[:15], campaign[:15])] = (str(row["Id"]), str(row.get("Status")))
        return found

    # ------------------------------------------------------------------------------ execute
    def execute(self, operations: Sequence[p.Operation]) -> list[p.OperationResult]:
        self._expire_statuses()
        results: list[p.OperationResult | None] = [None] * len(operations)
        created: dict[str, str] = {}  # email -> Lead id, for `pending:` person ids in the same batch
        try:
            for wave in _waves(operations):
                by_kind: dict[type, list[int]] = defaultdict(list)
                for index in wave:
                    by_kind[type(operations[index])].append(index)
                for kind, indexes in by_kind.items():
                    handler = self._handlers[kind]
                    handler(self, [operations[i] for i in indexes], indexes, results, created)
        except SalesforceUnavailable as error:
            if error.results is None and any(r is not None for r in results):
                error.results = results  # what was answered is kept; the rest waits
            raise
        return [r if r is not None else p.OperationResult.failure("ERROR", "not executed") for r in results]

    def _resolve_person(self, person_id: str, created: dict[str, str]) -> str | None:
        if person_id.startswith("pending:"):
            return created.get(person_id[len("pending:") :].lower())
        return person_id

    def _create_leads(
        self,
        ops: list[p.CreateLead],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        todo: list[tuple[int, p.CreateLead]] = []
        for index, op in zip(indexes, ops, strict=True):
            if not op.last_name or not op.company:
                missing = [n for n, v in (("LastName", op.last_name), ("Company", op.company)) if not v]
                results[index] = p.OperationResult.failure(
                    p.REQUIRED_FIELD_MISSING, f"Required fields are missing: [{', '.join(missing)}]"
                )
            else:
                todo.append((index, op))
        # A create that timed out may have been done: look the emails up again before every attempt, so a
        # retry never makes a second Lead.
        pending = todo
        for attempt in range(self.settings.max_retries):
            if not pending:
                break
            # a create that went through before (a timed-out call, a flush repeated after a crash) is found here
            existing: dict[str, str] = {}
            for chunk in _chunks(list(dict.fromkeys(op.email.lower() for _, op in pending)), 200):
                soql = format_soql("SELECT Id, Email FROM Lead WHERE Email IN {e}", e=list(chunk))
                for row in self.query_all(soql):
                    existing.setdefault(str(row.get("Email") or "").lower(), str(row["Id"]))
            records: list[tuple[int, p.CreateLead]] = []
            for index, op in pending:
                known = existing.get(op.email.lower()) or created.get(op.email.lower())
                if known:
                    created[op.email.lower()] = known
                    results[index] = p.OperationResult.success(known)
                else:
                    records.append((index, op))
            try:
                self._collection_post(
                    "Lead",
                    [
                        (
                            index,
                            {
                                "Email": op.email,
                                "LastName": op.last_name,
                                "Company": op.company,
                                **({"FirstName": op.first_name} if op.first_name else {}),
                            },
                        )
                        for index, op in records
                    ],
                    results,
                    retry=False,
                )
            except SalesforceUnavailable:
                if attempt + 1 >= self.settings.max_retries:
                    raise
                self._backoff(attempt)
                pending = records
                continue
            pending = []
            for index, op in records:
                result = results[index]
                if result is not None and result.ok and result.id:
                    created[op.email.lower()] = result.id

    def _writable(
        self,
        ops: Sequence[p.AddMember | p.UpdateMemberStatus],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> list[tuple[int, p.AddMember | p.UpdateMemberStatus, str]]:
        """The operations whose status is one of the campaign's and whose person is known, with that person's
        id; the others get their failure result here."""
        statuses = self.campaign_statuses(op.campaign_sfdc_id for op in ops)
        # a status missing from statuses read before this execute may have been added since: read them again
        stale = {
            op.campaign_sfdc_id[:15]
            for op in ops
            if _status_problem(op.campaign_sfdc_id, op.status, statuses) is not None
            and self._statuses.get(op.campaign_sfdc_id[:15], ((), self._execute_started))[1] < self._execute_started
        }
        if stale:
            for cid in stale:
                self.forget_statuses(cid)
            statuses = self.campaign_statuses(op.campaign_sfdc_id for op in ops)
        ready: list[tuple[int, p.AddMember | p.UpdateMemberStatus, str]] = []
        for index, op in zip(indexes, ops, strict=True):
            problem = _status_problem(op.campaign_sfdc_id, op.status, statuses)
            person = self._resolve_person(op.person_sfdc_id, created)
            if problem is not None:
                results[index] = problem
            elif person is None:
                results[index] = p.OperationResult.failure(p.UNKNOWN_PERSON, "no Lead or Contact for this person")
            elif not _valid_id(person):
                results[index] = p.OperationResult.failure(MALFORMED_ID, f"malformed Lead or Contact id {person!r}")
            else:
                ready.append((index, op, person))
        return ready

    def _add_members(
        self,
        ops: list[p.AddMember],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        records: list[tuple[int, dict[str, Any]]] = []
        for index, op, person in self._writable(ops, indexes, results, created):
            field = "ContactId" if person.startswith(CONTACT_PREFIX) else "LeadId"
            records.append((index, {"CampaignId": op.campaign_sfdc_id, field: person, "Status": op.status}))
        self._collection_post("CampaignMember", records, results)

    def _update_members(
        self,
        ops: list[p.UpdateMemberStatus],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        wanted = self._writable(ops, indexes, results, created)
        members = self._members([(person, op.campaign_sfdc_id) for _, op, person in wanted])
        records: list[tuple[int, dict[str, Any]]] = []
        for index, op, person in wanted:
            member = members.get((person[:15], op.campaign_sfdc_id[:15]))
            if member is None:
                results[index] = p.OperationResult.failure(p.NOT_A_MEMBER, "not a campaign member")
            elif member[1] == op.status:
                results[index] = p.OperationResult.success(member[0])
            else:
                records.append(
                    (index, {"attributes": {"type": "CampaignMember"}, "id": member[0], "Status": op.status})
                )
        self._collection_write("PATCH", records, results)

    def _remove_members(
        self,
        ops: list[p.RemoveMember],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        wanted = [
            (index, op, self._resolve_person(op.person_sfdc_id, created) or "")
            for index, op in zip(indexes, ops, strict=True)
        ]
        members = self._members([(person, op.campaign_sfdc_id) for _, op, person in wanted if person])
        ids: list[tuple[int, str]] = []
        for index, op, person in wanted:
            member = members.get((person[:15], op.campaign_sfdc_id[:15]))
            if not _valid_id(person) or not _valid_id(op.campaign_sfdc_id):
                results[index] = p.OperationResult.failure(MALFORMED_ID, "malformed Salesforce id")
            elif member is None:
                results[index] = p.OperationResult.failure(p.NOT_A_MEMBER, "not a campaign member")
            else:
                ids.append((index, member[0]))
        self._collection_delete(ids, results)

    def _set_campaign_fields(
        self,
        ops: list[p.SetCampaignFields],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        records = [
            (
                index,
                {
                    "attributes": {"type": "Campaign"},
                    "id": op.campaign_sfdc_id,
                    "Type": op.type,
                    "ActualCost": op.actual_cost,
                },
            )
            for index, op in zip(indexes, ops, strict=True)
        ]
        self._collection_write("PATCH", records, results)

    def _set_campaign_statuses(
        self,
        ops: list[p.SetCampaignStatuses],
        indexes: list[int],
        results: list[p.OperationResult | None],
        created: dict[str, str],
    ) -> None:
        for index, op in zip(indexes, ops, strict=True):
            results[index] = self._one_campaign_statuses(op)
            self.forget_statuses(op.campaign_sfdc_id)

    def _one_campaign_statuses(self, op: p.SetCampaignStatuses) -> p.OperationResult:
        rows = self.query_all(
            format_soql(
                "SELECT Id, Label, IsDefault, HasResponded, SortOrder FROM CampaignMemberStatus "
                "WHERE CampaignId = {cid}",
                cid=op.campaign_sfdc_id,
            )
        )
        existing = {str(r["Label"]): r for r in rows}
        # sort orders are unique per campaign: new statuses go after the existing ones
        next_order = max((int(r.get("SortOrder") or 0) for r in rows), default=0) + 1
        results: list[p.OperationResult | None] = [None]
        # 1. create the missing statuses, 2. set default and responded flags, 3. delete the others
        creates = [
            (
                0,
                {
                    "CampaignId": op.campaign_sfdc_id,
                    "Label": label,
                    "SortOrder": next_order + position,
                    "IsDefault": label == op.default,
                    "HasResponded": label in op.responded,
                },
            )
            for position, label in enumerate(op.statuses)
            if label not in existing
        ]
        for record in creates:
            self._collection_post("CampaignMemberStatus", [record], results)
            if results[0] is not None and not results[0].ok:
                return results[0]
        updates = [
            (
                0,
                {
                    "attributes": {"type": "CampaignMemberStatus"},
                    "id": row["Id"],
                    "IsDefault": label == op.default,
                    "HasResponded": label in op.responded,
                },
            )
            for label, row in existing.items()
            if label in op.statuses
        ]
        for record in updates:
            self._collection_write("PATCH", [record], results)
            if results[0] is not None and not results[0].ok:
                return results[0]
        extras = [(0, str(row["Id"])) for label, row in existing.items() if label not in op.statuses]
        for record_id in extras:
            self._collection_delete([record_id], results)
            if results[0] is not None and not results[0].ok:
                return results[0]
        return self._order_statuses(op) or p.OperationResult.success(op.campaign_sfdc_id)

    def _order_statuses(self, op: p.SetCampaignStatuses) -> p.OperationResult | None:
        """Sort orders as the statuses are listed. They are unique per campaign, so every status is first moved
        out of the way (1000 + position), then into place: two calls, and none when the order is right."""
        rows = self.query_all(
            format_soql(
                "SELECT Id, Label, SortOrder FROM CampaignMemberStatus WHERE CampaignId = {cid} ORDER BY SortOrder",
                cid=op.campaign_sfdc_id,
            )
        )
        by_label = {str(r["Label"]): str(r["Id"]) for r in rows}
        if [str(r["Label"]) for r in rows] == [label for label in op.statuses if label in by_label]:
            return None
        results: list[p.OperationResult | None] = [None] * len(op.statuses)
        for offset in (1000, 0):
            records = [
                (
                    number,
                    {
                        "attributes": {"type": "CampaignMemberStatus"},
                        "id": by_label[label],
                        "SortOrder": offset + number + 1,
                    },
                )
                for number, label in enumerate(op.statuses)
                if label in by_label
            ]
            self._collection_write("PATCH", records, results)
            failed = next((r for r in results if r is not None and not r.ok), None)
            if failed is not None:
                return failed
        return None

    _handlers: dict[type, Callable[..., None]] = {
        p.CreateLead: _create_leads,
        p.AddMember: _add_members,
        p.UpdateMemberStatus: _update_members,
        p.RemoveMember: _remove_members,
        p.SetCampaignFields: _set_campaign_fields,
        p.SetCampaignStatuses: _set_campaign_statuses,
    }

    # ------------------------------------------------------------------------------ collections
    def _side_by_side(
        self,
        send: Callable[[Sequence[tuple[int, Any]]], Any],
        chunks: list[Sequence[tuple[int, Any]]],
        results: list[p.OperationResult | None],
    ) -> list[tuple[Sequence[tuple[int, Any]], Any]]:
        """Each chunk sent as one collection request, up to `concurrency` of them in flight at once. Answers come
        back in chunk order. When Salesforce stays unavailable for some chunks, the answers of the others are
        written into `results` before the error is raised, so what was done is not done again."""
        if len(chunks) <= 1 or self.settings.concurrency <= 1:
            return [(chunk, send(chunk)) for chunk in chunks]
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(chunks))) as pool:
            futures = [pool.submit(send, chunk) for chunk in chunks]
            answered: list[tuple[Sequence[tuple[int, Any]], Any]] = []
            failure: SalesforceUnavailable | None = None
            for chunk, future in zip(chunks, futures, strict=True):
                try:
                    answered.append((chunk, future.result()))
                except SalesforceUnavailable as error:
                    failure = failure or error
        if failure is not None:
            self._settle_answers(answered, results)
            raise failure
        return answered

    @staticmethod
    def _settle_answers(
        answered: list[tuple[Sequence[tuple[int, Any]], Any]], results: list[p.OperationResult | None]
    ) -> None:
        for chunk, answer in answered:
            for (index, item), result in zip(chunk, answer or [], strict=False):
                if result.get("success"):
                    record_id = item.get("id") if isinstance(item, dict) else item
                    results[index] = p.OperationResult.success(result.get("id") or record_id)
                else:
                    code, message = _record_error(result)
                    if code != LOCK_CODE:
                        results[index] = _map_failure(code, message)

    def _backoff(self, attempt: int) -> None:
        delay = min(0.05 * (2**attempt), 2.0)
        (self._sleep or time.sleep)(delay)

    def _collection_post(
        self,
        sobject: str,
        records: list[tuple[int, dict[str, Any]]],
        results: list[p.OperationResult | None],
        *,
        retry: bool = True,
    ) -> None:
        payload = [(index, {"attributes": {"type": sobject}, **fields}) for index, fields in records]
        self._collection_write("POST", payload, results, retry=retry)

    def _collection_write(
        self,
        method: str,
        records: list[tuple[int, dict[str, Any]]],
        results: list[p.OperationResult | None],
        *,
        retry: bool = True,
    ) -> None:
        pending = records
        for attempt in range(self.settings.max_retries):
            if not pending:
                return
            if attempt:
                self._backoff(attempt - 1)
            locked: list[tuple[int, dict[str, Any]]] = []

            def send(chunk: Sequence[tuple[int, dict[str, Any]]]) -> Any:
                body = {"allOrNone": False, "records": [fields for _, fields in chunk]}
                return self.call(f"composite/sobjects {method}", _restful(method, body=body), retry=retry)

            for chunk, answer in self._side_by_side(send, list(_chunks(pending, self.settings.batch_size)), results):
                for (index, fields), result in zip(chunk, answer or [], strict=False):
                    if result.get("success"):
                        results[index] = p.OperationResult.success(result.get("id") or fields.get("id"))
                        continue
                    code, message = _record_error(result)
                    if code == LOCK_CODE:
                        locked.append((index, fields))
                    else:
                        results[index] = _map_failure(code, message)
            pending = locked
        for index, _ in pending:
            results[index] = p.OperationResult.failure(LOCK_CODE, "the record stayed locked: try again later")

    def _collection_delete(self, ids: list[tuple[int, str]], results: list[p.OperationResult | None]) -> None:
        pending = ids
        for attempt in range(self.settings.max_retries):
            if not pending:
                return
            if attempt:
                self._backoff(attempt - 1)
            retry: list[tuple[int, str]] = []

            def send(chunk: Sequence[tuple[int, str]]) -> Any:
                params = {"ids": ",".join(record_id for _, record_id in chunk), "allOrNone": "false"}
                return self.call("composite/sobjects DELETE", _restful("DELETE", params=params))

            for chunk, answer in self._side_by_side(send, list(_chunks(pending, self.settings.batch_size)), results):
                for (index, record_id), result in zip(chunk, answer or [], strict=False):
                    if result.get("success"):
                        results[index] = p.OperationResult.success(record_id)
                        continue
                    code, message = _record_error(result)
                    if code == LOCK_CODE:
                        retry.append((index, record_id))
                    elif code == p.ENTITY_IS_DELETED:
                        results[index] = p.OperationResult.success(record_id)  # a retried delete: already gone
                    else:
                        results[index] = _map_failure(code, message)
            pending = retry
        for index, _ in pending:
            results[index] = p.OperationResult.failure(LOCK_CODE, "the record stayed locked: try again later")


def _restful(
    method: str, *, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
) -> Callable[[Salesforce], Any]:
    def send(sf: Salesforce) -> Any:
        return sf.restful("composite/sobjects", method=method, json=body, params=params)

    return send


def _valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def _map_failure(code: str, message: str) -> p.OperationResult:
    return p.OperationResult.failure(code, f"{code}: {message}" if message else code)


def _status_problem(campaign_id: str, status: str, statuses: dict[str, tuple[str, ...]]) -> p.OperationResult | None:
    if not _valid_id(campaign_id):
        return p.OperationResult.failure(MALFORMED_ID, f"malformed campaign id {campaign_id!r}")
    labels = statuses.get(campaign_id, ())
    if not labels:
        return p.OperationResult.failure(p.UNKNOWN_CAMPAIGN, f"no SFDC campaign {campaign_id} (or it has no statuses)")
    if status not in labels:
        return p.OperationResult.failure(
            p.INVALID_STATUS,
            f'status "{status}" is not a member status of campaign {campaign_id} ({", ".join(labels)})',
        )
    return None


def _op_keys(op: p.Operation) -> list[tuple[str, ...]]:
    if isinstance(op, p.CreateLead):
        return [("lead", op.email.lower())]
    if isinstance(op, (p.AddMember, p.UpdateMemberStatus, p.RemoveMember)):
        keys: list[tuple[str, ...]] = [("member", op.person_sfdc_id, op.campaign_sfdc_id)]
        if op.person_sfdc_id.startswith("pending:"):
            keys.append(("lead", op.person_sfdc_id[len("pending:") :].lower()))
        return keys
    return [("campaign", op.campaign_sfdc_id)]


def _waves(operations: Sequence[p.Operation]) -> list[list[int]]:
    """Operations in waves: each after every earlier operation that touches the same record."""
    last_wave: dict[tuple[str, ...], int] = {}
    waves: list[list[int]] = []
    for index, op in enumerate(operations):
        keys = _op_keys(op)
        wave = max((last_wave[k] + 1 for k in keys if k in last_wave), default=0)
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(index)
        for key in keys:
            last_wave[key] = max(last_wave.get(key, -1), wave)
    return waves
