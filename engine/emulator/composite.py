"""The sObject collections (composite) endpoints: create, update and delete up to 200 records in one call, each
record on its own (or all rolled back with `allOrNone`), and retrieve records by ids. Each record write draws the
injected row-lock faults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.emulator import schema as s
from engine.emulator.faults import lock_target
from engine.emulator.ids import normalize_id
from engine.emulator.org import SfError, dml_error
from engine.emulator.store import Record
from engine.emulator.wire import Ctx, Reply, flag, read_json, sobject_of

if TYPE_CHECKING:
    from engine.emulator.app import Emulator

COLLECTION_LIMIT = 200


def _collection_body(ctx: Ctx) -> tuple[list[Any], bool]:
    body = read_json(ctx)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SfError(400, "JSON_PARSER_ERROR", 'Cannot deserialize the request: expected {"records": [...]}')
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        raise SfError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
        )
    return records, flag(body.get("allOrNone", False), "allOrNone")


def _record_type(item: Any) -> s.SObjectDef:
    if not isinstance(item, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject", whole_request=True)
    attributes = item.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(name, str) or not name:
        raise SfError(400, "INVALID_TYPE", "Must send a concrete entity type.", whole_request=True)
    sobject = s.sobject(name)
    if sobject is None:
        raise SfError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.", whole_request=True)
    return sobject


def _finish(em: Emulator, results: list[dict[str, Any]], all_or_none: bool) -> Reply:
    if all_or_none and any(not item["success"] for item in results):
        em.store.rollback_all()
        rolled_back = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
            "fields": [],
        }
        for item in results:
            if item["success"]:
                item["success"] = False
                item["errors"] = [dict(rolled_back)]
                if item.get("_created"):
                    item.pop("id", None)
    for item in results:
        item.pop("_created", None)
    return Reply(200, results)


def collection_create(em: Emulator, ctx: Ctx) -> Reply:
    records, all_or_none = _collection_body(ctx)
    prepared: list[tuple[s.SObjectDef, Record] | SfError] = []
    for item in records:
        sobject = _record_type(item)
        fields = {key: value for key, value in item.items() if key.lower() != "id"}
        try:
            values = em.org.coerce(sobject, fields, creating=True)
        except SfError as error:
            if error.whole_request:
                raise
            prepared.append(error)
            continue
        if any(key.lower() == "id" and value for key, value in item.items()):
            prepared.append(dml_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
        else:
            prepared.append((sobject, values))
    results: list[dict[str, Any]] = []
    with em.store.transaction():
        for entry in prepared:
            if isinstance(entry, SfError):
                results.append({"success": False, "errors": [entry.collection_error()]})
                continue
            sobject, values = entry
            try:
                lock = em.faults.draw_lock(ctx.endpoint, lock_target(sobject, values, None))
                if lock is not None:
                    raise lock
                with em.store.savepoint():
                    record_id = em.org.create_coerced(sobject, values, ctx.actor)
                results.append({"id": record_id, "success": True, "errors": [], "_created": True})
            except SfError as error:
                results.append({"success": False, "errors": [error.collection_error()]})
        return _finish(em, results, all_or_none)


def collection_update(em: Emulator, ctx: Ctx) -> Reply:
    records, all_or_none = _collection_body(ctx)
    prepared: list[tuple[s.SObjectDef, str | None, Record | SfError]] = []
    for item in records:
        sobject = _record_type(item)
        record_id = next((str(value) for key, value in item.items() if key.lower() == "id" and value), None)
        fields = {key: value for key, value in item.items() if key.lower() != "id"}
        try:
            prepared.append((sobject, record_id, em.org.coerce(sobject, fields, creating=False)))
        except SfError as error:
            if error.whole_request:
                raise
            prepared.append((sobject, record_id, error))
    results: list[dict[str, Any]] = []
    with em.store.transaction():
        for sobject, record_id, values in prepared:
            if record_id is None:
                missing = dml_error("MISSING_ARGUMENT", "Id not specified in an update call")
                results.append({"success": False, "errors": [missing.collection_error()]})
                continue
            try:
                em.org.existing(sobject, record_id, collection=True)
                if isinstance(values, SfError):
                    raise values
                lock = em.faults.draw_lock(ctx.endpoint, normalize_id(record_id))
                if lock is not None:
                    raise lock
                with em.store.savepoint():
                    em.org.update_coerced(sobject, record_id, values, ctx.actor, collection=True)
                results.append({"id": normalize_id(record_id), "success": True, "errors": []})
            except SfError as error:
                results.append({"id": record_id, "success": False, "errors": [error.collection_error()]})
        return _finish(em, results, all_or_none)


def collection_delete(em: Emulator, ctx: Ctx) -> Reply:
    ids = [item.strip() for item in ctx.query.get("ids", "").split(",") if item.strip()]
    if not ids:
        raise SfError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(ids) > COLLECTION_LIMIT:
        raise SfError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
        )
    all_or_none = flag(ctx.query.get("allOrNone", "false"), "allOrNone")
    results: list[dict[str, Any]] = []
    with em.store.transaction():
        for record_id in ids:
            full = normalize_id(record_id)
            sobject = s.sobject_for_id(full) if full else None
            try:
                if full is None or sobject is None:
                    raise dml_error("MALFORMED_ID", f"malformed id {record_id}")
                em.org.existing(sobject, full, collection=True)
                lock = em.faults.draw_lock(ctx.endpoint, full)
                if lock is not None:
                    raise lock
                with em.store.savepoint():
                    em.org.delete(sobject, full, ctx.actor, collection=True)
                results.append({"id": full, "success": True, "errors": []})
            except SfError as error:
                results.append({"id": full or record_id, "success": False, "errors": [error.collection_error()]})
        return _finish(em, results, all_or_none)


def collection_retrieve(em: Emulator, ctx: Ctx) -> Reply:
    sobject = sobject_of(ctx)
    if ctx.method == "POST":
        body = read_json(ctx)
        ids = body.get("ids", []) if isinstance(body, dict) else []
        fields = body.get("fields", []) if isinstance(body, dict) else []
    else:
        ids = [item for item in ctx.query.get("ids", "").split(",") if item]
        fields = [item for item in ctx.query.get("fields", "").split(",") if item]
    if not fields:
        raise SfError(400, "MISSING_ARGUMENT", "fields parameter is required")
    out: list[Record | None] = []
    for record_id in ids:
        try:
            out.append(em.org.get(sobject, str(record_id), [str(name) for name in fields], ctx.version))
        except SfError as error:
            if error.status != 404:
                raise
            out.append(None)
    return Reply(200, out)
