"""The emulator's HTTP face: one org's state (`Emulator`) and the ASGI app that serves it.

One catch-all route hands every request to `Emulator.handle`, which sends it to its job: the admin endpoints
(`admin.py`), the logins and identity (`auth.py`), or the data API. A data-API call is routed here (`_ROUTES`),
authenticated, counted against the daily quota, given the injected latency and errors (`faults.py`), and then
run in a worker thread under the store's lock by its endpoint: `rest.py` (sObjects, describes, limits),
`composite.py` (sObject collections) or `query.py` (SOQL queries and their pages).

Paths that simple-salesforce builds for a login domain ``127.0.0.1:PORT/login`` —
``https://127.0.0.1:PORT/login.salesforce.com/services/...`` — are served as if the ``/login.salesforce.com``
part were not there, so username/password and OAuth logins work with an unmodified client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.emulator import admin, auth, composite, query, rest
from engine.emulator import schema as s
from engine.emulator.faults import FaultConfig, Faults
from engine.emulator.org import Org, SfError, not_found
from engine.emulator.query import Cursors
from engine.emulator.settings import DEFAULT_QUOTA
from engine.emulator.soql import SoqlError
from engine.emulator.store import Store
from engine.emulator.timeutil import Clock
from engine.emulator.wire import Ctx, Reply, error_reply

log = logging.getLogger("smartcampaign.emulator")

API_VERSION = "59.0"  # the newest version listed by GET /services/data
OLDEST_VERSION = 20
_LOGIN_HOST_RE = re.compile(r"^/[^/]+\.salesforce\.com(?=/)")
_DATA_RE = re.compile(r"^/services/data(?:/v(?P<version>\d+\.\d)(?P<rest>/.*)?)?/?$")


@dataclass(frozen=True)
class EmulatorConfig:
    """How an emulator starts. `data` None keeps the state in memory; `token` None makes (or, with `data`,
    reuses) one; `quota` None keeps the stored daily maximum (100,000 for a new org)."""

    data: Path | None = None
    token: str | None = None
    quota: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)


Handler = Callable[["Emulator", Ctx], Reply]

# (path pattern after /services/data/vXX.X, endpoint template, {method: handler})
_ROUTE_TABLE: list[tuple[str, str, dict[str, Handler]]] = [
    (r"^$", "", {"GET": rest.resources}),
    (r"^/limits$", "limits", {"GET": rest.limits}),
    (r"^/query$", "query", {"GET": query.query}),
    (r"^/queryAll$", "queryAll", {"GET": query.query_all}),
    (r"^/query/(?P<locator>[^/]+)$", "query/{locator}", {"GET": query.query_more}),
    (r"^/queryAll/(?P<locator>[^/]+)$", "queryAll/{locator}", {"GET": query.query_more}),
    (r"^/sobjects$", "sobjects", {"GET": rest.describe_global}),
    (r"^/sobjects/(?P<type>\w+)$", "sobjects/{type}", {"GET": rest.sobject_info, "POST": rest.create}),
    (r"^/sobjects/(?P<type>\w+)/describe$", "sobjects/{type}/describe", {"GET": rest.describe}),
    (r"^/sobjects/(?P<type>\w+)/updated$", "sobjects/{type}/updated", {"GET": rest.updated}),
    (r"^/sobjects/(?P<type>\w+)/deleted$", "sobjects/{type}/deleted", {"GET": rest.deleted}),
    (
        r"^/sobjects/(?P<type>\w+)/(?P<id>[^/]+)$",
        "sobjects/{type}/{id}",
        {"GET": rest.get, "PATCH": rest.update, "DELETE": rest.delete},
    ),
    (
        r"^/composite/sobjects$",
        "composite/sobjects",
        {
            "POST": composite.collection_create,
            "PATCH": composite.collection_update,
            "DELETE": composite.collection_delete,
        },
    ),
    (
        r"^/composite/sobjects/(?P<type>\w+)$",
        "composite/sobjects/{type}",
        {"GET": composite.collection_retrieve, "POST": composite.collection_retrieve},
    ),
]
_ROUTES = [(re.compile(pattern), template, methods) for pattern, template, methods in _ROUTE_TABLE]


class Emulator:
    """One emulated org: its state, quota, faults and sessions, and the ASGI app that serves them."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.data)
        self.clock = Clock(float(self.store.meta("clock_offset") or 0.0))
        self.org = Org(self.store, self.clock)
        token = config.token or self.store.meta("master_token") or self.org.new_token()
        self.store.set_meta("master_token", token)
        self.token = token
        self.master_expired = False
        stored_quota = json.loads(self.store.meta("quota") or "{}")
        self.quota_max = int(config.quota if config.quota is not None else stored_quota.get("max", DEFAULT_QUOTA))
        self.quota_used = int(stored_quota.get("used", 0))
        self.quota_day = str(stored_quota.get("day", ""))
        self._roll_quota_day()
        self.save_quota()
        self.faults = Faults(config.faults)
        self.cursors = Cursors()
        self.calls: Counter[str] = Counter()
        self.app = self._build_app()

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------------------------------ the app

    def _build_app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        async def endpoint(request: Request) -> Response:
            return await self.handle(request)

        app.add_api_route(
            "/{path:path}",
            endpoint,
            methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"],
            include_in_schema=False,
        )
        return app

    async def handle(self, request: Request) -> Response:
        path = _LOGIN_HOST_RE.sub("", request.url.path)
        method = request.method.upper()
        body = await request.body()
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        query_params = {key: value for key, value in request.query_params.items()}
        try:
            if path.startswith("/_emulator"):
                reply = await run_in_threadpool(admin.handle, self, method, path, body, request.headers)
            elif path == "/services/oauth2/token":
                self.calls["POST oauth2/token"] += 1
                reply = await run_in_threadpool(auth.oauth_token, self, method, body, request.headers, host)
            elif path == "/services/oauth2/userinfo" or auth.IDENTITY_RE.match(path):
                self.calls[f"GET {'oauth2/userinfo' if 'userinfo' in path else 'id'}"] += 1
                reply = await run_in_threadpool(auth.identity, self, path, request.headers, host)
            elif auth.SOAP_RE.match(path):
                self.calls["POST Soap/u login"] += 1
                reply = await run_in_threadpool(auth.soap_login, self, method, path, body, host)
            elif _DATA_RE.match(path):
                reply = await self._data(method, path, query_params, body, request.headers, host)
            else:
                reply = error_reply(not_found())
        except Exception:  # a bug in the emulator: answer as Salesforce does, and say what happened
            log.exception("emulator: unexpected error on %s %s", method, path)
            reply = error_reply(SfError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred in the emulator."))
        return self._respond(reply)

    def _respond(self, reply: Reply) -> Response:
        headers = {"Sforce-Limit-Info": f"api-usage={self.quota_used}/{self.quota_max}", **reply.headers}
        if reply.text is not None:
            return Response(reply.text, reply.status, headers, media_type=reply.media_type)
        if reply.body is None:
            return Response(None, reply.status, headers)
        return Response(json.dumps(reply.body), reply.status, headers, media_type=reply.media_type)

    # -------------------------------------------------------------------------------------- the data API

    async def _data(
        self, method: str, path: str, query_params: dict[str, str], body: bytes, headers: Mapping[str, str], host: str
    ) -> Reply:
        match = _DATA_RE.match(path)
        assert match is not None
        version = match.group("version")
        if version is None:
            return Reply(200, _versions())
        if not OLDEST_VERSION <= float(version) < 100:
            return error_reply(not_found())
        tail = (match.group("rest") or "").rstrip("/")
        route = self._route(method, tail)
        if isinstance(route, Reply):
            return route
        endpoint, handler, params = route
        actor = await run_in_threadpool(auth.authenticate, self, headers)
        if actor is None:
            return Reply(
                401,
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                headers={"WWW-Authenticate": "Token"},
            )
        refused = await run_in_threadpool(self._count_call)
        if refused is not None:
            return error_reply(refused)
        self.calls[endpoint] += 1
        latency = self.faults.latency_for(endpoint)
        if latency > 0:
            await asyncio.sleep(latency)
        injected = self.faults.draw_error(endpoint)
        if injected is not None:
            return error_reply(injected)
        ctx = Ctx(method, version, params, query_params, body, headers, actor, endpoint, host)
        return await run_in_threadpool(self._run, handler, ctx)

    def _route(self, method: str, tail: str) -> tuple[str, Handler, dict[str, str]] | Reply:
        for pattern, template, methods in _ROUTES:
            found = pattern.match(tail)
            if not found:
                continue
            params = {key: value for key, value in found.groupdict().items() if value is not None}
            if "type" in params:
                sobject = s.sobject(params["type"])
                if sobject is None:
                    return error_reply(not_found())
                params["type"] = sobject.name
            if method not in methods:
                allowed = ",".join(methods)
                return Reply(
                    405,
                    [
                        {
                            "errorCode": "METHOD_NOT_ALLOWED",
                            "message": f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
                        }
                    ],
                )
            key = template.replace("{type}", params.get("type", "{type}"))
            return f"{method} {key}".rstrip(), methods[method], params
        return error_reply(not_found())

    def _run(self, handler: Handler, ctx: Ctx) -> Reply:
        with self.store.lock:
            try:
                return handler(self, ctx)
            except SfError as error:
                return error_reply(error)
            except SoqlError as error:
                return Reply(400, [{"message": error.message, "errorCode": error.code}])

    # -- quota

    def _roll_quota_day(self) -> None:
        today = self.clock.now().date().isoformat()
        if today != self.quota_day:
            self.quota_day = today
            self.quota_used = 0

    def save_quota(self) -> None:
        self.store.set_meta(
            "quota", json.dumps({"max": self.quota_max, "used": self.quota_used, "day": self.quota_day})
        )

    def _count_call(self) -> SfError | None:
        """Every authenticated data-API call counts, whatever its answer; past the maximum, calls are refused
        (and not counted). The day is the emulator clock's UTC day."""
        with self.store.lock:
            self._roll_quota_day()
            if self.quota_used >= self.quota_max:
                return SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.quota_used += 1
            self.save_quota()
            return None

    def quota_json(self) -> dict[str, int]:
        return {"max": self.quota_max, "used": self.quota_used, "remaining": max(0, self.quota_max - self.quota_used)}

    def stats(self) -> dict[str, Any]:
        """What `GET /_emulator/stats` answers."""
        return admin.stats(self)


def _versions() -> list[dict[str, str]]:
    newest = int(float(API_VERSION))
    return [
        {"label": f"v{number}.0", "url": f"/services/data/v{number}.0", "version": f"{number}.0"}
        for number in range(OLDEST_VERSION, newest + 1)
    ]
