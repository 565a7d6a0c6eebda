"""The SOQL query endpoints: `query` and `queryAll` run a query (`Org.query`) and page its result, keeping the
rest in memory behind a query locator (`Cursors`) for `nextRecordsUrl` (`query/01g...-N`)."""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.emulator.ids import BASE62
from engine.emulator.org import SfError
from engine.emulator.soql import MALFORMED_QUERY
from engine.emulator.store import Record
from engine.emulator.wire import Ctx, Reply

if TYPE_CHECKING:
    from engine.emulator.app import Emulator

PAGE_SIZE = 2000
MIN_PAGE_SIZE = 200
CURSOR_LIMIT = 200
CURSOR_TTL_S = 15 * 60


@dataclass
class _Cursor:
    records: list[Record]
    total: int
    endpoint: str
    touched: float


class Cursors:
    """Query locators, in memory: the rest of a result kept for `nextRecordsUrl`, 15 minutes after last use."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, _Cursor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def add(self, records: list[Record], total: int, endpoint: str) -> str:
        self._expire()
        locator = "01g" + "".join(secrets.choice(BASE62) for _ in range(15))
        self._items[locator] = _Cursor(records, total, endpoint, time.monotonic())
        while len(self._items) > CURSOR_LIMIT:
            self._items.popitem(last=False)
        return locator

    def get(self, locator: str) -> _Cursor | None:
        self._expire()
        cursor = self._items.get(locator)
        if cursor is not None:
            cursor.touched = time.monotonic()
            self._items.move_to_end(locator)
        return cursor

    def _expire(self) -> None:
        limit = time.monotonic() - CURSOR_TTL_S
        for key in [key for key, cursor in self._items.items() if cursor.touched < limit]:
            del self._items[key]


def query(em: Emulator, ctx: Ctx) -> Reply:
    return run_query(em, ctx, include_deleted=False)


def query_all(em: Emulator, ctx: Ctx) -> Reply:
    return run_query(em, ctx, include_deleted=True)


def run_query(em: Emulator, ctx: Ctx, *, include_deleted: bool) -> Reply:
    text = ctx.query.get("q")
    if not text:
        raise SfError(400, MALFORMED_QUERY, "A query string has to be specified")
    result = em.org.query(text, include_deleted=include_deleted, version=ctx.version)
    endpoint = "queryAll" if include_deleted else "query"
    size = page_size(ctx.headers)
    if len(result.records) <= size:
        return Reply(200, {"totalSize": result.total_size, "done": True, "records": result.records})
    locator = em.cursors.add(result.records, result.total_size, endpoint)
    return page(ctx.version, locator, em.cursors.get(locator), 0, size)


def page_size(headers: Mapping[str, str]) -> int:
    options = headers.get("sforce-query-options", "")
    found = re.search(r"batchSize\s*=\s*(\d+)", options)
    if not found:
        return PAGE_SIZE
    return max(MIN_PAGE_SIZE, min(PAGE_SIZE, int(found.group(1))))


def page(version: str, locator: str, cursor: _Cursor | None, start: int, size: int) -> Reply:
    assert cursor is not None
    records = cursor.records[start : start + size]
    done = start + size >= len(cursor.records)
    body: dict[str, Any] = {"totalSize": cursor.total, "done": done}
    if not done:
        body["nextRecordsUrl"] = f"/services/data/v{version}/{cursor.endpoint}/{locator}-{start + size}"
    body["records"] = records
    return Reply(200, body)


def query_more(em: Emulator, ctx: Ctx) -> Reply:
    locator, _, offset = ctx.params["locator"].rpartition("-")
    cursor = em.cursors.get(locator) if locator and offset.isdigit() else None
    if cursor is None or int(offset) > len(cursor.records):
        raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return page(ctx.version, locator, cursor, int(offset), page_size(ctx.headers))
