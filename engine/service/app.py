"""The HTTP API (FastAPI) and the service around it: intake into the inbox, health, metrics, campaigns, activity.

`Service` owns everything one `smartcampaign serve` runs: the rule book, the store's schema, the API's own
database engine, the in-process workers (threads), the Salesforce poller and the rule-file watcher. The FastAPI
app starts it in its lifespan and stops it on shutdown: uvicorn answers SIGTERM by refusing new requests and
finishing the ones in flight, then the workers finish their batch and the process exits 0.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from engine import __version__
from engine.language import ast
from engine.model.events import Event
from engine.model.settings import EngineSettings, SalesforceSettings
from engine.service import queue
from engine.service.metrics import CONTENT_TYPE, ServiceMetrics
from engine.service.rules import RuleBook
from engine.store.store import DEFAULT_URL, make_engine

log = logging.getLogger("smartcampaign.service")

SIGNATURE_HEADER = "X-Smartcampaign-Signature"
MAX_BODY = 5 * 1024 * 1024  # bytes of a POST /events body: 413 past it, checked before the body is parsed
MAX_EVENTS = 5_000  # events in one POST /events batch: 413 past it, counted before any event is validated
MAX_REQUEST_PERSONS = 100  # persons in one POST /campaigns/{name}/request (as Marketo's "Request Campaign")
MAX_REQUEST_BODY = 256 * 1024  # bytes of a POST /campaigns/{name}/request body


class ServiceError(Exception):
    """The service cannot start (rules with errors, an unusable store, a bad world file...)."""


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 (the driver the project installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass
class ServiceConfig:
    rules: list[str]
    db_url: str = DEFAULT_URL
    crm: str = "local"  # local | salesforce
    world: str | None = None
    token: str | None = None
    hmac_secret: str | None = None
    workers: int = 1
    watch: bool = False
    poll_interval: float = 10.0
    batch_size: int = 100
    salesforce: SalesforceSettings | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    worker_idle_sleep: float = 0.05
    outbox_batch: int = 1000  # CRM operations per flush (--crm salesforce)
    schedule: bool = True  # queue the runs of batch campaigns when their schedules come (engine.service.schedule)


# ---------------------------------------------------------------------------------------------- validation
@dataclass
class Catalog:
    """SFDC campaigns as the store knows them, for checking events at the door (refreshed on a miss)."""

    by_name: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_id: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # 15-char id -> (name, statuses)
    loaded_at: float = 0.0

    @classmethod
    def read(cls, db: Engine) -> Catalog:
        catalog = cls(loaded_at=time.monotonic())
        with db.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT c.sfdc_id, c.name, s.label FROM campaigns c LEFT JOIN campaign_statuses s "
                "ON s.campaign_id = c.id ORDER BY c.id, s.position"
            ).fetchall()
        statuses: dict[tuple[str, str], list[str]] = {}
        for sfdc_id, name, label in rows:
            statuses.setdefault((str(sfdc_id), str(name)), [])
            if label is not None:
                statuses[(str(sfdc_id), str(name))].append(str(label))
        for (sfdc_id, name), labels in statuses.items():
            catalog.by_name[name] = tuple(labels)
            catalog.by_id[sfdc_id[:15]] = (name, tuple(labels))
        return catalog


def _error(index: int | None, loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    where: list[Any] = ["body"] if index is None else ["body", index]
    return {"loc": where + loc, "msg": msg, "type": kind}


def _pydantic_errors(index: int | None, error: ValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in error.errors():
        loc = [part for part in item["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
        message = str(item["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
        if not loc and ": " in message:  # the event-level checks name their field first
            field_name, message = message.split(": ", 1)
            loc = [field_name]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        out.append(_error(index, loc, message, str(item["type"])))
    return out


def catalog_errors(
    index: int | None, event: Event, catalog: Catalog, rule_set: ast.RuleSet | None
) -> list[dict[str, Any]]:
    """The world is the catalog (REPLAY.md): unknown campaigns, statuses and programs are refused."""
    if event.type == "campaign_requested":  # names a smart campaign of the rules, not an SFDC campaign
        if rule_set is None:
            return []
        problem = request_problem(rule_set, event.campaign or "")
        return [_error(index, ["campaign"], problem[1], problem[0])] if problem is not None else []
    if event.type == "program_status_changed":
        if rule_set is None:
            return []
        program = rule_set.program(event.program or "")
        if program is None:
            known = ", ".join(p.name for p in rule_set.programs) or "none"
            return [_error(index, ["program"], f'the rules declare no program "{event.program}" (declared: {known})',
                           "unknown_program")]  # fmt: skip
        channel = rule_set.channel(program.channel or "")
        if channel is not None and event.status != ast.NOT_IN_PROGRAM and channel.status(event.status or "") is None:
            expected = ", ".join([ast.NOT_IN_PROGRAM, *channel.status_names])
            return [_error(index, ["status"], f'"{event.status}" is not a status of channel "{channel.name}" '
                           f"(expected one of: {expected})", "unknown_status")]  # fmt: skip
        return []
    if event.campaign is not None:
        statuses = catalog.by_name.get(event.campaign)
        if statuses is None:
            return [_error(index, ["campaign"], f'no SFDC campaign "{event.campaign}"', "unknown_campaign")]
        name = event.campaign
        if event.campaign_id is not None and catalog.by_id.get(event.campaign_id[:15], ("",))[0] != name:
            return [_error(index, ["campaign_id"], f'"{event.campaign_id}" is not the id of "{name}"', "mismatch")]
    else:
        found = catalog.by_id.get((event.campaign_id or "")[:15])
        if found is None:
            return [_error(index, ["campaign_id"], f'no SFDC campaign with id "{event.campaign_id}"',
                           "unknown_campaign")]  # fmt: skip
        name, statuses = found
    if event.type != "removed_from_sfdc_campaign" and event.status not in statuses:
        return [_error(index, ["status"], f'"{event.status}" is not a member status of "{name}" '
                       f"(expected one of: {', '.join(statuses)})", "unknown_status")]  # fmt: skip
    return []


# ---------------------------------------------------------------------------------------------- requests
class CampaignRequest(BaseModel):
    """Who to run a requested campaign (`trigger campaign is requested`) for."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"persons": ["ann@example.com", "bob@example.com"], "id": "crm-req-7"}]},
    )

    persons: list[str] = Field(
        min_length=1,
        max_length=MAX_REQUEST_PERSONS,
        description=f"Emails of persons in the mirror, 1 to {MAX_REQUEST_PERSONS} (more: 413). Each one's run is "
        "queued in the inbox in order with their other events.",
        examples=[["ann@example.com"]],
    )
    id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Optional idempotency key: the same request sent again with the same id queues nobody twice "
        "(counted in `duplicates`).",
        examples=["crm-req-7"],
    )

    @field_validator("persons")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for number, email in enumerate(value):
            if "@" not in email or len(email.strip()) < 3:
                raise ValueError(f"persons[{number}]: {email!r} is not an email address (name@domain)")
        return value


class CampaignRequestAnswer(BaseModel):
    """What was queued (202)."""

    campaign: str = Field(description="The smart campaign requested", examples=["Send Welcome Kit"])
    queued: int = Field(description="Persons whose run was queued now", examples=[2])
    duplicates: int = Field(description="Persons already queued by an earlier request with the same id", examples=[0])
    inbox_ids: list[int] = Field(description="The inbox rows queued", examples=[[1041, 1042]])


def request_problem(rule_set: ast.RuleSet, name: str) -> tuple[str, str] | None:
    """Why a smart campaign cannot be requested, as (kind, message); None when it can."""
    campaign = next((c for c in rule_set.campaigns if c.name == name), None)
    if campaign is None:
        return "unknown_campaign", f'no smart campaign "{name}"'
    if not campaign.is_requestable:
        return "not_requestable", (
            f'smart campaign "{name}" cannot be requested: it has no `trigger campaign is requested`'
        )
    return None


# ---------------------------------------------------------------------------------------------- the service
class Service:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.config.db_url = normalize_url(config.db_url)
        self.metrics = ServiceMetrics()
        self.rules = RuleBook(config.rules)
        self.stop = threading.Event()
        self.db: Engine | None = None
        self.workers: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.poller: Any = None
        self.scheduler: Any = None
        self.health_adapter: Any = None
        self._catalog = Catalog()
        self._catalog_lock = threading.Lock()
        self._crm_ok: tuple[float, bool, str] = (0.0, False, "not checked")
        if not config.token:
            config.token = secrets.token_urlsafe(24)
            log.warning("no --token nor SMARTCAMPAIGN_API_TOKEN: this run's API token is %s", config.token)
        self.started = False

    # ------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        from engine.service.schema import prepare_database

        config = self.config
        loaded = self.rules.load()
        if not loaded.ok:
            raise ServiceError("the rule set has errors:\n" + loaded.rendered)
        if config.db_url in ("sqlite://", "sqlite:///:memory:"):
            raise ServiceError("an in-memory store cannot be shared by the API and the workers: use a file")
        if config.world and config.crm != "local":
            raise ServiceError("--world seeds the embedded local org: it goes with --crm local")
        if config.workers > 1 and config.db_url.startswith("sqlite"):
            raise ServiceError("SQLite runs one worker: use PostgreSQL (--db postgresql://...) for more")
        try:
            prepare_database(config.db_url)
        except Exception as error:
            raise ServiceError(f"cannot prepare the store: {str(error).splitlines()[0]}") from None
        self.db = make_engine(config.db_url)
        if self.db.dialect.name == "sqlite":
            sa_event.listen(self.db, "connect", _sqlite_durable)
        if config.world:
            self._seed_world(config.world)
        self.metrics.depth_probe = self._depth
        self.metrics.rules_probe = lambda: self.rules.loaded
        self.metrics.usage_probe = self._salesforce_usage
        if config.crm == "salesforce":
            self._start_salesforce()
        from engine.service.flusher import FlushOptions
        from engine.service.worker import Worker, WorkerOptions

        options = WorkerOptions(
            batch_size=config.batch_size,
            engine=config.engine,
            idle_sleep=config.worker_idle_sleep,
            flush=FlushOptions(batch=config.outbox_batch),
            schedule=False,  # the service runs one scheduler of its own (below), workers or none
        )
        for number in range(config.workers):
            worker = Worker(
                config.db_url,
                self.rules,
                crm=config.crm,
                salesforce=config.salesforce,
                metrics=self.metrics,
                options=options,
            )
            self.workers.append(worker)
            self._thread(f"worker-{number + 1}", functools.partial(self._run_worker, worker))
        if self.poller is not None:
            self._thread("salesforce-poller", lambda: self.poller.run(self.stop))
        if config.schedule:
            from engine.service.schedule import Scheduler

            self.scheduler = Scheduler(config.db_url, self.rules, self.metrics)
            self._thread("scheduler", functools.partial(self.scheduler.run, self.stop))
        if config.watch:
            self._thread("rules-watch", lambda: self.rules.watch(self.stop))
        self.started = True
        log.info(
            "smartcampaign %s serving: %d worker(s), %s CRM, store %s",
            __version__, config.workers, config.crm, self.db.url.render_as_string(hide_password=True),
        )  # fmt: skip

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _run_worker(self, worker: Any) -> None:
        try:
            worker.run(self.stop)
        finally:
            worker.close()

    def _start_salesforce(self) -> None:
        from engine.crm.salesforce import SalesforceAdapter
        from engine.service.poller import Poller, sync_catalog

        settings = self.config.salesforce
        if settings is None:
            raise ServiceError("--crm salesforce needs Salesforce settings (SMARTCAMPAIGN_SFDC_*)")
        self.health_adapter = SalesforceAdapter(settings)
        self.poller = Poller(self.config.db_url, SalesforceAdapter(settings), self.metrics,
                             interval=self.config.poll_interval)  # fmt: skip
        try:
            sync_catalog(self.poller.store, self.poller.adapter)
            self.poller.store.commit()
        except Exception as error:
            self.poller.store.rollback()
            log.error("cannot read the campaign catalog from Salesforce (%s): the poller retries", error)

    def _seed_world(self, path: str) -> None:
        from engine.crm.local import LocalOrg
        from engine.model.loading import InputError, load_world
        from engine.replay.run import seed_world
        from engine.store.store import Store

        try:
            world = load_world(path)
        except InputError as error:
            raise ServiceError(str(error)) from None
        store = Store.open(self.config.db_url)
        try:
            empty = store.fetchone("SELECT COUNT(*) FROM persons")[0] == 0 and not store.campaigns()
            if not empty:
                log.info("--world %s: the store is not empty, not seeded", path)
                return
            rule_set, _ = self.rules.current()
            try:
                seed_world(store, LocalOrg(store), world, rule_set, path)
            except InputError as error:
                store.rollback()
                raise ServiceError(str(error)) from None
            store.commit()
            log.info("seeded the local org from %s", path)
        finally:
            store.close()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stops intake-side threads and lets each worker finish the batch in flight."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        if self.db is not None:
            self.db.dispose()
        log.info("smartcampaign stopped")

    # ------------------------------------------------------------------------------ probes
    def _depth(self) -> queue.Depth:
        assert self.db is not None
        with self.db.connect() as conn:
            return queue.depth(conn)

    def _salesforce_usage(self) -> tuple[int, int] | None:
        for worker in self.workers:
            usage = worker.salesforce_usage()
            if usage is not None:
                return usage  # type: ignore[no-any-return]
        if self.health_adapter is not None and self.health_adapter.usage.limit:
            return int(self.health_adapter.usage.used), int(self.health_adapter.usage.limit)
        return None

    def catalog(self, refresh: bool = False) -> Catalog:
        assert self.db is not None
        with self._catalog_lock:
            stale = time.monotonic() - self._catalog.loaded_at > (1.0 if refresh else 30.0)
            if stale:
                self._catalog = Catalog.read(self.db)
            return self._catalog

    def check_crm(self) -> tuple[bool, str]:
        if self.config.crm == "local":
            return True, "local org (in the store)"
        checked_at, ok, detail = self._crm_ok
        if time.monotonic() - checked_at < 15.0:
            return ok, detail
        try:
            self.health_adapter.call("limits", lambda sf: sf.limits())
            ok, detail = True, "Salesforce reachable"
        except Exception as error:
            ok, detail = False, f"Salesforce unreachable: {error}"
        self._crm_ok = (time.monotonic(), ok, detail)
        return ok, detail

    # ------------------------------------------------------------------------------ intake
    def validate(self, payload: Any) -> tuple[list[Event], list[dict[str, Any]]]:
        """Events from a JSON body (one object or an array), and the field errors of those that are not valid."""
        single = isinstance(payload, dict)
        if single:
            items: list[Any] = [payload]
        elif isinstance(payload, list):
            items = payload
        else:
            return [], [_error(None, [], "expected an event object or a JSON array of events", "type_error")]
        if not items:
            return [], [_error(None, [], "expected at least one event", "empty")]
        if len(items) > MAX_EVENTS:
            return [], [_error(None, [], f"at most {MAX_EVENTS} events a request", "too_many")]
        events: list[Event] = []
        errors: list[dict[str, Any]] = []
        rule_set = self.rules.rule_set
        catalog = self.catalog()
        for number, item in enumerate(items):
            index = None if single else number
            if not isinstance(item, dict):
                errors.append(_error(index, [], "expected a JSON object (an event)", "type_error"))
                continue
            try:
                event = Event.model_validate(item)
            except ValidationError as error:
                errors.extend(_pydantic_errors(index, error))
                continue
            problems = catalog_errors(index, event, catalog, rule_set)
            if problems and problems[0]["type"] in ("unknown_campaign", "unknown_status", "mismatch"):
                catalog = self.catalog(refresh=True)
                problems = catalog_errors(index, event, catalog, rule_set)
            errors.extend(problems)
            events.append(event)
        return events, errors

    def take(self, events: list[Event]) -> queue.Intake:
        assert self.db is not None
        with self.db.begin() as conn:
            intake = queue.put_events(conn, events, source="api")
        self.metrics.events_received.labels(source="api").inc(intake.accepted)
        if intake.duplicates:
            self.metrics.events_duplicate.labels(source="api").inc(intake.duplicates)
        return intake

    def unknown_persons(self, emails: list[str]) -> list[str]:
        """Those of `emails` that are not in the mirror (as given, in order)."""
        from sqlalchemy import bindparam, text

        assert self.db is not None
        keys = sorted({queue.partition_of(email) for email in emails})
        statement = text("SELECT email FROM persons WHERE email IN :emails").bindparams(
            bindparam("emails", expanding=True)
        )
        with self.db.connect() as conn:
            known = {str(row[0]) for row in conn.execute(statement, {"emails": keys}).fetchall()}
        return [email for email in emails if queue.partition_of(email) not in known]

    def request(self, campaign: str, body: CampaignRequest) -> queue.Intake:
        """One `campaign_requested` event per person into the inbox (one transaction)."""
        at = datetime.now(UTC)
        key = body.id or secrets.token_hex(8)
        events = [
            Event.model_validate(
                {
                    "type": "campaign_requested",
                    "person": email.strip(),
                    "campaign": campaign,
                    "at": at,
                    "id": queue.item_id(f"request:{campaign}:{key}:{queue.partition_of(email)}"),
                }
            )
            for email in body.persons
        ]
        assert self.db is not None
        with self.db.begin() as conn:
            intake = queue.put_events(conn, events, source="request")
        self.metrics.campaign_requests.labels(campaign=campaign).inc(intake.accepted)
        return intake

    # ------------------------------------------------------------------------------ auth
    def authorized(self, request: Request, body: bytes) -> bool:
        expected = self.config.token or ""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        token_ok = hmac.compare_digest(given.strip().encode(), expected.encode()) and scheme.lower() == "bearer"
        if not token_ok:
            return False
        secret = self.config.hmac_secret
        if secret:
            signature = request.headers.get(SIGNATURE_HEADER, "")
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(signature.removeprefix("sha256=").encode(), digest.encode())
        return True


def _sqlite_durable(dbapi_connection: Any, _record: Any) -> None:
    """An event the API answered 202 for survives a power cut, not only a crash."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for a body: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


UNAUTHORIZED = JSONResponse(
    {"detail": "missing or wrong credentials (Authorization: Bearer <token>)"},
    status_code=401,
    headers={"WWW-Authenticate": "Bearer"},
)

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Event"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    ]
                },
                "example": {
                    "type": "status_changed_in_sfdc_campaign",
                    "person": "ann@example.com",
                    "campaign": "2026 Q4 Webinar",
                    "status": "Attended",
                    "id": "evt-42",
                },
            }
        },
    }
}


_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/CampaignRequest"},
                "example": {"persons": ["ann@example.com", "bob@example.com"]},
            }
        },
    }
}


def create_app(service: Service, *, manage: bool = True) -> FastAPI:
    """The FastAPI app; with `manage`, its lifespan starts and stops the service."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage and not service.started:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            if manage:
                await run_in_threadpool(service.shutdown)

    app = FastAPI(
        title="smartcampaign",
        version=__version__,
        description="Marketo-style smart campaigns over Salesforce: event intake, health, metrics, campaigns. "
        "Everything but /healthz needs the bearer token (or a console session).",
        lifespan=lifespan,
        docs_url=None,  # served below, behind the token
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service

    def event_schema() -> dict[str, Any]:
        schema = Event.model_json_schema(ref_template="#/components/schemas/{model}")
        return schema

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Event"] = event_schema()
        schemas["CampaignRequest"] = CampaignRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = spec
        return spec

    app.openapi = custom_openapi  # type: ignore[method-assign]

    def operator(request: Request) -> bool:
        """The bearer token, or a signed-in console session (the console's own check: one place decides)."""
        return bool(app.state.console.who(request))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json(request: Request) -> Response:
        return JSONResponse(app.openapi()) if operator(request) else UNAUTHORIZED

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        if not operator(request):
            return UNAUTHORIZED
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")

    @app.post("/events", status_code=202, openapi_extra=_EVENT_BODY, tags=["intake"])
    async def post_events(request: Request) -> Response:
        """Takes one event or an array of events (REPLAY.md shape) into the durable inbox.

        202 once they are committed; 422 with the field errors when any event is not valid (none is taken);
        413 for a body over 5 MB or a batch of more than 5,000 events (none is taken);
        401 without a valid bearer token (and signature, when one is configured).
        """
        body = await _bounded_body(request)
        if body is None:
            return JSONResponse({"detail": f"the body is larger than {MAX_BODY} bytes"}, status_code=413)
        if not service.authorized(request, body):
            return UNAUTHORIZED
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            service.metrics.events_rejected.inc()
            return JSONResponse({"detail": [_error(None, [], f"not valid JSON: {error}", "json_invalid")]}, 422)
        if isinstance(payload, list) and len(payload) > MAX_EVENTS:  # counted before any event is validated
            service.metrics.events_rejected.inc()
            return JSONResponse({"detail": f"at most {MAX_EVENTS} events a request, not {len(payload)}"}, 413)
        events, errors = await run_in_threadpool(service.validate, payload)
        if errors:
            service.metrics.events_rejected.inc()
            return JSONResponse({"detail": errors}, status_code=422)
        try:
            intake = await run_in_threadpool(service.take, events)
        except Exception as error:
            log.error("intake failed: %s", error)
            return JSONResponse({"detail": "the inbox is not available; nothing was taken"}, status_code=503)
        return JSONResponse(
            {"accepted": intake.accepted, "duplicates": intake.duplicates, "inbox_ids": intake.ids}, status_code=202
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        """Ready: the store and the CRM are reachable and a rule set is loaded (503 otherwise)."""
        if not operator(request):
            return UNAUTHORIZED
        checks: dict[str, dict[str, Any]] = {}
        try:
            assert service.db is not None
            with service.db.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            checks["store"] = {"ok": True}
        except Exception as error:
            checks["store"] = {"ok": False, "detail": str(error).splitlines()[0]}
        ok, detail = service.check_crm()
        checks["crm"] = {"ok": ok, "detail": detail}
        checks["rules"] = {"ok": service.rules.loaded, "version": service.rules.version}
        alive = sum(1 for t in service.threads if t.name.startswith("worker") and t.is_alive())
        checks["workers"] = {"ok": alive == service.config.workers, "running": alive}
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    def metrics(request: Request) -> Response:
        """Prometheus metrics (scrape with `authorization: {credentials: <token>}` in Prometheus)."""
        if not operator(request):
            return UNAUTHORIZED
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/campaigns", tags=["rules"])
    def campaigns(request: Request) -> Response:
        """Each smart campaign: active, triggers, runs, last run."""
        if not operator(request):
            return UNAUTHORIZED
        from engine.language.describe import describe_trigger

        assert service.db is not None
        with service.db.connect() as conn:
            stats = {
                str(name): (int(runs or 0), last)
                for name, runs, last in conn.exec_driver_sql(
                    "SELECT campaign, SUM(runs), MAX(last_started_at) FROM qualifications GROUP BY campaign"
                ).fetchall()
            }
        rule_set = service.rules.rule_set
        from engine.service.schedule import upcoming

        batch = {u.campaign: u for u in upcoming(rule_set, time.time(), 1)} if rule_set is not None else {}
        out = []
        for campaign in rule_set.campaigns if rule_set is not None else ():
            runs, last = stats.get(campaign.name, (0, None))
            planned = batch.get(campaign.name)
            extra: dict[str, Any] = {"requestable": campaign.is_requestable}
            if planned is not None:
                extra["batch"] = {
                    "schedule": planned.schedule,
                    "timezone": planned.timezone,
                    "limit": planned.limit,
                    "next_run": planned.to_json()["next_runs"][0] if planned.runs else None,
                }
            out.append(
                {
                    "name": campaign.name,
                    "description": campaign.description,
                    "active": campaign.active,
                    "triggers": [describe_trigger(t) for t in campaign.triggers],
                    "qualification": campaign.qualification.kind,
                    "runs": runs,
                    "last_run": _iso(last),
                }
                | extra
            )
        return JSONResponse({"rules_version": service.rules.version, "campaigns": out})

    @app.post(
        "/campaigns/{name}/request",
        status_code=202,
        tags=["campaigns"],
        openapi_extra=_REQUEST_BODY,
        response_model=CampaignRequestAnswer,
        responses={
            401: {"description": "Missing or wrong credentials: the bearer token (and the signature, when one is "
                  "configured), as POST /events, or a console session"},
            404: {"description": "No smart campaign of this name"},
            409: {"description": "The smart campaign has no `trigger campaign is requested`"},
            413: {"description": f"More than {MAX_REQUEST_PERSONS} persons (nothing queued)"},
            422: {"description": "A malformed body (the field named), or persons not in the mirror (listed); "
                  "nothing queued"},
        },
    )  # fmt: skip
    async def request_campaign(name: str, request: Request) -> Response:
        """Runs a requested campaign (`trigger campaign is requested`) for 1 to 100 persons, as Marketo's REST
        "Request Campaign": each person's run goes through the inbox as a `campaign_requested` event (durable,
        exactly once, in order with the person's other events). 202 once they are committed; nothing is queued
        when anything is refused."""
        body = await _bounded_body(request, MAX_REQUEST_BODY)
        if body is None:
            return JSONResponse({"detail": f"the body is larger than {MAX_REQUEST_BODY} bytes"}, status_code=413)
        signed_in = not isinstance(app.state.console.who(request), bool | None)  # a console session
        if not signed_in and not service.authorized(request, body):  # as POST /events: token (and signature)
            return UNAUTHORIZED
        rule_set = service.rules.rule_set
        problem = request_problem(rule_set, name) if rule_set is not None else ("unknown_campaign", "no rules")
        if problem is not None:
            status = 404 if problem[0] == "unknown_campaign" else 409
            return JSONResponse({"detail": problem[1]}, status_code=status)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return JSONResponse({"detail": [_error(None, [], f"not valid JSON: {error}", "json_invalid")]}, 422)
        persons = payload.get("persons") if isinstance(payload, dict) else None
        if isinstance(persons, list) and len(persons) > MAX_REQUEST_PERSONS:
            return JSONResponse({"detail": f"at most {MAX_REQUEST_PERSONS} persons a request, not {len(persons)} "
                                 "(send them in several requests)"}, status_code=413)  # fmt: skip
        try:
            wanted = CampaignRequest.model_validate(payload)
        except ValidationError as error:
            return JSONResponse({"detail": _pydantic_errors(None, error)}, status_code=422)
        unknown = await run_in_threadpool(service.unknown_persons, wanted.persons)
        if unknown:
            message = f"not in the mirror (no such person): {', '.join(unknown)}"
            detail = [{"loc": ["body", "persons"], "msg": message, "type": "unknown_person", "persons": unknown}]
            return JSONResponse({"detail": detail}, status_code=422)
        try:
            intake = await run_in_threadpool(service.request, name, wanted)
        except Exception as error:
            log.error("campaign request failed: %s", error)
            return JSONResponse({"detail": "the inbox is not available; nothing was queued"}, status_code=503)
        answer = CampaignRequestAnswer(
            campaign=name, queued=intake.accepted, duplicates=intake.duplicates, inbox_ids=intake.ids
        )
        return JSONResponse(answer.model_dump(), status_code=202)

    @app.get("/persons/{email}/activity", tags=["persons"])
    def activity(
        email: str,
        request: Request,
        limit: int = Query(50, ge=1, le=500, description="Entries per page"),
        before: int | None = Query(None, description="Only entries older than this id (the `next` of a page)"),
    ) -> Response:
        """A person's activity log, newest first, paged."""
        if not operator(request):
            return UNAUTHORIZED
        assert service.db is not None
        with service.db.connect() as conn:
            person = conn.exec_driver_sql(
                "SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE email = %s"
                if service.db.dialect.name != "sqlite"
                else "SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE email = ?",
                (email.lower(),),
            ).fetchone()
            if person is None:
                return JSONResponse({"detail": f"no person {email}"}, status_code=404)
            mark = "?" if service.db.dialect.name == "sqlite" else "%s"
            rows = conn.exec_driver_sql(
                "SELECT id, at, kind, smart_campaign, target, status, origin, outcome, reason FROM activity "
                f"WHERE person_id = {mark} AND id < {mark} ORDER BY id DESC LIMIT {mark}",
                (person[0], before if before is not None else 2**62, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [
            {
                "id": r[0],
                "at": _iso(r[1]),
                "kind": r[2],
                "smart_campaign": r[3],
                "target": r[4],
                "status": r[5],
                "origin": r[6],
                "outcome": r[7],
                "reason": r[8],
            }
            for r in rows
        ]
        return JSONResponse(
            {
                "person": person[1],
                "sfdc_id": person[2],
                "sfdc_type": person[3],
                "activity": entries,
                "next": rows[-1][0] if more and rows else None,
            }
        )

    @app.post("/rules/reload", tags=["rules"])
    async def reload(request: Request) -> Response:
        """Loads the rule files again; a rule set with errors is refused (422) and the running one stays."""
        body = await request.body()
        if not service.authorized(request, body):
            return UNAUTHORIZED
        result = await run_in_threadpool(service.rules.load)
        payload = {"ok": result.ok, "version": result.version, "campaigns": result.campaigns, "errors": result.errors}
        return JSONResponse(payload, status_code=200 if result.ok else 422)

    from engine.service.console.router import install_console

    install_console(app, service)  # the operator console: / and /console/...
    return app


async def _bounded_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The request body, or None when it is over `limit`: a Content-Length over it is refused before anything
    is read, and a body without one (chunked) is read only until it passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
