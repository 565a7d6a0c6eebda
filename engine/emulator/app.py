"""The emulator's HTTP face: Salesforce's REST, OAuth and SOAP-login endpoints, plus the admin endpoints.

One catch-all route hands every request to `Emulator.handle`, which authenticates, counts the call against
the daily quota, applies the injected faults, and runs the endpoint in a worker thread under the store's lock.

Paths that simple-salesforce builds for a login domain ``127.0.0.1:PORT/login`` —
``https://127.0.0.1:PORT/login.salesforce.com/services/...`` — are served as if the ``/login.salesforce.com``
part were not there, so username/password and OAuth logins work with an unmodified client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.emulator import schema as s
from engine.emulator.faults import FaultConfig, Faults
from engine.emulator.ids import BASE62, normalize_id
from engine.emulator.org import Actor, Org, SfError, dml_error, not_found
from engine.emulator.soql import MALFORMED_QUERY, SoqlError
from engine.emulator.store import Record, Store
from engine.emulator.timeutil import Clock, format_datetime

log = logging.getLogger("smartcampaign.emulator")

API_VERSION = "59.0"  # the newest version listed by GET /services/data
OLDEST_VERSION = 20
DEFAULT_QUOTA = 100_000
PAGE_SIZE = 2000
MIN_PAGE_SIZE = 200
COLLECTION_LIMIT = 200
CURSOR_LIMIT = 200
CURSOR_TTL_S = 15 * 60
JSON_TYPE = "application/json;charset=UTF-8"
XML_TYPE = "text/xml;charset=UTF-8"
_LOGIN_HOST_RE = re.compile(r"^/[^/]+\.salesforce\.com(?=/)")
_DATA_RE = re.compile(r"^/services/data(?:/v(?P<version>\d+\.\d)(?P<rest>/.*)?)?/?$")
_IDENTITY_RE = re.compile(r"^/id/00D\w+/005\w+/?$")
_SOAP_RE = re.compile(r"^/services/Soap/u/(?P<version>\d+\.\d)(?:/.*)?$")


@dataclass(frozen=True)
class EmulatorConfig:
    """How an emulator starts. `data` None keeps the state in memory; `token` None makes (or, with `data`,
    reuses) one; `quota` None keeps the stored daily maximum (100,000 for a new org)."""

    data: Path | None = None
    token: str | None = None
    quota: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON; None with text None: no body
    text: str | None = None
    media_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    method: str
    version: str
    params: dict[str, str]
    query: dict[str, str]
    body: bytes
    headers: Mapping[str, str]
    actor: Actor
    endpoint: str
    host: str


@dataclass
class _Cursor:
    records: list[Record]
    total: int
    endpoint: str
    touched: float


class Cursors:
    """Query locators, in memory: the rest of a result kept for `nextRecordsUrl`, 15 minutes after last use."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, _Cursor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def add(self, records: list[Record], total: int, endpoint: str) -> str:
        self._expire()
        locator = "01g" + "".join(secrets.choice(BASE62) for _ in range(15))
        self._items[locator] = _Cursor(records, total, endpoint, time.monotonic())
        while len(self._items) > CURSOR_LIMIT:
            self._items.popitem(last=False)
        return locator

    def get(self, locator: str) -> _Cursor | None:
        self._expire()
        cursor = self._items.get(locator)
        if cursor is not None:
            cursor.touched = time.monotonic()
            self._items.move_to_end(locator)
        return cursor

    def _expire(self) -> None:
        limit = time.monotonic() - CURSOR_TTL_S
        for key in [key for key, cursor in self._items.items() if cursor.touched < limit]:
            del self._items[key]


Handler = Callable[[Ctx], Reply]

# (path pattern after /services/data/vXX.X, endpoint template, {method: handler name})
_ROUTES: list[tuple[re.Pattern[str], str, dict[str, str]]] = [
    (re.compile(pattern), template, methods)
    for pattern, template, methods in [
        (r"^$", "", {"GET": "resources"}),
        (r"^/limits$", "limits", {"GET": "limits"}),
        (r"^/query$", "query", {"GET": "query"}),
        (r"^/queryAll$", "queryAll", {"GET": "query_all"}),
        (r"^/query/(?P<locator>[^/]+)$", "query/{locator}", {"GET": "query_more"}),
        (r"^/queryAll/(?P<locator>[^/]+)$", "queryAll/{locator}", {"GET": "query_more"}),
        (r"^/sobjects$", "sobjects", {"GET": "describe_global"}),
        (r"^/sobjects/(?P<type>\w+)$", "sobjects/{type}", {"GET": "sobject_info", "POST": "create"}),
        (r"^/sobjects/(?P<type>\w+)/describe$", "sobjects/{type}/describe", {"GET": "describe"}),
        (r"^/sobjects/(?P<type>\w+)/updated$", "sobjects/{type}/updated", {"GET": "updated"}),
        (r"^/sobjects/(?P<type>\w+)/deleted$", "sobjects/{type}/deleted", {"GET": "deleted"}),
        (
            r"^/sobjects/(?P<type>\w+)/(?P<id>[^/]+)$",
            "sobjects/{type}/{id}",
            {"GET": "get", "PATCH": "update", "DELETE": "delete"},
        ),
        (
            r"^/composite/sobjects$",
            "composite/sobjects",
            {"POST": "collection_create", "PATCH": "collection_update", "DELETE": "collection_delete"},
        ),
        (
            r"^/composite/sobjects/(?P<type>\w+)$",
            "composite/sobjects/{type}",
            {"GET": "collection_retrieve", "POST": "collection_retrieve"},
        ),
    ]
]


def _error_reply(error: SfError) -> Reply:
    return Reply(error.status, error.body())


def _json(ctx: Ctx) -> Any:
    if not ctx.body.strip():
        raise SfError(400, "JSON_PARSER_ERROR", "No content to map due to end-of-input at [line:1, column:0]")
    try:
        return json.loads(ctx.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise SfError(400, "JSON_PARSER_ERROR", f"Unexpected character: {error}") from None


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value is None:
        return False
    raise SfError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from {value!r} for {name}")


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
        self._save_quota()
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
        query = {key: value for key, value in request.query_params.items()}
        try:
            if path.startswith("/_emulator"):
                reply = await run_in_threadpool(self._admin, method, path, body, request.headers)
            elif path == "/services/oauth2/token":
                self.calls["POST oauth2/token"] += 1
                reply = await run_in_threadpool(self._oauth_token, method, body, request.headers, host)
            elif path == "/services/oauth2/userinfo" or _IDENTITY_RE.match(path):
                self.calls[f"GET {'oauth2/userinfo' if 'userinfo' in path else 'id'}"] += 1
                reply = await run_in_threadpool(self._identity, path, request.headers, host)
            elif _SOAP_RE.match(path):
                self.calls["POST Soap/u login"] += 1
                reply = await run_in_threadpool(self._soap_login, method, path, body, host)
            elif _DATA_RE.match(path):
                reply = await self._data(method, path, query, body, request.headers, host)
            else:
                reply = _error_reply(not_found())
        except Exception:  # a bug in the emulator: answer as Salesforce does, and say what happened
            log.exception("emulator: unexpected error on %s %s", method, path)
            reply = _error_reply(SfError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred in the emulator."))
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
        self, method: str, path: str, query: dict[str, str], body: bytes, headers: Mapping[str, str], host: str
    ) -> Reply:
        match = _DATA_RE.match(path)
        assert match is not None
        version = match.group("version")
        if version is None:
            return Reply(200, self._versions())
        if not OLDEST_VERSION <= float(version) < 100:
            return _error_reply(not_found())
        rest = (match.group("rest") or "").rstrip("/")
        route = self._route(method, rest)
        if isinstance(route, Reply):
            return route
        endpoint, handler_name, params = route
        actor = await run_in_threadpool(self._authenticate, headers)
        if actor is None:
            return Reply(
                401,
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                headers={"WWW-Authenticate": "Token"},
            )
        refused = await run_in_threadpool(self._count_call)
        if refused is not None:
            return _error_reply(refused)
        self.calls[endpoint] += 1
        latency = self.faults.latency_for(endpoint)
        if latency > 0:
            await asyncio.sleep(latency)
        injected = self.faults.draw_error(endpoint)
        if injected is not None:
            return _error_reply(injected)
        ctx = Ctx(method, version, params, query, body, headers, actor, endpoint, host)
        handler: Handler = getattr(self, f"_h_{handler_name}")
        return await run_in_threadpool(self._run, handler, ctx)

    def _route(self, method: str, rest: str) -> tuple[str, str, dict[str, str]] | Reply:
        for pattern, template, methods in _ROUTES:
            found = pattern.match(rest)
            if not found:
                continue
            params = {key: value for key, value in found.groupdict().items() if value is not None}
            if "type" in params:
                sobject = s.sobject(params["type"])
                if sobject is None:
                    return _error_reply(not_found())
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
        return _error_reply(not_found())

    def _run(self, handler: Handler, ctx: Ctx) -> Reply:
        with self.store.lock:
            try:
                return handler(ctx)
            except SfError as error:
                return _error_reply(error)
            except SoqlError as error:
                return Reply(400, [{"message": error.message, "errorCode": error.code}])

    def _authenticate(self, headers: Mapping[str, str]) -> Actor | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        with self.store.lock:
            if secrets.compare_digest(token.encode(), self.token.encode()):
                return None if self.master_expired else self.org.actor()
            user_id = self.store.session_user(token)
            if user_id is None:
                return None
            user = self.store.get(user_id)
            if user is None or not user.get("IsActive"):
                return None
            return self.org.actor(user_id)

    # -- quota

    def _roll_quota_day(self) -> None:
        today = self.clock.now().date().isoformat()
        if today != self.quota_day:
            self.quota_day = today
            self.quota_used = 0

    def _save_quota(self) -> None:
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
            self._save_quota()
            return None

    # -- endpoints

    def _versions(self) -> list[dict[str, str]]:
        newest = int(float(API_VERSION))
        return [
            {"label": f"v{number}.0", "url": f"/services/data/v{number}.0", "version": f"{number}.0"}
            for number in range(OLDEST_VERSION, newest + 1)
        ]

    def _h_resources(self, ctx: Ctx) -> Reply:
        base = f"/services/data/v{ctx.version}"
        names = ("limits", "query", "queryAll", "sobjects", "composite")
        return Reply(200, {name: f"{base}/{name}" for name in names})

    def _h_limits(self, ctx: Ctx) -> Reply:
        def pair(maximum: int, remaining: int | None = None) -> dict[str, int]:
            return {"Max": maximum, "Remaining": maximum if remaining is None else remaining}

        return Reply(
            200,
            {
                "DailyApiRequests": pair(self.quota_max, max(0, self.quota_max - self.quota_used)),
                "DailyAsyncApexExecutions": pair(250000),
                "DailyBulkApiBatches": pair(15000),
                "DailyBulkV2QueryJobs": pair(10000),
                "DailyStreamingApiEvents": pair(10000),
                "DataStorageMB": pair(1024),
                "FileStorageMB": pair(1024),
                "SingleEmailMessageMaxPerDay": pair(5000),
            },
        )

    def _sobject(self, ctx: Ctx) -> s.SObjectDef:
        sobject = s.sobject(ctx.params["type"])
        if sobject is None:
            raise not_found()
        return sobject

    def _h_describe_global(self, ctx: Ctx) -> Reply:
        marketing = ctx.actor.marketing_user
        return Reply(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [item.describe_global(marketing_user=marketing, version=ctx.version) for item in s.OBJECTS],
            },
        )

    def _h_sobject_info(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        described = sobject.describe_global(marketing_user=ctx.actor.marketing_user, version=ctx.version)
        return Reply(200, {"objectDescribe": described, "recentItems": []})

    def _h_describe(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        return Reply(200, sobject.describe(marketing_user=ctx.actor.marketing_user, version=ctx.version))

    def _h_get(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        fields = [name for name in ctx.query.get("fields", "").split(",") if name.strip()] or None
        return Reply(200, self.org.get(sobject, ctx.params["id"], fields, ctx.version))

    def _lock_target(self, sobject: s.SObjectDef, values: Mapping[str, Any], record_id: str | None) -> str | None:
        """The row a write locks: the record, or for a new child record its parent (the classic contention)."""
        if record_id:
            return record_id
        if sobject.parent_field:
            parent = values.get(sobject.parent_field)
            return str(parent) if parent else None
        return None

    def _h_create(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        data = _json(ctx)
        if not isinstance(data, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a JSON array")
        with self.store.transaction():
            values = self.org.coerce(sobject, data, creating=True)
            lock = self.faults.draw_lock(ctx.endpoint, self._lock_target(sobject, values, None))
            if lock is not None:
                raise lock
            record_id = self.org.create_coerced(sobject, values, ctx.actor)
        return Reply(201, {"id": record_id, "success": True, "errors": []})

    def _h_update(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        data = _json(ctx)
        if not isinstance(data, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a JSON array")
        with self.store.transaction():
            self.org.existing(sobject, ctx.params["id"])
            lock = self.faults.draw_lock(ctx.endpoint, normalize_id(ctx.params["id"]))
            if lock is not None:
                raise lock
            self.org.update(sobject, ctx.params["id"], data, ctx.actor)
        return Reply(204)

    def _h_delete(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        with self.store.transaction():
            self.org.existing(sobject, ctx.params["id"])
            lock = self.faults.draw_lock(ctx.endpoint, normalize_id(ctx.params["id"]))
            if lock is not None:
                raise lock
            self.org.delete(sobject, ctx.params["id"], ctx.actor)
        return Reply(204)

    def _h_updated(self, ctx: Ctx) -> Reply:
        return Reply(200, self.org.updated(self._sobject(ctx), ctx.query.get("start"), ctx.query.get("end")))

    def _h_deleted(self, ctx: Ctx) -> Reply:
        return Reply(200, self.org.deleted(self._sobject(ctx), ctx.query.get("start"), ctx.query.get("end")))

    # -- queries

    def _h_query(self, ctx: Ctx) -> Reply:
        return self._query(ctx, include_deleted=False)

    def _h_query_all(self, ctx: Ctx) -> Reply:
        return self._query(ctx, include_deleted=True)

    def _query(self, ctx: Ctx, *, include_deleted: bool) -> Reply:
        text = ctx.query.get("q")
        if not text:
            raise SfError(400, MALFORMED_QUERY, "A query string has to be specified")
        result = self.org.query(text, include_deleted=include_deleted, version=ctx.version)
        endpoint = "queryAll" if include_deleted else "query"
        size = self._page_size(ctx.headers)
        if len(result.records) <= size:
            return Reply(200, {"totalSize": result.total_size, "done": True, "records": result.records})
        locator = self.cursors.add(result.records, result.total_size, endpoint)
        return self._page(ctx.version, locator, self.cursors.get(locator), 0, size)

    @staticmethod
    def _page_size(headers: Mapping[str, str]) -> int:
        options = headers.get("sforce-query-options", "")
        found = re.search(r"batchSize\s*=\s*(\d+)", options)
        if not found:
            return PAGE_SIZE
        return max(MIN_PAGE_SIZE, min(PAGE_SIZE, int(found.group(1))))

    def _page(self, version: str, locator: str, cursor: _Cursor | None, start: int, size: int) -> Reply:
        assert cursor is not None
        records = cursor.records[start : start + size]
        done = start + size >= len(cursor.records)
        body: dict[str, Any] = {"totalSize": cursor.total, "done": done}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{version}/{cursor.endpoint}/{locator}-{start + size}"
        body["records"] = records
        return Reply(200, body)

    def _h_query_more(self, ctx: Ctx) -> Reply:
        locator, _, offset = ctx.params["locator"].rpartition("-")
        cursor = self.cursors.get(locator) if locator and offset.isdigit() else None
        if cursor is None or int(offset) > len(cursor.records):
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(ctx.version, locator, cursor, int(offset), self._page_size(ctx.headers))

    # -- sObject collections

    def _collection_body(self, ctx: Ctx) -> tuple[list[Any], bool]:
        body = _json(ctx)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SfError(400, "JSON_PARSER_ERROR", 'Cannot deserialize the request: expected {"records": [...]}')
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        return records, _flag(body.get("allOrNone", False), "allOrNone")

    @staticmethod
    def _record_type(item: Any) -> s.SObjectDef:
        if not isinstance(item, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject", whole_request=True)
        attributes = item.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(name, str) or not name:
            raise SfError(400, "INVALID_TYPE", "Must send a concrete entity type.", whole_request=True)
        sobject = s.sobject(name)
        if sobject is None:
            raise SfError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.", whole_request=True)
        return sobject

    def _finish(self, results: list[dict[str, Any]], all_or_none: bool) -> Reply:
        if all_or_none and any(not item["success"] for item in results):
            self.store.rollback_all()
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
            for item in results:
                if item["success"]:
                    item["success"] = False
                    item["errors"] = [dict(rolled_back)]
                    if item.get("_created"):
                        item.pop("id", None)
        for item in results:
            item.pop("_created", None)
        return Reply(200, results)

    def _h_collection_create(self, ctx: Ctx) -> Reply:
        records, all_or_none = self._collection_body(ctx)
        prepared: list[tuple[s.SObjectDef, Record] | SfError] = []
        for item in records:
            sobject = self._record_type(item)
            fields = {key: value for key, value in item.items() if key.lower() != "id"}
            try:
                values = self.org.coerce(sobject, fields, creating=True)
            except SfError as error:
                if error.whole_request:
                    raise
                prepared.append(error)
                continue
            if any(key.lower() == "id" and value for key, value in item.items()):
                prepared.append(dml_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
            else:
                prepared.append((sobject, values))
        results: list[dict[str, Any]] = []
        with self.store.transaction():
            for entry in prepared:
                if isinstance(entry, SfError):
                    results.append({"success": False, "errors": [entry.collection_error()]})
                    continue
                sobject, values = entry
                try:
                    lock = self.faults.draw_lock(ctx.endpoint, self._lock_target(sobject, values, None))
                    if lock is not None:
                        raise lock
                    with self.store.savepoint():
                        record_id = self.org.create_coerced(sobject, values, ctx.actor)
                    results.append({"id": record_id, "success": True, "errors": [], "_created": True})
                except SfError as error:
                    results.append({"success": False, "errors": [error.collection_error()]})
            return self._finish(results, all_or_none)

    def _h_collection_update(self, ctx: Ctx) -> Reply:
        records, all_or_none = self._collection_body(ctx)
        prepared: list[tuple[s.SObjectDef, str | None, Record | SfError]] = []
        for item in records:
            sobject = self._record_type(item)
            record_id = next((str(value) for key, value in item.items() if key.lower() == "id" and value), None)
            fields = {key: value for key, value in item.items() if key.lower() != "id"}
            try:
                prepared.append((sobject, record_id, self.org.coerce(sobject, fields, creating=False)))
            except SfError as error:
                if error.whole_request:
                    raise
                prepared.append((sobject, record_id, error))
        results: list[dict[str, Any]] = []
        with self.store.transaction():
            for sobject, record_id, values in prepared:
                if record_id is None:
                    missing = dml_error("MISSING_ARGUMENT", "Id not specified in an update call")
                    results.append({"success": False, "errors": [missing.collection_error()]})
                    continue
                try:
                    self.org.existing(sobject, record_id, collection=True)
                    if isinstance(values, SfError):
                        raise values
                    lock = self.faults.draw_lock(ctx.endpoint, normalize_id(record_id))
                    if lock is not None:
                        raise lock
                    with self.store.savepoint():
                        self.org.update_coerced(sobject, record_id, values, ctx.actor, collection=True)
                    results.append({"id": normalize_id(record_id), "success": True, "errors": []})
                except SfError as error:
                    results.append({"id": record_id, "success": False, "errors": [error.collection_error()]})
            return self._finish(results, all_or_none)

    def _h_collection_delete(self, ctx: Ctx) -> Reply:
        ids = [item.strip() for item in ctx.query.get("ids", "").split(",") if item.strip()]
        if not ids:
            raise SfError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > COLLECTION_LIMIT:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        all_or_none = _flag(ctx.query.get("allOrNone", "false"), "allOrNone")
        results: list[dict[str, Any]] = []
        with self.store.transaction():
            for record_id in ids:
                full = normalize_id(record_id)
                sobject = s.sobject_for_id(full) if full else None
                try:
                    if full is None or sobject is None:
                        raise dml_error("MALFORMED_ID", f"malformed id {record_id}")
                    self.org.existing(sobject, full, collection=True)
                    lock = self.faults.draw_lock(ctx.endpoint, full)
                    if lock is not None:
                        raise lock
                    with self.store.savepoint():
                        self.org.delete(sobject, full, ctx.actor, collection=True)
                    results.append({"id": full, "success": True, "errors": []})
                except SfError as error:
                    results.append({"id": full or record_id, "success": False, "errors": [error.collection_error()]})
            return self._finish(results, all_or_none)

    def _h_collection_retrieve(self, ctx: Ctx) -> Reply:
        sobject = self._sobject(ctx)
        if ctx.method == "POST":
            body = _json(ctx)
            ids = body.get("ids", []) if isinstance(body, dict) else []
            fields = body.get("fields", []) if isinstance(body, dict) else []
        else:
            ids = [item for item in ctx.query.get("ids", "").split(",") if item]
            fields = [item for item in ctx.query.get("fields", "").split(",") if item]
        if not fields:
            raise SfError(400, "MISSING_ARGUMENT", "fields parameter is required")
        out: list[Record | None] = []
        for record_id in ids:
            try:
                out.append(self.org.get(sobject, str(record_id), [str(name) for name in fields], ctx.version))
            except SfError as error:
                if error.status != 404:
                    raise
                out.append(None)
        return Reply(200, out)

    # ----------------------------------------------------------------------------------------- logins

    def _login(self, username: str | None, password: str | None) -> str | None:
        """A new session for these credentials, or None. The emulator takes any password that isn't empty;
        a username that names a User acts as that user (refused when inactive), any other as the first user."""
        if not username or not password:
            return None
        with self.store.lock:
            user = self.org.find_user(username)
            if user is not None and not user.get("IsActive"):
                return None
            user_id = str(user["Id"]) if user is not None else self.org.default_user_id
            return self.org.issue_session(user_id)

    def _oauth_token(self, method: str, body: bytes, headers: Mapping[str, str], host: str) -> Reply:
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
            token = self._login(form.get("username"), form.get("password"))
        elif grant == "client_credentials":
            if not client_id or not client_secret:
                return failure("invalid_client", "invalid client credentials")
            with self.store.lock:
                token = self.org.issue_session(self.org.default_user_id)
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            token = self._login(self._jwt_subject(form.get("assertion", "")), "jwt")
        else:
            return failure("unsupported_grant_type", "grant type not supported")
        if token is None:
            return failure("invalid_grant", "authentication failure")
        with self.store.lock:
            user_id = self.store.session_user(token) or self.org.default_user_id
        issued_at = str(int(time.time() * 1000))
        identity = f"https://{host}/id/{self.org.org_id}/{user_id}"
        signature = hmac.new(self.token.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
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

    def _identity(self, path: str, headers: Mapping[str, str], host: str) -> Reply:
        """The identity URL an OAuth answer names (`/id/ORG/USER`) and OpenID's `/services/oauth2/userinfo`,
        for whoever the bearer token belongs to. Not counted against the quota."""
        actor = self._authenticate(headers)
        if actor is None:
            return Reply(403, text="Bad_OAuth_Token", media_type="text/plain")
        with self.store.lock:
            user = self.store.get(actor.user_id) or {}
        identity = f"https://{host}/id/{self.org.org_id}/{actor.user_id}"
        name = " ".join(str(part) for part in (user.get("FirstName"), user.get("LastName")) if part)
        if path.startswith("/services/oauth2/userinfo"):
            body: dict[str, Any] = {
                "sub": identity,
                "user_id": actor.user_id,
                "organization_id": self.org.org_id,
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
                "organization_id": self.org.org_id,
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

    @staticmethod
    def _jwt_subject(assertion: str) -> str | None:
        try:
            payload = assertion.split(".")[1]
            decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return None
        subject = decoded.get("sub") if isinstance(decoded, dict) else None
        return str(subject) if subject else None

    def _soap_login(self, method: str, path: str, body: bytes, host: str) -> Reply:
        match = _SOAP_RE.match(path)
        assert match is not None
        version = match.group("version")
        values: dict[str, str] = {}
        try:
            for element in ET.fromstring(body).iter():
                local = element.tag.rsplit("}", 1)[-1]
                if local in ("username", "password") and element.text is not None:
                    values[local] = element.text
        except ET.ParseError:
            return self._soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
        token = self._login(values.get("username"), values.get("password"))
        if method != "POST" or token is None:
            return self._soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
        with self.store.lock:
            user_id = self.store.session_user(token) or self.org.default_user_id
            user = self.store.get(user_id) or {}
        org15 = self.org.org_id[:15]
        server = f"https://{host}/services/Soap/u/{version}/{org15}"
        metadata = f"https://{host}/services/Soap/m/{version}/{org15}"
        full_name = " ".join(str(part) for part in (user.get("FirstName"), user.get("LastName")) if part)
        user_info = (
            f"<userInfo><organizationId>{self.org.org_id}</organizationId>"
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

    @staticmethod
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

    # ------------------------------------------------------------------------------------------- admin

    def _admin(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not secrets.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        name = path[len("/_emulator/") :].strip("/")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError as error:
            return self._admin_error(f"the body is not JSON: {error}")
        handlers: dict[tuple[str, str], Callable[[Any], Reply]] = {
            ("POST", "faults"): self._admin_faults,
            ("GET", "faults"): lambda _payload: Reply(200, self.faults.to_json()),
            ("POST", "reset"): self._admin_reset,
            ("GET", "stats"): lambda _payload: Reply(200, self.stats()),
            ("POST", "quota"): self._admin_quota,
            ("GET", "quota"): lambda _payload: Reply(200, self._quota_json()),
            ("POST", "clock"): self._admin_clock,
            ("GET", "clock"): lambda _payload: Reply(200, self._clock_json()),
        }
        handler = handlers.get((method, name))
        if handler is None:
            return _error_reply(not_found())
        with self.store.lock:
            try:
                return handler(payload)
            except ValueError as error:
                return self._admin_error(str(error))

    @staticmethod
    def _admin_error(message: str) -> Reply:
        return Reply(400, [{"message": message, "errorCode": "INVALID_ADMIN_REQUEST"}])

    def _admin_faults(self, payload: Any) -> Reply:
        config = FaultConfig.from_json(payload)
        self.faults.configure(config)
        if config.expire_sessions:
            expired = self.store.expire_sessions() + (0 if self.master_expired else 1)
            self.master_expired = True
            self.faults.counters.sessions_expired += expired
        else:
            self.master_expired = False
        return Reply(200, self.faults.to_json())

    def _admin_reset(self, _payload: Any) -> Reply:
        with self.store.transaction():
            self.org.reset()
            self.store.clear_sessions()
        self.cursors.clear()
        self.calls.clear()
        self.faults.configure(self.config.faults)
        self.faults.reset_counters()
        self.master_expired = False
        self.quota_max = self.config.quota if self.config.quota is not None else DEFAULT_QUOTA
        self.quota_used = 0
        self._save_quota()
        self.clock.set_offset(0.0)
        self.store.set_meta("clock_offset", "0")
        return Reply(200, self.stats())

    def _quota_json(self) -> dict[str, int]:
        return {"max": self.quota_max, "used": self.quota_used, "remaining": max(0, self.quota_max - self.quota_used)}

    def _admin_quota(self, payload: Any) -> Reply:
        if not isinstance(payload, dict) or set(payload) - {"max", "used"}:
            raise ValueError('the quota body is {"max": N, "used": N}, both optional')
        for key in ("max", "used"):
            value = payload.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{key} must be a non-negative integer")
        if payload.get("max") is not None:
            self.quota_max = int(payload["max"])
        if payload.get("used") is not None:
            self.quota_used = int(payload["used"])
        self._save_quota()
        return Reply(200, self._quota_json())

    def _clock_json(self) -> dict[str, Any]:
        return {"now": format_datetime(self.clock.now()), "offset_s": self.clock.offset_s}

    def _admin_clock(self, payload: Any) -> Reply:
        if (
            not isinstance(payload, dict)
            or len(set(payload) & {"advance_s", "offset_s"}) != 1
            or set(payload)
            - {
                "advance_s",
                "offset_s",
            }
        ):
            raise ValueError('the clock body is {"advance_s": seconds} or {"offset_s": seconds}')
        value = payload.get("advance_s", payload.get("offset_s"))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("seconds must be a number")
        offset = self.clock.offset_s + value if "advance_s" in payload else float(value)
        self.clock.set_offset(offset)
        self.store.set_meta("clock_offset", repr(offset))
        return Reply(200, self._clock_json())

    def stats(self) -> dict[str, Any]:
        records: dict[str, int] = {}
        deleted: dict[str, int] = {}
        with self.store.lock:
            for sobject in s.OBJECTS:
                live, gone = self.store.count(sobject)
                records[sobject.name] = live
                deleted[sobject.name] = gone
        return {
            "calls": dict(sorted(self.calls.items())),
            "total_calls": sum(self.calls.values()),
            "records": records,
            "deleted_records": deleted,
            "api_usage": self._quota_json(),
            "faults": self.faults.to_json(),
            "open_cursors": len(self.cursors),
            "clock": self._clock_json(),
        }
