"""The service commands: `smartcampaign serve`, `worker`, `status` and `db upgrade`.

uvicorn, FastAPI, SQLAlchemy and Alembic are imported when a command runs, not when this module is.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from engine.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, F, console, err, format_option, guarded, setting_name

__all__ = ["db_command", "serve_command", "status_command", "worker_command"]

DB_HELP = "Store URL: sqlite:///FILE or postgresql://USER@HOST/DB (env SMARTCAMPAIGN_DB_URL)."


def _salesforce(crm: str, env_file: str | None) -> Any:
    if crm != "salesforce":
        return None
    from pydantic import ValidationError

    from engine.model.settings import load_salesforce_settings

    try:
        settings = load_salesforce_settings(env_file)
    except ValidationError as error:
        first = error.errors()[0]
        name = setting_name(first, "SMARTCAMPAIGN_SFDC_")
        err(f"smartcampaign: {name}: {str(first['msg']).removeprefix('Value error, ')}")
        sys.exit(EXIT_USAGE)
    if settings.auth_method == "none":
        err(
            "smartcampaign: --crm salesforce needs credentials: SMARTCAMPAIGN_SFDC_USERNAME and _PASSWORD, "
            "or _INSTANCE_URL and _SESSION_ID, or _CLIENT_ID, _CLIENT_SECRET and _LOGIN_URL (or --env-file)"
        )
        sys.exit(EXIT_USAGE)
    return settings


def _engine_settings(env_file: str | None) -> Any:
    from engine.model.settings import load_engine_settings

    return load_engine_settings(env_file)


def _prepare(url: str) -> None:
    from engine.service.schema import prepare_database
    from engine.store.store import StoreError

    try:
        prepare_database(url)
    except StoreError as error:
        err(f"smartcampaign: {error}")
        sys.exit(EXIT_USAGE)
    except Exception as error:
        err(f"smartcampaign: cannot prepare the database: {type(error).__name__}: {str(error).splitlines()[0]}")
        sys.exit(EXIT_USAGE)


_common = [
    click.option("--db", "db_url", envvar="SMARTCAMPAIGN_DB_URL", default=None, help=DB_HELP),
    click.option("--crm", type=click.Choice(["local", "salesforce"]), default="local", show_default=True,
                 help="local: the embedded org in the store; salesforce: SMARTCAMPAIGN_SFDC_* settings."),
    click.option("--env-file", type=click.Path(exists=True, dir_okay=False), help="Settings file (.env format)."),
    click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 5000),
                 help="Events a worker takes per transaction."),
    click.option("--outbox-batch", default=1000, show_default=True, type=click.IntRange(1, 5000),
                 help="CRM operations sent per flush (--crm salesforce): collections of 200, several in flight."),
    click.option("--watch", is_flag=True, help="Reload the rules when a rule file changes."),
    click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True),
    click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
                 show_default=True),
]  # fmt: skip


def common_options(func: F) -> F:
    for option in reversed(_common):
        func = option(func)
    return func


@click.command("serve")
@click.option(
    "--rules",
    "rules",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A .campaign file or a folder of them (repeatable).",
)
@common_options
@click.option(
    "--world",
    type=click.Path(exists=True, dir_okay=False),
    help="Seed the embedded local org from a REPLAY.md world file when the store is empty.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token", envvar="SMARTCAMPAIGN_API_TOKEN", help="Bearer token the API requires (env SMARTCAMPAIGN_API_TOKEN)."
)
@click.option(
    "--hmac-secret",
    envvar="SMARTCAMPAIGN_API_HMAC_SECRET",
    help="Also require X-Smartcampaign-Signature: sha256=HMAC(body) (env SMARTCAMPAIGN_API_HMAC_SECRET).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Workers in this process; 0: API only (run `smartcampaign worker` processes).",
)
@click.option(
    "--poll-interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between Salesforce polls (--crm salesforce).",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@guarded
def serve_command(
    rules: tuple[str, ...],
    db_url: str | None,
    crm: str,
    env_file: str | None,
    batch_size: int,
    outbox_batch: int,
    watch: bool,
    log_format: str,
    log_level: str,
    world: str | None,
    host: str,
    port: int,
    token: str | None,
    hmac_secret: str | None,
    workers: int,
    poll_interval: float,
    access_log: bool,
) -> None:
    """Run the engine as a service: the HTTP API, a worker and (with Salesforce) the poller.

    POST /events takes events (REPLAY.md shape) into a durable inbox; workers run them through the rules.
    GET /healthz, /readyz, /metrics (Prometheus), /campaigns, /persons/{email}/activity; POST /rules/reload;
    the OpenAPI docs are at /docs, the operator console at /. Everything but /healthz needs the token (or a
    console session). SIGTERM finishes the batch in flight and exits 0.

    \b
    Examples:
      smartcampaign serve --rules rules/ --world world.json --token s3cret
      smartcampaign serve --rules rules/ --db postgresql://postgres@127.0.0.1/smartcampaign --workers 0
      smartcampaign serve --rules rules/ --crm salesforce --env-file prod.env --log-format json --watch
    """
    import uvicorn

    from engine.service.app import Service, ServiceConfig, ServiceError, create_app, normalize_url
    from engine.service.logs import setup_logging
    from engine.store.store import DEFAULT_URL

    setup_logging(log_format, log_level)
    url = normalize_url(db_url or DEFAULT_URL)
    config = ServiceConfig(
        rules=list(rules),
        db_url=url,
        crm=crm,
        world=world,
        token=token,
        hmac_secret=hmac_secret,
        workers=workers,
        watch=watch,
        poll_interval=poll_interval,
        batch_size=batch_size,
        outbox_batch=outbox_batch,
        salesforce=_salesforce(crm, env_file),
        engine=_engine_settings(env_file),
    )
    service = Service(config)
    try:
        service.start()
    except ServiceError as error:
        err(f"smartcampaign serve: {error}")
        service.shutdown()
        sys.exit(EXIT_FAIL if "rule set" in str(error) else EXIT_USAGE)
    app = create_app(service)
    server = _graceful_server(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=access_log, lifespan="on",
            timeout_graceful_shutdown=30, server_header=False,
        )
    )  # fmt: skip
    server.run()
    if not service.stop.is_set():  # uvicorn did not get as far as the lifespan (the port was taken...)
        service.shutdown()
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_OK)


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after a graceful shutdown (exit status -15): here a stop on request is exit 0."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return GracefulServer


def _graceful_server(config: Any) -> Any:
    return _graceful_server_class()(config)


@click.command("worker")
@click.option(
    "--rules",
    "rules",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A .campaign file or a folder of them (the same as the service's).",
)
@common_options
@click.option("--name", help="This worker's name in the inbox (default host:pid:random).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve this worker's Prometheus metrics here.")
@click.option(
    "--idle-sleep",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.001, 10),
    help="Seconds between looks at an empty inbox.",
)
@guarded
def worker_command(
    rules: tuple[str, ...],
    db_url: str | None,
    crm: str,
    env_file: str | None,
    batch_size: int,
    outbox_batch: int,
    watch: bool,
    log_format: str,
    log_level: str,
    name: str | None,
    metrics_port: int | None,
    idle_sleep: float,
) -> None:
    """Process the inbox: any number of workers share one PostgreSQL store.

    Each person's events are run in order by one worker at a time (advisory locks per person); a batch is one
    transaction, so a worker killed at any point loses and repeats nothing. SIGTERM finishes the batch in
    flight and exits 0.

    \b
    Examples:
      smartcampaign worker --rules rules/ --db postgresql://postgres@127.0.0.1/smartcampaign
      smartcampaign worker --rules rules/ --db postgresql://... --crm salesforce --env-file prod.env
    """
    from engine.service.app import normalize_url
    from engine.service.flusher import FlushOptions
    from engine.service.logs import setup_logging
    from engine.service.rules import RuleBook
    from engine.service.worker import Worker, WorkerOptions

    setup_logging(log_format, log_level)
    if not db_url:
        err("smartcampaign worker: --db is required (workers share one PostgreSQL store)")
        sys.exit(EXIT_USAGE)
    url = normalize_url(db_url)
    book = RuleBook(list(rules))
    loaded = book.load()
    if not loaded.ok:
        err("smartcampaign worker: the rule set has errors:\n" + loaded.rendered)
        sys.exit(EXIT_FAIL)
    salesforce = _salesforce(crm, env_file)
    _prepare(url)
    worker = Worker(
        url,
        book,
        crm=crm,
        salesforce=salesforce,
        options=WorkerOptions(
            batch_size=batch_size,
            idle_sleep=idle_sleep,
            flush=FlushOptions(batch=outbox_batch),
            engine=_engine_settings(env_file),
        ),
        name=name,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=worker.metrics.registry)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if watch:
        threading.Thread(target=book.watch, args=(stop,), name="rules-watch", daemon=True).start()
    try:
        worker.run(stop)
    finally:
        worker.close()
    sys.exit(EXIT_OK)


@click.group("db")
def db_command() -> None:
    """The database: schema migrations (Alembic)."""


@db_command.command("upgrade")
@click.option("--db", "db_url", envvar="SMARTCAMPAIGN_DB_URL", default=None, help=DB_HELP)
@guarded
def db_upgrade(db_url: str | None) -> None:
    """Create or upgrade the store and the service tables to this release's schema.

    \b
    Examples:
      smartcampaign db upgrade --db postgresql://postgres@127.0.0.1/smartcampaign
    """
    from engine.service.app import normalize_url
    from engine.service.schema import prepare_database
    from engine.store.store import DEFAULT_URL, StoreError

    url = normalize_url(db_url or DEFAULT_URL)
    try:
        before, after = prepare_database(url)
    except StoreError as error:
        err(f"smartcampaign db upgrade: {error}")
        sys.exit(EXIT_USAGE)
    except Exception as error:
        err(f"smartcampaign db upgrade: {type(error).__name__}: {str(error).splitlines()[0]}")
        sys.exit(EXIT_USAGE)
    if before == after:
        click.echo(f"already at revision {after}")
    else:
        click.echo(f"upgraded from {before or 'an empty database'} to revision {after}")


@click.command("status")
@click.option("--db", "db_url", envvar="SMARTCAMPAIGN_DB_URL", default=None, help=DB_HELP)
@format_option()
@guarded
def status_command(db_url: str | None, output_format: str) -> None:
    """What the service is doing, read from its store: inbox and outbox depth and oldest age, Salesforce API
    calls today by endpoint, API calls left (last Sforce-Limit-Info), records Salesforce refused (5 days).

    \b
    Examples:
      smartcampaign status --db postgresql://postgres@127.0.0.1/smartcampaign
      smartcampaign status --db sqlite:///smartcampaign.db --format json
    """
    from engine.service import queue
    from engine.service.app import normalize_url
    from engine.store.store import DEFAULT_URL, make_engine

    url = normalize_url(db_url or DEFAULT_URL)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            report = queue.status(conn).to_json()
    except Exception as error:
        where = engine.url.render_as_string(hide_password=True)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        err(
            f"smartcampaign status: cannot read the service tables at {where} ({reason}); check --db, or run "
            "`smartcampaign db upgrade`"
        )
        sys.exit(EXIT_USAGE)
    finally:
        engine.dispose()
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    from rich.table import Table

    out = console(wide=False)
    queues = Table(title="Queues", show_edge=False)
    for column in ("queue", "depth", "oldest (s)"):
        queues.add_column(column, justify="right" if column != "queue" else "left")
    queues.add_row("inbox", str(report["inbox"]["depth"]), f"{report['inbox']['oldest_age_seconds']:.1f}")
    queues.add_row("outbox", str(report["outbox"]["depth"]), f"{report['outbox']['oldest_age_seconds']:.1f}")
    queues.add_row("dead letters", str(report["inbox"]["dead_letters"]), "")
    out.print(queues)
    sf = report["salesforce"]
    calls = Table(title="Salesforce API calls today (UTC)", show_edge=False)
    calls.add_column("endpoint")
    calls.add_column("calls", justify="right")
    for endpoint, count in sf["api_calls_today"].items():
        calls.add_row(endpoint, str(count))
    calls.add_row("total", str(sf["api_calls_today_total"]))
    out.print(calls)
    if sf["api_limit"]:
        out.print(f"API calls left: {sf['api_remaining']:,} of {sf['api_limit']:,} (Sforce-Limit-Info)")
    else:
        out.print("API calls left: not read yet (no Salesforce call made)")
    refused = report["refused"]
    line = ", ".join(f"{code} {count}" for code, count in refused["by_code"].items())
    out.print(f"Records refused by Salesforce, last 5 days: {refused['last_5_days']}" + (f" ({line})" if line else ""))
