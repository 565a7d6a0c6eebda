"""Defaults shared by the command line and the server, importable without the web stack."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_path

DEFAULT_PORT = 8443
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ERROR_STATUSES = (500, 503)  # injected errors by default
FAULT_STATUSES = (429, 500, 503)  # what an injected error may be: 429 is "too many requests, slow down"
DEFAULT_QUOTA = 100_000  # daily API requests of a new org


def default_cert_dir() -> Path:
    """Where the certificates live when --cert-dir is not given."""
    return user_data_path("smartcampaign") / "emulator"
