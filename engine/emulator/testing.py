"""`RunningEmulator`: a Salesforce emulator in a background thread, for tests.

    from engine.emulator.testing import RunningEmulator

    def test_adapter(tmp_path):
        with RunningEmulator(tmp_path) as org:
            sf = org.client()                                  # simple_salesforce.Salesforce over HTTPS
            campaign = sf.Campaign.create({"Name": "Webinar"})["id"]
            org.set_faults(error_rate=1.0, error_statuses=[503], error_limit=2)   # the next 2 calls fail
            org.advance_clock(120)                             # for sobjects/X/updated and /deleted windows
            assert org.stats()["records"]["Campaign"] == 1

A pytest fixture that shares one emulator across a module and empties it between tests:

    @pytest.fixture(scope="module")
    def emulator(tmp_path_factory):
        with RunningEmulator(tmp_path_factory.mktemp("sf")) as org:
            yield org

    @pytest.fixture
    def org(emulator):
        emulator.reset()          # records, sessions, faults, quota use, clock: as new
        return emulator

Everything goes over real HTTPS: `client()` and `session()` trust the emulator's certificate and set
`trust_env = False` (a set REQUESTS_CA_BUNDLE would otherwise make requests ignore `Session.verify`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from engine.emulator.app import API_VERSION, EmulatorConfig
from engine.emulator.faults import FaultConfig
from engine.emulator.server import EmulatorServer

DEFAULT_TOKEN = "emulator-test-token"
START_TIMEOUT_S = 15.0


class EmulatorError(RuntimeError):
    """An admin call the emulator refused, or an emulator that would not start."""


class RunningEmulator:
    """Starts on `start()` or `with`, stops on `stop()` or leaving the `with`.

    - `tmp_dir`: holds `emulator.sqlite3` (unless `data` is given) and the certificates (`certs/cert.pem`).
    - `token`: the access token (default ``emulator-test-token``); `quota`: daily API maximum (default 100,000).
    - `port`: 0 picks a free port; `restart()` keeps the port, the data file and the token.
    - `faults`: a `FaultConfig` (or its JSON form) in force from the start.
    """

    def __init__(
        self,
        tmp_dir: str | Path,
        *,
        token: str = DEFAULT_TOKEN,
        quota: int | None = None,
        data: str | Path | None = None,
        port: int = 0,
        faults: FaultConfig | dict[str, Any] | None = None,
    ) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.data = Path(data) if data else self.tmp_dir / "emulator.sqlite3"
        self.cert_dir = self.tmp_dir / "certs"
        self.token = token
        self.quota = quota
        self.port = port
        self.faults = faults if isinstance(faults, FaultConfig) else FaultConfig.from_json(faults or {})
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._admin_session: requests.Session | None = None

    # -- life cycle

    def start(self) -> RunningEmulator:
        if self._server is not None:
            raise EmulatorError("the emulator is already running")
        config = EmulatorConfig(data=self.data, token=self.token, quota=self.quota, faults=self.faults)
        server = EmulatorServer(config, cert_dir=self.cert_dir, port=self.port, configure_logging=False)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.serve()
            except BaseException as error:  # reported by start(), which waits for the server
                failure.append(error)

        thread = threading.Thread(target=run, name=f"salesforce-emulator-{server.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.uvicorn.started:
            if failure or not thread.is_alive():
                raise EmulatorError(f"the emulator did not start: {failure[0] if failure else 'it stopped'}")
            if time.monotonic() > deadline:
                server.stop()
                raise EmulatorError(f"the emulator did not start within {START_TIMEOUT_S:g} s")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self.port = server.port
        return self

    def stop(self) -> None:
        """Stops serving and closes the state (safe to call twice)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if self._admin_session is not None:
            self._admin_session.close()
            self._admin_session = None
        if server is None or thread is None:
            return
        server.stop()
        thread.join(timeout=10)
        if thread.is_alive():
            raise EmulatorError("the emulator did not stop within 10 s")

    def restart(self) -> RunningEmulator:
        """Stop, then start again on the same port with the same data file (state survives)."""
        self.stop()
        return self.start()

    def __enter__(self) -> RunningEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _running_server(self) -> EmulatorServer:
        if self._server is None:
            raise EmulatorError("the emulator is not running: use start() or `with`")
        return self._server

    # -- how to connect

    @property
    def instance_url(self) -> str:
        """``https://127.0.0.1:PORT``"""
        return self._running_server().instance_url

    @property
    def login_domain(self) -> str:
        """The `domain=` for simple-salesforce's username/password, OAuth and JWT logins: ``127.0.0.1:PORT/login``."""
        return self._running_server().login_domain

    @property
    def ca_file(self) -> str:
        """The certificate to trust (``certs/cert.pem``)."""
        return str(self.cert_dir / "cert.pem")

    @property
    def api_version(self) -> str:
        return API_VERSION

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator and ignores REQUESTS_CA_BUNDLE and proxies from the
        environment."""
        session = requests.Session()
        session.verify = self.ca_file
        session.trust_env = False
        return session

    def client(self, *, token: str | None = None, version: str = API_VERSION, **kwargs: Any) -> Salesforce:
        """A `simple_salesforce.Salesforce` on the emulator with the token (or another session id)."""
        return Salesforce(
            instance_url=self.instance_url,
            session_id=token or self.token,
            session=kwargs.pop("session", None) or self.session(),
            version=version,
            **kwargs,
        )

    def password_client(
        self, username: str = "admin@emulator.local", password: str = "password", security_token: str = "token"
    ) -> Salesforce:
        """A `simple_salesforce.Salesforce` that logs in over SOAP (and logs in again when its session expires)."""
        return Salesforce(
            username=username,
            password=password,
            security_token=security_token,
            domain=self.login_domain,
            session=self.session(),
            version=API_VERSION,
        )

    # -- admin

    def admin(self, path: str, json: Any = None, *, method: str | None = None) -> Any:
        """Calls ``/_emulator/<path>`` with the token: POST when `json` is given, else GET. Returns the JSON
        answer; raises EmulatorError when refused."""
        if self._admin_session is None:
            self._admin_session = self.session()
        verb = method or ("POST" if json is not None else "GET")
        response = self._admin_session.request(
            verb,
            f"{self.instance_url}/_emulator/{path.strip('/')}",
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if response.status_code >= 300:
            raise EmulatorError(f"{verb} /_emulator/{path}: {response.status_code} {response.text}")
        return response.json()

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replaces the fault configuration: error_rate, error_statuses, latency_ms, lock_rate, expire_sessions,
        seed, endpoints, error_limit, lock_limit (missing ones: off)."""
        result: dict[str, Any] = self.admin("faults", settings)
        return result

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults()

    def reset(self) -> dict[str, Any]:
        """Empties the org (but its first user), sessions, faults (back to the start-up ones), quota use, clock."""
        result: dict[str, Any] = self.admin("reset", {})
        return result

    def stats(self) -> dict[str, Any]:
        """calls (by endpoint), total_calls, records and deleted_records (by object), api_usage, faults,
        open_cursors, clock."""
        result: dict[str, Any] = self.admin("stats")
        return result

    def set_quota(self, maximum: int | None = None, used: int | None = None) -> dict[str, Any]:
        body = {key: value for key, value in (("max", maximum), ("used", used)) if value is not None}
        result: dict[str, Any] = self.admin("quota", body)
        return result

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Moves the emulator's time forward (record timestamps, getUpdated/getDeleted windows, quota day)."""
        result: dict[str, Any] = self.admin("clock", {"advance_s": seconds})
        return result
