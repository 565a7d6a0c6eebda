"""Fault injection: error answers, latency, row-lock failures and session expiry, as Salesforce shows them.

The configuration is replaced whole by every `POST /_emulator/faults` (missing keys take their defaults):

    {"error_rate": 0.2,            # share of data-API calls answered 500/503 before they do anything
     "error_statuses": [500, 503], # chosen from at random (429, 500, 503)
     "latency_ms": 0,              # added to every data-API call that `endpoints` names
     "lock_rate": 0.0,             # share of record writes failing with UNABLE_TO_LOCK_ROW (per record in collections)
     "expire_sessions": false,     # true: every session issued so far, the --token one too, is expired now
     "seed": 1,                    # makes the draws repeatable
     "endpoints": [],              # only calls whose endpoint key contains one of these (empty: all)
     "error_limit": null,          # stop injecting errors after this many
     "lock_limit": null}           # stop injecting lock failures after this many
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.emulator import schema as s
from engine.emulator.org import SfError
from engine.emulator.settings import ERROR_STATUSES, FAULT_STATUSES

_KEYS = {
    "error_rate",
    "error_statuses",
    "latency_ms",
    "lock_rate",
    "expire_sessions",
    "seed",
    "endpoints",
    "error_limit",
    "lock_limit",
}


@dataclass(frozen=True)
class FaultConfig:
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = ERROR_STATUSES
    latency_ms: float = 0.0
    lock_rate: float = 0.0
    expire_sessions: bool = False
    seed: int | None = None
    endpoints: tuple[str, ...] = ()
    error_limit: int | None = None
    lock_limit: int | None = None

    @classmethod
    def from_json(cls, payload: Any) -> FaultConfig:
        """Validates an admin payload; raises ValueError with a readable message."""
        if not isinstance(payload, dict):
            raise ValueError("the faults body must be a JSON object")
        unknown = sorted(set(payload) - _KEYS)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")

        def rate(name: str) -> float:
            value = payload.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1")
            return float(value)

        def optional_count(name: str) -> int | None:
            value = payload.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer or null")
            return value

        statuses = payload.get("error_statuses", list(ERROR_STATUSES))
        if (
            not isinstance(statuses, list)
            or not statuses
            or any(isinstance(item, bool) or item not in FAULT_STATUSES for item in statuses)
        ):
            raise ValueError("error_statuses must be a non-empty list of 429, 500 and/or 503")
        latency = payload.get("latency_ms", 0)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency <= 60_000:
            raise ValueError("latency_ms must be a number from 0 to 60000")
        seed = payload.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer or null")
        endpoints = payload.get("endpoints", [])
        if not isinstance(endpoints, list) or not all(isinstance(item, str) for item in endpoints):
            raise ValueError("endpoints must be a list of strings")
        expire = payload.get("expire_sessions", False)
        if not isinstance(expire, bool):
            raise ValueError("expire_sessions must be true or false")
        return cls(
            error_rate=rate("error_rate"),
            error_statuses=tuple(int(item) for item in statuses),
            latency_ms=float(latency),
            lock_rate=rate("lock_rate"),
            expire_sessions=expire,
            seed=seed,
            endpoints=tuple(endpoints),
            error_limit=optional_count("error_limit"),
            lock_limit=optional_count("lock_limit"),
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_statuses"] = list(self.error_statuses)
        out["endpoints"] = list(self.endpoints)
        return out


@dataclass
class FaultCounters:
    errors: int = 0
    locks: int = 0
    sessions_expired: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class Faults:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.counters = FaultCounters()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._errors_left = config.error_limit
            self._locks_left = config.lock_limit

    def reset_counters(self) -> None:
        with self._lock:
            self.counters = FaultCounters()

    def _applies(self, endpoint: str) -> bool:
        return not self.config.endpoints or any(part in endpoint for part in self.config.endpoints)

    def latency_for(self, endpoint: str) -> float:
        """Seconds added to this call: `latency_ms`, for the calls `endpoints` names (all when it is empty)."""
        config = self.config
        return config.latency_ms / 1000.0 if config.latency_ms > 0 and self._applies(endpoint) else 0.0

    def draw_error(self, endpoint: str) -> SfError | None:
        """A 429, 500 or 503 for this call, or None."""
        with self._lock:
            config = self.config
            if config.error_rate <= 0 or not self._applies(endpoint) or self._errors_left == 0:
                return None
            if self._rng.random() >= config.error_rate:
                return None
            status = self._rng.choice(config.error_statuses)
            if self._errors_left is not None:
                self._errors_left -= 1
            self.counters.errors += 1
            self.counters.by_status[status] = self.counters.by_status.get(status, 0) + 1
        if status == 429:
            return SfError(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests at once: slow down and try again.")
        if status == 503:
            return SfError(503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable. Please try again later.")
        error_id = self._rng.randrange(10**9, 10**10)
        return SfError(
            500,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: "
            f"{error_id}-{error_id % 100000} ({-error_id % 2**31})",
        )

    def draw_lock(self, endpoint: str, record_id: str | None) -> SfError | None:
        """An UNABLE_TO_LOCK_ROW failure for one record write, or None."""
        with self._lock:
            config = self.config
            if config.lock_rate <= 0 or not self._applies(endpoint) or self._locks_left == 0:
                return None
            if self._rng.random() >= config.lock_rate:
                return None
            if self._locks_left is not None:
                self._locks_left -= 1
            self.counters.locks += 1
        message = "unable to obtain exclusive access to this record"
        if record_id:
            message += f" or 1 records: {record_id}"
        return SfError(400, "UNABLE_TO_LOCK_ROW", message, [])

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config": self.config.to_json(),
                "injected": {
                    "errors": self.counters.errors,
                    "errors_by_status": {str(key): value for key, value in sorted(self.counters.by_status.items())},
                    "locks": self.counters.locks,
                    "sessions_expired": self.counters.sessions_expired,
                },
            }


def lock_target(sobject: s.SObjectDef, values: Mapping[str, Any], record_id: str | None) -> str | None:
    """The row a write locks: the record, or for a new child record its parent (the classic contention)."""
    if record_id:
        return record_id
    if sobject.parent_field:
        parent = values.get(sobject.parent_field)
        return str(parent) if parent else None
    return None
