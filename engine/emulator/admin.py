"""The emulator's own admin endpoints under `/_emulator/` (the `--token` token as bearer): fault settings, reset,
stats, quota and clock. Not Salesforce's; not counted against the quota."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.emulator import schema as s
from engine.emulator.faults import FaultConfig
from engine.emulator.org import not_found
from engine.emulator.settings import DEFAULT_QUOTA
from engine.emulator.timeutil import format_datetime
from engine.emulator.wire import Reply, error_reply

if TYPE_CHECKING:
    from engine.emulator.app import Emulator


def handle(em: Emulator, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "oauth") or not secrets.compare_digest(
        token.strip().encode(), em.token.encode()
    ):
        return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    name = path[len("/_emulator/") :].strip("/")
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError as error:
        return _admin_error(f"the body is not JSON: {error}")
    handlers: dict[tuple[str, str], Callable[[Any], Reply]] = {
        ("POST", "faults"): lambda payload: _faults(em, payload),
        ("GET", "faults"): lambda _payload: Reply(200, em.faults.to_json()),
        ("POST", "reset"): lambda payload: _reset(em, payload),
        ("GET", "stats"): lambda _payload: Reply(200, stats(em)),
        ("POST", "quota"): lambda payload: _quota(em, payload),
        ("GET", "quota"): lambda _payload: Reply(200, em.quota_json()),
        ("POST", "clock"): lambda payload: _clock(em, payload),
        ("GET", "clock"): lambda _payload: Reply(200, clock_json(em)),
    }
    handler = handlers.get((method, name))
    if handler is None:
        return error_reply(not_found())
    with em.store.lock:
        try:
            return handler(payload)
        except ValueError as error:
            return _admin_error(str(error))


def _admin_error(message: str) -> Reply:
    return Reply(400, [{"message": message, "errorCode": "INVALID_ADMIN_REQUEST"}])


def _faults(em: Emulator, payload: Any) -> Reply:
    config = FaultConfig.from_json(payload)
    em.faults.configure(config)
    if config.expire_sessions:
        expired = em.store.expire_sessions() + (0 if em.master_expired else 1)
        em.master_expired = True
        em.faults.counters.sessions_expired += expired
    else:
        em.master_expired = False
    return Reply(200, em.faults.to_json())


def _reset(em: Emulator, _payload: Any) -> Reply:
    with em.store.transaction():
        em.org.reset()
        em.store.clear_sessions()
    em.cursors.clear()
    em.calls.clear()
    em.faults.configure(em.config.faults)
    em.faults.reset_counters()
    em.master_expired = False
    em.quota_max = em.config.quota if em.config.quota is not None else DEFAULT_QUOTA
    em.quota_used = 0
    em.save_quota()
    em.clock.set_offset(0.0)
    em.store.set_meta("clock_offset", "0")
    return Reply(200, stats(em))


def _quota(em: Emulator, payload: Any) -> Reply:
    if not isinstance(payload, dict) or set(payload) - {"max", "used"}:
        raise ValueError('the quota body is {"max": N, "used": N}, both optional')
    for key in ("max", "used"):
        value = payload.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{key} must be a non-negative integer")
    if payload.get("max") is not None:
        em.quota_max = int(payload["max"])
    if payload.get("used") is not None:
        em.quota_used = int(payload["used"])
    em.save_quota()
    return Reply(200, em.quota_json())


def clock_json(em: Emulator) -> dict[str, Any]:
    return {"now": format_datetime(em.clock.now()), "offset_s": em.clock.offset_s}


def _clock(em: Emulator, payload: Any) -> Reply:
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
    offset = em.clock.offset_s + value if "advance_s" in payload else float(value)
    em.clock.set_offset(offset)
    em.store.set_meta("clock_offset", repr(offset))
    return Reply(200, clock_json(em))


def stats(em: Emulator) -> dict[str, Any]:
    records: dict[str, int] = {}
    deleted: dict[str, int] = {}
    with em.store.lock:
        for sobject in s.OBJECTS:
            live, gone = em.store.count(sobject)
            records[sobject.name] = live
            deleted[sobject.name] = gone
    return {
        "calls": dict(sorted(em.calls.items())),
        "total_calls": sum(em.calls.values()),
        "records": records,
        "deleted_records": deleted,
        "api_usage": em.quota_json(),
        "faults": em.faults.to_json(),
        "open_cursors": len(em.cursors),
        "clock": clock_json(em),
    }
