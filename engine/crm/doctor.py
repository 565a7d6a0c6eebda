"""`smartcampaign doctor`: is the Salesforce side set up for campaign sync? Each check says pass or fail and, when
it fails, what to change. Marketo's "why can't I see my Salesforce campaigns?", made automatic.

Checks, in order (a failed connection skips the Salesforce checks after it):

1. Salesforce reachable and authenticated: a login (password and client credentials) and `GET limits`.
2. API calls left today: `DailyApiRequests` from `limits`; fails under 5% left, warns under 20%.
3. The sync user is a Marketing User (`User.UserPermissionsMarketingUser`). The user is whoever the session
   belongs to, as Salesforce's identity endpoint (`/services/oauth2/userinfo`) says; when that endpoint refuses
   the token (an access token without the `openid`/`id` scope), the settings' username is looked up instead,
   and with neither the check fails rather than guess.
4. The user may create and edit Campaigns (`sobjects/Campaign/describe`: `createable`, `updateable`).
5. The user may create and edit CampaignMembers (`sobjects/CampaignMember/describe`).
6. Campaign sync is turned on in the engine's settings (`SMARTCAMPAIGN_CAMPAIGN_SYNC`).
7. With a rule set (`doctor --rules`): every synced program's campaign has exactly the channel's member statuses,
   or no members (the sync makes an empty campaign match).

Messages never carry a credential: the adapter's errors name the org and user, not tokens or passwords.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from engine.crm.salesforce import AuthenticationError, QuotaExceeded, SalesforceAdapter, SalesforceUnavailable
from engine.model.settings import EngineSettings, SalesforceSettings

if TYPE_CHECKING:
    from engine.language import ast

Status = Literal["pass", "warn", "fail", "skip"]

QUOTA_FAIL = 0.05  # below this share of the daily API calls left: fail
QUOTA_WARN = 0.20  # below this: warn

REACHABLE = "Salesforce reachable and authenticated"
API_CALLS = "API calls left today"
MARKETING_USER = "Sync user is a Marketing User"
CAMPAIGN_ACCESS = "User may create and edit Campaigns"
MEMBER_ACCESS = "User may create and edit CampaignMembers"
CAMPAIGN_SYNC = "Campaign sync enabled in the settings"
PROGRAM_STATUSES = "Program sync statuses match"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Passed (a warning passes too); a skipped check did not pass."""
        return self.status in ("pass", "warn")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status, "detail": self.detail, "fix": self.fix}


def _login_fix(settings: SalesforceSettings) -> str:
    method = settings.auth_method
    if method == "session":
        return (
            "the access token was refused: get a fresh one (e.g. `sf org display --target-org ALIAS`) into "
            "SMARTCAMPAIGN_SFDC_SESSION_ID, and check SMARTCAMPAIGN_SFDC_INSTANCE_URL is that org's URL"
        )
    if method == "password":
        return (
            "check SMARTCAMPAIGN_SFDC_USERNAME, _PASSWORD and _SECURITY_TOKEN (Salesforce: Settings > Reset My "
            "Security Token mails a new one), and _DOMAIN (login, test, or your My Domain)"
        )
    if method == "client_credentials":
        return (
            "check SMARTCAMPAIGN_SFDC_CLIENT_ID, _CLIENT_SECRET and _LOGIN_URL (your My Domain URL); the connected "
            "app needs the client credentials flow enabled and a Run As user"
        )
    return (
        "set credentials: SMARTCAMPAIGN_SFDC_USERNAME, _PASSWORD and _SECURITY_TOKEN; or _INSTANCE_URL and "
        "_SESSION_ID; or _CLIENT_ID, _CLIENT_SECRET and _LOGIN_URL (in the environment or the settings file)"
    )


def _reach_fix(settings: SalesforceSettings) -> str:
    fix = "check the network (and proxy) to Salesforce and SMARTCAMPAIGN_SFDC_INSTANCE_URL / _LOGIN_URL / _DOMAIN"
    if settings.ca_file:
        fix += f"; the CA bundle in SMARTCAMPAIGN_SFDC_CA_FILE ({settings.ca_file}) must sign the server's certificate"
    return fix


def _salesforce_error(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}".strip()
    return f"HTTP {error.status}"


def _skipped(name: str, why: str) -> Check:
    return Check(name, "skip", f"not checked: {why}", "fix the checks above first")


def run_doctor(
    adapter: SalesforceAdapter, engine_settings: EngineSettings, rule_set: ast.RuleSet | None = None
) -> list[Check]:
    """Every check, in order (the program sync check only with a rule set)."""
    settings = adapter.settings
    checks: list[Check] = []
    salesforce_names = (API_CALLS, MARKETING_USER, CAMPAIGN_ACCESS, MEMBER_ACCESS)
    limits: dict[str, Any] | None = None
    try:
        limits = adapter.call("limits", lambda sf: sf.limits())
        checks.append(Check(REACHABLE, "pass", settings.describe()))
    except QuotaExceeded:
        checks.append(Check(REACHABLE, "pass", f"{settings.describe()}; but every API call is refused today"))
        checks.append(
            Check(
                API_CALLS,
                "fail",
                "none: Salesforce answers REQUEST_LIMIT_EXCEEDED",
                "wait for the rolling 24-hour window to free calls, or raise the org's API limit",
            )
        )
        checks += [_skipped(name, "the API quota is spent") for name in salesforce_names[1:]]
    except AuthenticationError as error:
        checks.append(Check(REACHABLE, "fail", f"{error}", _login_fix(settings)))
        checks += [_skipped(name, "not authenticated") for name in salesforce_names]
    except SalesforceUnavailable as error:
        checks.append(Check(REACHABLE, "fail", f"{error}", _reach_fix(settings)))
        checks += [_skipped(name, "Salesforce is not reachable") for name in salesforce_names]
    except SalesforceError as error:
        checks.append(Check(REACHABLE, "fail", f"GET limits: {_salesforce_error(error)}", _reach_fix(settings)))
        checks += [_skipped(name, "Salesforce answered with an error") for name in salesforce_names]
    if limits is not None:
        checks.append(_api_calls(limits))
        user = _current_user(adapter)
        checks.append(_marketing_user(user, settings))
        checks.append(_access(adapter, "Campaign", CAMPAIGN_ACCESS, user, needs_marketing=True))
        checks.append(_access(adapter, "CampaignMember", MEMBER_ACCESS, user, needs_marketing=False))
    checks.append(_campaign_sync(engine_settings))
    if rule_set is not None:
        checks.append(
            _program_statuses(adapter, rule_set, engine_settings)
            if limits is not None
            else _skipped(PROGRAM_STATUSES, "Salesforce cannot be read")
        )
    return checks


def _api_calls(limits: dict[str, Any]) -> Check:
    daily = limits.get("DailyApiRequests") or {}
    try:
        maximum, remaining = int(daily["Max"]), int(daily["Remaining"])
    except (KeyError, TypeError, ValueError):
        return Check(API_CALLS, "warn", "Salesforce did not say (no DailyApiRequests in limits)")
    share = remaining / maximum if maximum else 0.0
    detail = f"{remaining:,} of {maximum:,} left ({share:.0%})"
    need = "a sync cycle uses about 4 calls plus one per 2,000 changed campaign members"
    if share < QUOTA_FAIL:
        return Check(
            API_CALLS,
            "fail",
            detail,
            f"under {QUOTA_FAIL:.0%} left: wait for the rolling 24-hour window to free calls, poll less often, or "
            f"raise the org's API limit ({need})",
        )
    if share < QUOTA_WARN:
        return Check(API_CALLS, "warn", f"{detail}: running low", f"poll less often if it runs out ({need})")
    return Check(API_CALLS, "pass", detail)


@dataclass(frozen=True)
class _User:
    id: str | None
    username: str | None
    marketing_user: bool | None
    problem: str | None = None


def _current_user(adapter: SalesforceAdapter) -> _User:
    """Whoever the session belongs to: the identity endpoint, else the settings' username."""
    settings = adapter.settings

    def userinfo(sf: Salesforce) -> dict[str, Any] | None:
        response = sf.session.get(f"https://{sf.sf_instance}/services/oauth2/userinfo", headers=sf.headers)
        if response.status_code != 200:
            return None
        body = response.json()
        return body if isinstance(body, dict) else None

    fields = "Id, Username, IsActive, UserPermissionsMarketingUser"
    try:
        identity = adapter.call("userinfo", userinfo)
        if identity and identity.get("user_id"):
            soql = format_soql(f"SELECT {fields} FROM User WHERE Id = {{uid}}", uid=str(identity["user_id"]))
        elif settings.username:
            soql = format_soql(f"SELECT {fields} FROM User WHERE Username = {{name}}", name=settings.username)
        else:
            return _User(None, None, None, "the identity endpoint refused the token and no username is set")
        rows = adapter.query_all(soql)
    except SalesforceUnavailable as error:
        return _User(None, None, None, str(error))
    except SalesforceError as error:
        return _User(None, None, None, f"reading the User: {_salesforce_error(error)}")
    if not rows:
        return _User(None, settings.username, None, "no such User is visible to the session")
    row = rows[0]
    return _User(str(row["Id"]), str(row.get("Username") or ""), bool(row.get("UserPermissionsMarketingUser")))


def _marketing_user(user: _User, settings: SalesforceSettings) -> Check:
    who = user.username or settings.username or "the sync user"
    if user.marketing_user is None:
        return Check(
            MARKETING_USER,
            "fail",
            f"cannot tell: {user.problem}",
            "set SMARTCAMPAIGN_SFDC_USERNAME to the sync user's username, or use a token with the openid scope",
        )
    if not user.marketing_user:
        return Check(
            MARKETING_USER,
            "fail",
            f"{who} is not a Marketing User: Salesforce hides campaigns from it",
            f"in Salesforce Setup > Users, edit {who} and tick Marketing User (then run doctor again)",
        )
    return Check(MARKETING_USER, "pass", f"{who} is a Marketing User")


def _access(adapter: SalesforceAdapter, sobject: str, name: str, user: _User, *, needs_marketing: bool) -> Check:
    try:
        described = adapter.call(f"describe {sobject}", lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
    except SalesforceUnavailable as error:
        return Check(name, "fail", str(error), "run doctor again once Salesforce answers")
    except SalesforceError as error:
        return Check(
            name, "fail", f"describe {sobject}: {_salesforce_error(error)}", f"give the user Read on {sobject}"
        )
    missing = [what for what in ("createable", "updateable") if not (described or {}).get(what)]
    if not missing:
        return Check(name, "pass", f"{sobject}: createable and updateable")
    who = user.username or adapter.settings.username or "the sync user"
    plural = {"Campaign": "Campaigns", "CampaignMember": "Campaign Members"}[sobject]
    fix = f"give {who}'s profile or a permission set Create and Edit on {plural} (Setup > Profiles > Object Settings)"
    if needs_marketing or user.marketing_user is False:
        fix += " and tick Marketing User on the user"
    return Check(name, "fail", f"{sobject}: not {' nor '.join(missing)} for {who}", fix)


def _campaign_sync(engine_settings: EngineSettings) -> Check:
    if engine_settings.campaign_sync:
        return Check(CAMPAIGN_SYNC, "pass", "campaign_sync = true")
    return Check(
        CAMPAIGN_SYNC,
        "fail",
        "campaign_sync = false: the engine does not read Salesforce campaigns",
        "set SMARTCAMPAIGN_CAMPAIGN_SYNC=true (in the environment or the settings file)",
    )


PROGRAM_STATUSES_FIX = "rename or remove statuses so both sides match"


def _program_statuses(adapter: SalesforceAdapter, rule_set: ast.RuleSet, engine_settings: EngineSettings) -> Check:
    """Each synced program's campaign: its CampaignMemberStatus labels against the channel's statuses, and whether
    it has members. A mismatch with members present stops that program's sync (the engine logs the same message
    every cycle): a fail. A campaign without members is made to match at the first link: a pass."""
    synced = [p for p in rule_set.programs if p.sync_with is not None and p.sync_with.is_single]
    if not synced:
        return Check(PROGRAM_STATUSES, "pass", "no program syncs with an SFDC campaign")
    if not engine_settings.campaign_sync:
        return Check(PROGRAM_STATUSES, "skip", "not checked: campaign sync is turned off in the settings")
    disabled = set(engine_settings.sync_disabled_programs)
    off = [f'"{p.name}"' for p in synced if p.name in disabled]
    off_note = f"; sync turned off for {', '.join(off)}" if off else ""
    problems: list[str] = []
    fixes: list[str] = []
    notes: list[str] = []
    try:
        for program in synced:
            if program.name in disabled:
                continue
            problem, fix, note = _program_campaign(adapter, rule_set, program)
            if problem:
                problems.append(problem)
                if fix not in fixes:
                    fixes.append(fix)
            else:
                notes.append(note)
    except SalesforceUnavailable as error:
        return Check(PROGRAM_STATUSES, "fail", str(error), "run doctor again once Salesforce answers")
    except SalesforceError as error:
        return Check(
            PROGRAM_STATUSES,
            "fail",
            f"reading campaigns and their member statuses: {_salesforce_error(error)}",
            "give the sync user Read on Campaigns, Campaign Member Statuses and Campaign Members",
        )
    if problems:
        return Check(PROGRAM_STATUSES, "fail", " ".join(problems) + off_note, "; ".join(fixes))
    return Check(PROGRAM_STATUSES, "pass", ("; ".join(notes) or "nothing to check") + off_note)


def _program_campaign(adapter: SalesforceAdapter, rule_set: ast.RuleSet, program: ast.Program) -> tuple[str, str, str]:
    """(problem, fix, "") when `program` cannot sync with its campaign, else ("", "", what passed)."""
    from engine.language.checks import status_mismatch

    ref = program.sync_with
    assert ref is not None
    channel = rule_set.channel(program.channel or "")
    if channel is None:
        return (
            f'program "{program.name}" cannot sync: unknown channel "{program.channel}".',
            f'give program "{program.name}" a channel the rules declare',
            "",
        )
    field = "Name" if ref.kind == "name" else "Id"
    soql = format_soql(
        f"SELECT Id, Name FROM Campaign WHERE {field} = {{value}} ORDER BY CreatedDate LIMIT 1", value=ref.values[0]
    )
    rows = adapter.query_all(soql)
    if not rows:
        return (
            f'program "{program.name}" cannot sync: no {ref.describe()} in Salesforce.',
            f'create the campaign in Salesforce, or correct `sync with` in program "{program.name}"',
            "",
        )
    campaign_id, campaign_name = str(rows[0]["Id"]), str(rows[0].get("Name") or "")
    soql = format_soql(
        "SELECT Label, SortOrder FROM CampaignMemberStatus WHERE CampaignId = {cid} ORDER BY SortOrder", cid=campaign_id
    )
    labels = tuple(str(row["Label"]) for row in adapter.query_all(soql))
    wanted = tuple(status.name for status in channel.ordered_statuses())
    mismatch = status_mismatch(program.name, campaign_name, wanted, labels)
    if mismatch is None:
        return "", "", f'"{program.name}" and "{campaign_name}" have the same statuses'
    members = _member_count(adapter, campaign_id)
    if members:
        return f"{mismatch} ({members:,} member{'' if members == 1 else 's'})", PROGRAM_STATUSES_FIX, ""
    return "", "", f'"{campaign_name}" has no members: the sync makes its statuses match "{program.name}"'


def _member_count(adapter: SalesforceAdapter, campaign_id: str) -> int:
    soql = format_soql("SELECT COUNT() FROM CampaignMember WHERE CampaignId = {cid}", cid=campaign_id)

    def count(sf: Salesforce) -> int:
        return int(sf.query(soql).get("totalSize") or 0)

    return adapter.call("count CampaignMembers", count)
