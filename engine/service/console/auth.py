"""Console sign-in: a signed session cookie (HMAC-SHA256 of our own), CSRF tokens, and who may sign in.

The signing key is derived from the API token (and the console password, when one is set), so every `serve`
process with the same settings accepts the same sessions, and changing the token signs everybody out. A session
is `base64url(json{"n": nonce, "exp": unix time}) "." hex(HMAC)`; its CSRF token is an HMAC of its nonce. The
sign-in form, which has no session yet, carries a token signed over the time it was shown (valid one hour).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "smartcampaign_session"
SESSION_SECONDS = 12 * 3600
LOGIN_FORM_SECONDS = 3600
PASSWORD_ENV = "SMARTCAMPAIGN_CONSOLE_PASSWORD"


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: float
    csrf: str


class ConsoleAuth:
    def __init__(self, token: str, password: str | None = None) -> None:
        self.token = token
        self.password = password if password is not None else (os.environ.get(PASSWORD_ENV) or None)
        material = b"smartcampaign-console\0" + token.encode() + b"\0" + (self.password or "").encode()
        self._key = hashlib.sha256(material).digest()
        self._signed_out: set[str] = set()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------------------ secrets
    def secret_ok(self, given: str) -> bool:
        """The API token, or the console password when one is set (compared in constant time)."""
        ok = hmac.compare_digest(given.encode(), self.token.encode())
        if self.password:
            ok = hmac.compare_digest(given.encode(), self.password.encode()) or ok
        return bool(given) and ok

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    # ------------------------------------------------------------------------------ sessions
    def new_session(self, now: float | None = None) -> tuple[str, Session]:
        nonce = secrets.token_urlsafe(18)
        expires = (now if now is not None else time.time()) + SESSION_SECONDS
        body = base64.urlsafe_b64encode(json.dumps({"n": nonce, "exp": expires}).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}", Session(nonce, expires, self._mac("csrf:" + nonce)[:40])

    def session(self, request: Request) -> Session | None:
        value = request.cookies.get(COOKIE, "")
        body, _, mac = value.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            nonce, expires = str(data["n"]), float(data["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time() or nonce in self._signed_out:
            return None
        return Session(nonce, expires, self._mac("csrf:" + nonce)[:40])

    def sign_out(self, session: Session) -> None:
        self._signed_out.add(session.nonce)

    # ------------------------------------------------------------------------------ CSRF
    def csrf_ok(self, session: Session, given: str) -> bool:
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    def login_token(self, now: float | None = None) -> str:
        shown = str(int(now if now is not None else time.time()))
        return f"{shown}.{self._mac('login:' + shown)[:40]}"

    def login_token_ok(self, given: str) -> bool:
        shown, _, mac = given.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac("login:" + shown)[:40].encode()):
            return False
        try:
            return -60 <= time.time() - int(shown) <= LOGIN_FORM_SECONDS
        except ValueError:
            return False
