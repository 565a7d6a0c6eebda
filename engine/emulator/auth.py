"""Who a request is: bearer tokens (the `--token` one and issued sessions) and the logins that issue sessions —
OAuth's token endpoint (password, client credentials, JWT bearer), the SOAP partner login — plus the identity URL
and OpenID userinfo. Logins and identity calls don't count against the quota."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from engine.emulator.org import Actor
from engine.emulator.wire import XML_TYPE, Reply

if TYPE_CHECKING:
    from engine.emulator.app import Emulator

IDENTITY_RE = re.compile(r"^/id/00D\w+/005\w+/?$")
SOAP_RE = re.compile(r"^/services/Soap/u/(?P<version>\d+\.\d)(?:/.*)?$")


def authenticate(em: Emulator, headers: Mapping[str, str]) -> Actor | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "oauth") or not token:
        return None
    with em.store.lock:
        if secrets.compare_digest(token.encode(), em.token.encode()):
            return None if em.master_expired else em.org.actor()
        user_id = em.store.session_user(token)
        if user_id is None:
            return None
        user = em.store.get(user_id)
        if user is None or not user.get("IsActive"):
            return None
        return em.org.actor(user_id)


def _login(em: Emulator, username: str | None, password: str | None) -> str | None:
    """A new session for these credentials, or None. The emulator takes any password that isn't empty;
    a username that names a User acts as that user (refused when inactive), any other as the first user."""
    if not username or not password:
        return None
    with em.store.lock:
        user = em.org.find_user(username)
        if user is not None and not user.get("IsActive"):
            return None
        user_id = str(user["Id"]) if user is not None else em.org.default_user_id
        return em.org.issue_session(user_id)


def oauth_token(em: Emulator, method: str, body: bytes, headers: Mapping[str, str], host: str) -> Reply:
    def failure(error: str, description: str, status: int = 400) -> Reply:
        return Reply(status, {"error": error, "error_description": description})

    if method != "POST":
        return failure("invalid_request", "must use HTTP POST", 405)
    form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    grant = form.get("grant_type", "")
    client_id = form.get("client_id")
    client_secret = form.get("client_secret")
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return failure("invalid_client", "invalid client credentials")
    token: str | None
    if grant == "password":
        if not client_id:
            return failure("invalid_client_id", "client identifier invalid")
        token = _login(em, form.get("username"), form.get("password"))
    elif grant == "client_credentials":
        if not client_id or not client_secret:
            return failure("invalid_client", "invalid client credentials")
        with em.store.lock:
            token = em.org.issue_session(em.org.default_user_id)
    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        token = _login(em, _jwt_subject(form.get("assertion", "")), "jwt")
    else:
        return failure("unsupported_grant_type", "grant type not supported")
    if token is None:
        return failure("invalid_grant", "authentication failure")
    with em.store.lock:
        user_id = em.store.session_user(token) or em.org.default_user_id
    issued_at = str(int(time.time() * 1000))
    identity = f"https://{host}/id/{em.org.org_id}/{user_id}"
    signature = hmac.new(em.token.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    return Reply(
        200,
        {
            "access_token": token,
            "instance_url": f"https://{host}",
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(signature).decode(),
        },
    )


def identity(em: Emulator, path: str, headers: Mapping[str, str], host: str) -> Reply:
    """The identity URL an OAuth answer names (`/id/ORG/USER`) and OpenID's `/services/oauth2/userinfo`,
    for whoever the bearer token belongs to. Not counted against the quota."""
    actor = authenticate(em, headers)
    if actor is None:
        return Reply(403, text="Bad_OAuth_Token", media_type="text/plain")
    with em.store.lock:
        user = em.store.get(actor.user_id) or {}
    identity = f"https://{host}/id/{em.org.org_id}/{actor.user_id}"
    name = " ".join(str(part) for part in (user.get("FirstName"), user.get("LastName")) if part)
    if path.startswith("/services/oauth2/userinfo"):
        body: dict[str, Any] = {
            "sub": identity,
            "user_id": actor.user_id,
            "organization_id": em.org.org_id,
            "preferred_username": actor.username,
            "name": name,
            "given_name": user.get("FirstName"),
            "family_name": user.get("LastName"),
            "email": user.get("Email"),
            "active": bool(user.get("IsActive")),
        }
    else:
        base = f"https://{host}/services/data/v{{version}}/"
        body = {
            "id": identity,
            "user_id": actor.user_id,
            "organization_id": em.org.org_id,
            "username": actor.username,
            "display_name": name,
            "email": user.get("Email"),
            "first_name": user.get("FirstName"),
            "last_name": user.get("LastName"),
            "active": bool(user.get("IsActive")),
            "user_type": "STANDARD",
            "urls": {"rest": base, "query": base + "query/", "sobjects": base + "sobjects/"},
        }
    return Reply(200, body)


def _jwt_subject(assertion: str) -> str | None:
    try:
        payload = assertion.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    subject = decoded.get("sub") if isinstance(decoded, dict) else None
    return str(subject) if subject else None


def soap_login(em: Emulator, method: str, path: str, body: bytes, host: str) -> Reply:
    match = SOAP_RE.match(path)
    assert match is not None
    version = match.group("version")
    values: dict[str, str] = {}
    try:
        for element in ET.fromstring(body).iter():
            local = element.tag.rsplit("}", 1)[-1]
            if local in ("username", "password") and element.text is not None:
                values[local] = element.text
    except ET.ParseError:
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    token = _login(em, values.get("username"), values.get("password"))
    if method != "POST" or token is None:
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    with em.store.lock:
        user_id = em.store.session_user(token) or em.org.default_user_id
        user = em.store.get(user_id) or {}
    org15 = em.org.org_id[:15]
    server = f"https://{host}/services/Soap/u/{version}/{org15}"
    metadata = f"https://{host}/services/Soap/m/{version}/{org15}"
    full_name = " ".join(str(part) for part in (user.get("FirstName"), user.get("LastName")) if part)
    user_info = (
        f"<userInfo><organizationId>{em.org.org_id}</organizationId>"
        f"<organizationName>Smartcampaign Emulator</organizationName>"
        f"<userEmail>{escape(str(user.get('Email', '')))}</userEmail>"
        f"<userFullName>{escape(full_name)}</userFullName>"
        f"<userId>{user_id}</userId><userName>{escape(str(user.get('Username', '')))}</userName></userInfo>"
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f"<loginResponse><result><metadataServerUrl>{metadata}</metadataServerUrl><passwordExpired>false</passwordExpired>"
        f"<sandbox>true</sandbox><serverUrl>{server}</serverUrl><sessionId>{escape(token)}</sessionId>"
        f"<userId>{user_id}</userId>{user_info}</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Reply(200, text=text, media_type=XML_TYPE)


def _soap_fault(code: str, message: str) -> Reply:
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring>"
        f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
        "</soapenv:Body></soapenv:Envelope>"
    )
    return Reply(500, text=text, media_type=XML_TYPE)
