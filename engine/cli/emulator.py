"""`smartcampaign emulator`: a local Salesforce in the foreground (engine/emulator/README.md).

The emulator's web stack is imported when the command runs, not when this module is: listing the command in
`smartcampaign --help` costs its settings module only. The command line is the one importer of the emulator.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.common import CONTEXT_SETTINGS
from engine.emulator.settings import DEFAULT_PORT, FAULT_STATUSES, LOOPBACK_HOSTS, default_cert_dir

__all__ = ["emulator_command"]


def _statuses(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        statuses = tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise click.BadParameter("a comma-separated list of 429, 500 and/or 503") from None
    if not statuses or any(item not in FAULT_STATUSES for item in statuses):
        raise click.BadParameter("a comma-separated list of 429, 500 and/or 503")
    return statuses


@click.command("emulator", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="HTTPS port (0: any free one).",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file for the org's state, kept across restarts (default: in memory).",
)
@click.option(
    "--token",
    envvar="SMARTCAMPAIGN_EMULATOR_TOKEN",
    help="The access token it accepts (default: one it makes and prints, kept in --data).",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where it writes cert.pem, the certificate clients trust (default: {default_cert_dir()}).",
)
@click.option("--quota", type=click.IntRange(0), help="Daily API request maximum (default: 100000, or the stored one).")
@click.option(
    "--host", type=click.Choice(LOOPBACK_HOSTS), default="127.0.0.1", show_default=True, help="Loopback address."
)
@click.option(
    "--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of calls answered 500/503."
)
@click.option(
    "--error-statuses", default="500,503", show_default=True, callback=_statuses, help="Statuses to answer with."
)
@click.option(
    "--latency-ms", type=click.FloatRange(0, 60_000), default=0.0, show_default=True, help="Added to every call."
)
@click.option(
    "--lock-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of record writes failing UNABLE_TO_LOCK_ROW.",
)
@click.option("--fault-seed", type=int, help="Seed for repeatable fault draws.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
def emulator_command(
    port: int,
    data: Path | None,
    token: str | None,
    cert_dir: Path | None,
    quota: int | None,
    host: str,
    error_rate: float,
    error_statuses: tuple[int, ...],
    latency_ms: float,
    lock_rate: float,
    fault_seed: int | None,
    verbose: bool,
) -> None:
    """A local Salesforce for tests and rehearsals: REST, OAuth and SOAP login over HTTPS on loopback.

    \b
    It prints the instance URL, the access token and the CA file to trust, then serves until Ctrl-C.
    Faults can also be changed while it runs: POST /_emulator/faults (see engine/emulator/README.md).

    \b
    Examples:
      smartcampaign emulator --data org.sqlite3 --token dev-token --cert-dir .emulator
      smartcampaign emulator --port 0 --error-rate 0.1 --latency-ms 200 --lock-rate 0.05
    """
    # the web stack is imported here, not when this module is, so registering the command costs nothing
    from engine.emulator.server import main

    try:
        main(
            port,
            data,
            token,
            cert_dir,
            quota,
            error_rate=error_rate,
            error_statuses=error_statuses,
            latency_ms=latency_ms,
            lock_rate=lock_rate,
            fault_seed=fault_seed,
            host=host,
            verbose=verbose,
            echo=click.echo,
        )
    except OSError as error:
        raise click.ClickException(f"cannot start the emulator on {host}:{port}: {error}") from error
