"""What the emulator's endpoints share: a request as a handler sees it (`Ctx`), its answer (`Reply`), and the
few body readers and error shapes every Salesforce endpoint uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.emulator import schema as s
from engine.emulator.org import Actor, SfError, not_found

JSON_TYPE = "application/json;charset=UTF-8"
XML_TYPE = "text/xml;charset=UTF-8"


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


def error_reply(error: SfError) -> Reply:
    return Reply(error.status, error.body())


def read_json(ctx: Ctx) -> Any:
    if not ctx.body.strip():
        raise SfError(400, "JSON_PARSER_ERROR", "No content to map due to end-of-input at [line:1, column:0]")
    try:
        return json.loads(ctx.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise SfError(400, "JSON_PARSER_ERROR", f"Unexpected character: {error}") from None


def flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value is None:
        return False
    raise SfError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from {value!r} for {name}")


def sobject_of(ctx: Ctx) -> s.SObjectDef:
    """The object the path names (`sobjects/{type}/...`, `composite/sobjects/{type}`)."""
    sobject = s.sobject(ctx.params["type"])
    if sobject is None:
        raise not_found()
    return sobject
