"""The REST sObject endpoints: the resource list, limits, describes, and one record at a time (create, read,
update, delete) plus getUpdated/getDeleted. Record writes draw the injected row-lock faults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.emulator import schema as s
from engine.emulator.composite import COLLECTION_LIMIT
from engine.emulator.faults import lock_target
from engine.emulator.ids import normalize_id
from engine.emulator.org import SfError
from engine.emulator.wire import Ctx, Reply, read_json, sobject_of

if TYPE_CHECKING:
    from engine.emulator.app import Emulator


def resources(em: Emulator, ctx: Ctx) -> Reply:
    base = f"/services/data/v{ctx.version}"
    names = ("limits", "query", "queryAll", "sobjects", "composite")
    return Reply(200, {name: f"{base}/{name}" for name in names})


def limits(em: Emulator, ctx: Ctx) -> Reply:
    def pair(maximum: int, remaining: int | None = None) -> dict[str, int]:
        return {"Max": maximum, "Remaining": maximum if remaining is None else remaining}

    return Reply(
        200,
        {
            "DailyApiRequests": pair(em.quota_max, max(0, em.quota_max - em.quota_used)),
            "DailyAsyncApexExecutions": pair(250000),
            "DailyBulkApiBatches": pair(15000),
            "DailyBulkV2QueryJobs": pair(10000),
            "DailyStreamingApiEvents": pair(10000),
            "DataStorageMB": pair(1024),
            "FileStorageMB": pair(1024),
            "SingleEmailMessageMaxPerDay": pair(5000),
        },
    )


def describe_global(em: Emulator, ctx: Ctx) -> Reply:
    marketing = ctx.actor.marketing_user
    return Reply(
        200,
        {
            "encoding": "UTF-8",
            "maxBatchSize": COLLECTION_LIMIT,
            "sobjects": [item.describe_global(marketing_user=marketing, version=ctx.version) for item in s.OBJECTS],
        },
    )


def sobject_info(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    described = sobject.describe_global(marketing_user=ctx.actor.marketing_user, version=ctx.version)
    return Reply(200, {"objectDescribe": described, "recentItems": []})


def describe(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    return Reply(200, sobject.describe(marketing_user=ctx.actor.marketing_user, version=ctx.version))


def get(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    fields = [name for name in ctx.query.get("fields", "").split(",") if name.strip()] or None
    return Reply(200, em.org.get(sobject, ctx.params["id"], fields, ctx.version))


def create(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    data = read_json(ctx)
    if not isinstance(data, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a JSON array")
    with em.store.transaction():
        values = em.org.coerce(sobject, data, creating=True)
        lock = em.faults.draw_lock(ctx.endpoint, lock_target(sobject, values, None))
        if lock is not None:
            raise lock
        record_id = em.org.create_coerced(sobject, values, ctx.actor)
    return Reply(201, {"id": record_id, "success": True, "errors": []})


def update(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    data = read_json(ctx)
    if not isinstance(data, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a JSON array")
    with em.store.transaction():
        em.org.existing(sobject, ctx.params["id"])
        lock = em.faults.draw_lock(ctx.endpoint, normalize_id(ctx.params["id"]))
        if lock is not None:
            raise lock
        em.org.update(sobject, ctx.params["id"], data, ctx.actor)
    return Reply(204)


def delete(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    with em.store.transaction():
        em.org.existing(sobject, ctx.params["id"])
        lock = em.faults.draw_lock(ctx.endpoint, normalize_id(ctx.params["id"]))
        if lock is not None:
            raise lock
        em.org.delete(sobject, ctx.params["id"], ctx.actor)
    return Reply(204)


def updated(em: Emulator, ctx: Ctx) -> Reply:
    return Reply(200, em.org.updated(sobject_of(ctx), ctx.query.get("start"), ctx.query.get("end")))


def deleted(em: Emulator, ctx: Ctx) -> Reply:
    return Reply(200, em.org.deleted(sobject_of(ctx), ctx.query.get("start"), ctx.query.get("end")))
