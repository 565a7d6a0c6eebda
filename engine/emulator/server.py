"""Serving the emulator over HTTPS on loopback with uvicorn, and the `main()` the CLI calls."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from engine.emulator.app import API_VERSION, Emulator, EmulatorConfig
from engine.emulator.certs import CertPaths, ensure_certificates
from engine.emulator.faults import FaultConfig
from engine.emulator.settings import DEFAULT_PORT, ERROR_STATUSES, LOOPBACK_HOSTS, default_cert_dir


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening TCP socket on a loopback address (the emulator never listens anywhere else)."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the emulator only listens on loopback ({', '.join(LOOPBACK_HOSTS)}), not {host!r}")
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
    # every answer's body waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """Stops at once: idle keep-alive TLS connections are aborted instead of waiting for each client's
    close_notify (which a pooled `requests` connection never sends until it is used again)."""

    on_ready: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets=sockets)


class EmulatorServer:
    """An Emulator bound to a loopback port, with its certificates, ready to `serve()` (blocking) in any thread.

    The socket is bound in the constructor, so `port` is known (and taken) before serving starts."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        cert_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        log_level: str = "warning",
        access_log: bool = False,
        configure_logging: bool = True,
    ) -> None:
        self.certs: CertPaths = ensure_certificates(cert_dir or default_cert_dir())
        self.host = host
        self.socket = bind_loopback(host, port)
        try:
            self.emulator = Emulator(config)
        except BaseException:
            self.socket.close()
            raise
        self.port = int(self.socket.getsockname()[1])
        options: dict[str, object] = {}
        if not configure_logging:
            options["log_config"] = None
        self.uvicorn = _Uvicorn(
            uvicorn.Config(
                self.emulator.app,
                ssl_certfile=str(self.certs.cert_file),
                ssl_keyfile=str(self.certs.key_file),
                log_level=log_level,
                access_log=access_log,
                lifespan="off",
                timeout_graceful_shutdown=1,
                timeout_keep_alive=30,
                **options,  # type: ignore[arg-type]
            )
        )

    @property
    def instance_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def login_domain(self) -> str:
        """What simple-salesforce takes as `domain=` to log in here (it adds `.salesforce.com`, which the
        emulator ignores in the path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/login"

    @property
    def token(self) -> str:
        return self.emulator.token

    def serve(self) -> None:
        """Serves until `stop()` (or Ctrl-C when in the main thread); then closes the state."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.emulator.close()

    def stop(self) -> None:
        self.uvicorn.should_exit = True

    def banner(self) -> str:
        data = self.emulator.config.data
        faults = self.emulator.faults.config
        lines = [
            f"Salesforce emulator listening on {self.instance_url}",
            f"  instance URL   {self.instance_url}",
            f"  access token   {self.token}",
            f"  CA file        {self.certs.ca_file}   (trust this certificate)",
            f"  login domain   {self.login_domain}   (simple-salesforce domain= for username/password or OAuth logins)",
            f"  data           {data if data else 'in memory (gone when it stops; use --data FILE to keep it)'}",
            f"  daily quota    {self.emulator.quota_max} API requests ({self.emulator.quota_used} used today)",
        ]
        if faults != FaultConfig():
            lines.append(
                f"  faults         error rate {faults.error_rate} {list(faults.error_statuses)}, "
                f"latency {faults.latency_ms:g} ms, lock rate {faults.lock_rate}"
            )
        lines += [
            "",
            "Connect from Python:",
            "  import requests, simple_salesforce",
            "  session = requests.Session()",
            f"  session.verify = {str(self.certs.ca_file)!r}",
            "  session.trust_env = False  # else a set REQUESTS_CA_BUNDLE overrides session.verify",
            f"  sf = simple_salesforce.Salesforce(instance_url={self.instance_url!r}, session_id=TOKEN, "
            f"session=session, version={API_VERSION!r})",
            "Or with curl:",
            f"  curl --cacert {self.certs.ca_file} -H 'Authorization: Bearer TOKEN' "
            f"{self.instance_url}/services/data/v{API_VERSION}/limits",
            "Admin (same token): POST /_emulator/faults, POST /_emulator/reset, GET /_emulator/stats, "
            "POST /_emulator/quota, POST /_emulator/clock",
            "Ctrl-C stops it.",
        ]
        return "\n".join(lines)


def main(
    port: int = DEFAULT_PORT,
    data: str | Path | None = None,
    token: str | None = None,
    cert_dir: str | Path | None = None,
    quota: int | None = None,
    *,
    error_rate: float = 0.0,
    error_statuses: Sequence[int] = ERROR_STATUSES,
    latency_ms: float = 0.0,
    lock_rate: float = 0.0,
    fault_seed: int | None = None,
    host: str = "127.0.0.1",
    verbose: bool = False,
    echo: Callable[[str], None] | None = None,
) -> int:
    """Runs the emulator in the foreground until interrupted; prints how to connect first. Returns 0."""
    faults = FaultConfig.from_json(
        {
            "error_rate": error_rate,
            "error_statuses": list(error_statuses),
            "latency_ms": latency_ms,
            "lock_rate": lock_rate,
            "seed": fault_seed,
        }
    )
    config = EmulatorConfig(data=Path(data) if data else None, token=token, quota=quota, faults=faults)
    server = EmulatorServer(
        config, cert_dir=cert_dir, host=host, port=port, log_level="info" if verbose else "warning", access_log=verbose
    )
    say = echo or (lambda text: print(text, flush=True))
    server.uvicorn.on_ready = lambda: say(server.banner())  # once it accepts connections and handles Ctrl-C
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled: the normal way out
        server.serve()
    say("Salesforce emulator stopped.")
    if echo is None:
        sys.stdout.flush()
    return 0
