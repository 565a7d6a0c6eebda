"""The operator console: server-rendered pages on the service's own port (FastAPI + Jinja2, no external asset).

`/` lists the campaigns; `/console/...` holds the other pages, the sign-in form and the static files. Every
page needs a signed session cookie (from the sign-in form) or the API's bearer token; without either it
answers 401 with the sign-in form. Forms carry a CSRF token. See docs/console.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine import __version__
from engine.language import ast
from engine.service.console import queries, svg
from engine.service.console.auth import COOKIE, SESSION_SECONDS, ConsoleAuth, Session
from engine.service.console.words import declaration_source, explain_person, flow_outline, highlight, run_trigger_words

log = logging.getLogger("smartcampaign.console")

HERE = Path(__file__).resolve().parent
REFUSED_DAYS = 5
WRONG_SECRET_DELAY = 1.0  # seconds before a wrong sign-in is answered
_SAFE_NEXT = re.compile(r"^/(?!/)[^\s\\]*$")


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(float(seconds), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Console:
    """The console's state beside the service: sign-in, templates, and the graph SVGs already drawn."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.auth = ConsoleAuth(service.config.token or "")
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = _when
        self.templates.env.filters["age"] = _age
        self.templates.env.filters["urlquote"] = lambda value: quote(str(value), safe="")
        self._graphs: dict[tuple[int, str], str] = {}
        self._graph_lock = threading.Lock()

    @property
    def db(self) -> Engine:
        db: Engine | None = self.service.db
        if db is None:
            raise RuntimeError("the service has not started")
        return db

    # ------------------------------------------------------------------------------ rendering
    def page(
        self, request: Request, name: str, session: Session | None, status_code: int = 200, **context: Any
    ) -> Response:
        context.update(
            session=session,
            csrf=session.csrf if session is not None else "",
            version=__version__,
            rules_version=self.service.rules.version,
            crm=self.service.config.crm,
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def sign_in_page(self, request: Request, status: int, message: str | None = None, target: str = "/") -> Response:
        return self.page(
            request,
            "login.html",
            None,
            status,
            login_token=self.auth.login_token(),
            message=message,
            next=target,
            password=bool(self.auth.password),
        )

    def who(self, request: Request) -> Session | bool | None:
        """The session, True for a request with the bearer token, None for neither."""
        session = self.auth.session(request)
        if session is not None:
            return session
        return True if self.auth.bearer_ok(request) else None

    def refused(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.sign_in_page(request, 401, "Sign in to see this page.", target)

    # ------------------------------------------------------------------------------ the campaign graph
    def graph_svg(self, campaign: str) -> tuple[str | None, str | None]:
        """(SVG, None) drawn by Graphviz's dot, or (None, why not)."""
        rule_set, version = self.service.rules.current()
        key = (version, campaign)
        with self._graph_lock:
            if key in self._graphs:
                return self._graphs[key], None
        dot = shutil.which("dot")
        if dot is None:
            return None, (
                "Graphviz is not installed on this server, so the graph cannot be drawn here "
                "(install the graphviz package); `smartcampaign graph RULES --campaign NAME` prints it as Mermaid."
            )
        from engine.language.graph import build_graph, to_dot

        source = to_dot(build_graph(rule_set).neighbourhood(campaign), name=campaign)
        try:
            done = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"Graphviz dot failed: {error}"
        if done.returncode != 0:
            return None, f"Graphviz dot failed: {done.stderr.strip()[:300]}"
        drawn = done.stdout[done.stdout.find("<svg") :]
        drawn = re.sub(r"<!--.*?-->", "", drawn, flags=re.S)
        with self._graph_lock:
            self._graphs = {k: v for k, v in self._graphs.items() if k[0] == version}  # older rule sets go
            self._graphs[key] = drawn
        return drawn, None


def store_errors_as_pages(console: Console) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A page whose store cannot be read answers 503 with the reason in one line (and the log says it once)."""

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def page(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return handler(request, *args, **kwargs)
            except SQLAlchemyError as error:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
                log.warning("console %s: the store cannot be read: %s", request.url.path, reason)
                session = console.auth.session(request)
                return console.page(
                    request, "missing.html", session, 503, title="The store cannot be read",
                    message=f"The store cannot be read right now ({reason}). Try again in a moment; "
                    "/readyz says whether the store is reachable.",
                )  # fmt: skip

        return page

    return decorate


def install_console(app: FastAPI, service: Any) -> None:
    """Adds the console's pages and static files to the service's app."""
    console = Console(service)
    app.state.console = console
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    app.include_router(_router(console))


def _kind(rule_set: ast.RuleSet, campaign: ast.Campaign, now: float) -> str:
    """Trigger, requested or batch (with its schedule and next run), as the Campaigns page shows it."""
    if campaign.schedule is not None:
        from engine.runtime import calendar

        zone = rule_set.zone_of(campaign)
        upcoming = calendar.next_slot(campaign.schedule, zone, now)
        when = calendar.iso_local(upcoming, zone) if upcoming is not None else "no more runs"
        return f"batch: {campaign.schedule.describe().removeprefix('schedule ')} (next {when})"
    kinds = ["requested"] if campaign.is_requestable else []
    if any(trigger.kind != "requested" for trigger in campaign.triggers):
        kinds.insert(0, "trigger")
    return " and ".join(kinds) if kinds else "none (no trigger)"


def _router(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    service = console.service
    guarded = store_errors_as_pages(console)

    # -------------------------------------------------------------------------- sign-in
    @router.get("/console/login")
    def login_form(request: Request, next: str = "/") -> Response:
        if isinstance(console.who(request), Session):
            return RedirectResponse(next if _SAFE_NEXT.match(next) else "/", status_code=303)
        return console.sign_in_page(request, 200, target=next)

    @router.post("/console/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        secret, token, target = (str(form.get(k) or "") for k in ("secret", "csrf", "next"))
        target = target if _SAFE_NEXT.match(target) else "/"
        if not console.auth.login_token_ok(token):
            return console.sign_in_page(request, 403, "The form expired: please sign in again.", target)
        if not console.auth.secret_ok(secret):
            await asyncio.sleep(WRONG_SECRET_DELAY)  # guessing costs time; other requests go on meanwhile
            return console.sign_in_page(request, 401, "Wrong token or password.", target)
        value, _ = console.auth.new_session()
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            value,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/console/logout")
    async def logout(request: Request) -> Response:
        session = console.auth.session(request)
        form = await request.form()
        if session is None:
            return console.refused(request)
        if not console.auth.csrf_ok(session, str(form.get("csrf") or "")):
            return HTMLResponse("missing or wrong CSRF token", status_code=403)
        console.auth.sign_out(session)
        response = console.sign_in_page(request, 200, "Signed out.")
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -------------------------------------------------------------------------- campaigns
    @router.get("/")
    @guarded
    def campaigns_page(request: Request, q: str = "") -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        rule_set, _ = service.rules.current()
        now = time.time()
        with console.db.connect() as conn:
            stats = queries.campaign_stats(conn, now)
        needle = q.strip().lower()
        rows = []
        for campaign in rule_set.campaigns:
            if needle and needle not in campaign.name.lower() and needle not in (campaign.description or "").lower():
                continue
            rows.append(
                {
                    "name": campaign.name,
                    "description": campaign.description,
                    "kind": _kind(rule_set, campaign, now),
                    "active": campaign.active,
                    "stats": stats.get(campaign.name, queries.CampaignStats()),
                    "file": f"{campaign.name_span.file}:{campaign.name_span.line}",
                }
            )
        return console.page(
            request,
            "campaigns.html",
            _session(who),
            q=q,
            rows=rows,
            total=len(rule_set.campaigns),
            title="Campaigns",
            nav="campaigns",
        )

    @router.get("/console/campaign")
    @guarded
    def campaign_page(request: Request, name: str = "") -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        from engine.explain import describe_qualification
        from engine.language.describe import describe_filter

        rule_set, _ = service.rules.current()
        campaign = rule_set.campaign(name)
        if campaign is None:
            return console.page(
                request, "missing.html", _session(who), 404, title="No such campaign",
                message=f'The rule set has no smart campaign named "{name}".', nav="campaigns",
            )  # fmt: skip
        now = time.time()
        start = queries.utc_midnight(now) - 29 * queries.DAY
        with console.db.connect() as conn:
            per_day = queries.runs_per_slot(conn, campaign.name, start, start + 30 * queries.DAY, 30)
            outcomes = queries.campaign_outcomes(conn, campaign.name)
            waiting = queries.waiting_people(conn, campaign=campaign.name)
            stats = queries.campaign_stats(conn, now, campaign.name).get(campaign.name, queries.CampaignStats())
        chart = svg.line_chart(
            [svg.Series("runs a day", per_day)],
            title=f"Runs a day, last 30 days ({sum(n for _, n in per_day):,.0f} runs)",
            start=start,
            end=start + 30 * queries.DAY,
            bars=True,
        )
        source = declaration_source(campaign.span)
        graph, graph_note = console.graph_svg(campaign.name)
        return console.page(
            request,
            "campaign.html",
            _session(who),
            title=campaign.name,
            nav="campaigns",
            campaign=campaign,
            where=f"{campaign.span.file}:{campaign.span.line}",
            source_html=highlight(source) if source is not None else None,
            triggers=[_trigger_words(t) for t in campaign.triggers],
            filters=[describe_filter(f) for f in campaign.filters],
            qualification=describe_qualification(campaign.qualification),
            steps=flow_outline(campaign.flow),
            chart=chart,
            outcomes=outcomes,
            waiting=waiting,
            stats=stats,
            graph=graph,
            graph_note=graph_note,
            now=now,
        )

    # -------------------------------------------------------------------------- persons
    @router.get("/console/person")
    @guarded
    def person_page(request: Request, q: str = "", campaign: str = "") -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        rule_set, _ = service.rules.current()
        person = activity = waits = explanation = runs = None
        chosen = rule_set.campaign(campaign) if campaign else None
        if q.strip():
            with console.db.connect() as conn:
                person = queries.find_person(conn, q)
                if person is not None:
                    activity = queries.person_activity(conn, person.id)
                    waits = queries.waiting_people(conn, person_id=person.id)
                    if chosen is not None:
                        runs = queries.person_runs(conn, person.id, chosen.name)
                        for run in runs:
                            run["text"] = run_trigger_words(run["trigger"])
            if person is not None and chosen is not None:
                explanation = _explain(service.config.db_url, chosen, person.id)
        return console.page(
            request,
            "person.html",
            _session(who),
            title="Person",
            nav="person",
            q=q,
            person=person,
            activity=activity,
            waits=waits,
            campaigns=[c.name for c in rule_set.campaigns],
            chosen=campaign,
            unknown_campaign=bool(campaign) and chosen is None,
            explanation=explanation,
            runs=runs,
        )

    # -------------------------------------------------------------------------- Salesforce
    @router.get("/console/salesforce")
    @guarded
    def salesforce_page(request: Request, message: str = "") -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        from engine.service import queue

        now = time.time()
        with console.db.connect() as conn:
            status = queue.status(conn, now)
            refusals = queries.refused(conn, now - REFUSED_DAYS * queries.DAY)
        meter = None
        if status.api_limit:
            meter = svg.bar_meter(status.api_used or 0, status.api_limit, title="Salesforce API calls used today")
        calls = sorted(status.api_calls_today.items(), key=lambda item: (-item[1], item[0]))
        by_endpoint = svg.horizontal_bars(calls, title="API calls today by endpoint") if calls else None
        return console.page(
            request,
            "salesforce.html",
            _session(who),
            title="Salesforce",
            nav="salesforce",
            org=_org(service),
            status=status,
            meter=meter,
            calls=calls,
            by_endpoint=by_endpoint,
            refusals=refusals,
            days=REFUSED_DAYS,
            message=message,
            outbox_age=(now - status.depth.oldest_outbox_at) if status.depth.oldest_outbox_at else None,
        )

    @router.post("/console/salesforce/retry")
    async def retry(request: Request) -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        form = await request.form()
        if isinstance(who, Session) and not console.auth.csrf_ok(who, str(form.get("csrf") or "")):
            return HTMLResponse("missing or wrong CSRF token", status_code=403)
        raw = str(form.get("id") or "")
        if not raw.isdigit():
            return HTMLResponse("expected the id of a refused action", status_code=422)

        def requeue() -> queries.Refusal | None:
            with console.db.begin() as conn:
                return queries.requeue_refused(conn, int(raw), time.time() - REFUSED_DAYS * queries.DAY)

        from starlette.concurrency import run_in_threadpool

        done = await run_in_threadpool(requeue)
        if done is None:
            message = f"Action {raw} cannot be retried (not refused in the last {REFUSED_DAYS} days, or superseded)."
        else:
            message = f"Action {raw} ({done.operation} for {done.person}) is queued again."
        return RedirectResponse(f"/console/salesforce?message={quote(message)}", status_code=303)

    # -------------------------------------------------------------------------- queues
    @router.get("/console/queue")
    @guarded
    def queue_page(request: Request) -> Response:
        who = console.who(request)
        if who is None:
            return console.refused(request)
        from engine.service import queue

        now = time.time()
        with console.db.connect() as conn:
            depth = queue.depth(conn)
            series = queries.depth_series(conn, now - 3600, now, 60)
            oldest = queries.oldest_pending_event(conn)
            seen = queries.workers_seen(conn, now - 300)
        chart = svg.line_chart(
            [svg.Series("inbox", series["inbox"]), svg.Series("outbox", series["outbox"])],
            title="Inbox and outbox depth, last hour",
            start=now - 3600,
            end=now,
            y_label="rows waiting",
        )
        threads = [t for t in service.threads if t.name.startswith("worker")]
        return console.page(
            request,
            "queue.html",
            _session(who),
            title="Queue",
            nav="queue",
            depth=depth,
            chart=chart,
            oldest=oldest,
            oldest_age=(now - oldest["received_at"]) if oldest else None,
            threads_alive=sum(1 for t in threads if t.is_alive()),
            threads=len(threads),
            configured=service.config.workers,
            seen=seen,
            now=now,
        )

    return router


def _session(who: Session | bool | None) -> Session | None:
    return who if isinstance(who, Session) else None


def _trigger_words(trigger: Any) -> str:
    from engine.language.describe import describe_trigger

    return describe_trigger(trigger)


def _explain(db_url: str, campaign: Any, person_id: int) -> Any:
    from engine.store.store import Store

    store = Store.open(db_url)
    try:
        return explain_person(store, campaign, person_id)
    finally:
        store.rollback()
        store.close()


def _org(service: Any) -> dict[str, Any]:
    """What the page says about the connected org (never a secret)."""
    config = service.config
    if config.crm != "salesforce" or config.salesforce is None:
        return {"crm": "local", "text": "the embedded local org (in the store); no Salesforce connection"}
    settings = config.salesforce
    ok, detail = service.check_crm()
    return {
        "crm": "salesforce",
        "instance_url": settings.instance_url or settings.login_url or f"{settings.domain}.salesforce.com",
        "username": settings.username,
        "api_version": settings.api_version,
        "reachable": ok,
        "detail": detail,
    }
